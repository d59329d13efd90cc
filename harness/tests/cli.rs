//! The `descent` binary: listing, and rejection of bad arguments before anything runs.

use std::process::Command;

fn descent(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_names_every_check() {
    let (code, out, _) = descent(&["list"]);
    assert_eq!(code, 0);
    for c in descent_harness::registry() {
        assert!(out.contains(c.id().name), "{out}");
    }
}

#[test]
fn unknown_check_is_rejected_with_the_valid_names() {
    let (code, _, err) = descent(&["check", "nope"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown check `nope`") && err.contains("critical-step/trajectory"),
        "{err}"
    );
}

#[test]
fn bad_keys_types_and_ranges_are_rejected() {
    let cases = [
        (
            "critical-step/trajectory.nn=5",
            "unknown key `critical-step/trajectory.nn`",
        ),
        (
            "critical-step/trajectory.n=abc",
            "`critical-step/trajectory.n` expects an integer in [16, 200000]",
        ),
        ("critical-step.trajectory.n=10", "out of range"),
        (
            "critical-step/trajectory.lambda=-1",
            "critical-step/trajectory.lambda",
        ),
        ("critical-step/nope.n=5", "unknown check"),
        ("critical-step/trajectory.n", "CHECK.KEY=VALUE"),
    ];
    for (set, msg) in cases {
        let (code, out, err) = descent(&["check", "critical-step/trajectory", "--set", set]);
        assert_eq!(code, 2, "{set}: {out}{err}");
        assert!(err.contains(msg), "{set}: {err}");
        assert!(!out.contains("=="), "{set}: something ran");
    }
}

#[test]
fn config_file_is_checked_the_same_way() {
    let dir = std::env::temp_dir().join(format!("descent-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[critical-step.trajectory]\nseeds = 0.5\n").unwrap();
    let (code, _, err) = descent(&["check", "all", "--config", f.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("critical-step/trajectory.seeds"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

const SMALL: [&str; 8] = [
    "--set",
    "critical-step/trajectory.n=400",
    "--set",
    "critical-step/trajectory.seeds=2",
    "--set",
    "critical-step/trajectory.t=2",
    "--set",
    "critical-step/trajectory.grid=20",
];

#[test]
fn json_and_plots_are_written_with_the_resolved_config() {
    let dir = std::env::temp_dir().join(format!("descent-cli-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let plots = dir.join("plots");
    let mut args = vec!["check", "critical-step/trajectory", "--seed", "3"];
    args.extend(SMALL);
    let (j, p) = (json.to_str().unwrap(), plots.to_str().unwrap());
    args.extend(["--json", j, "--plots", p]);
    let (code, out, err) = descent(&args);
    assert!(code == 0 || code == 1, "{out}{err}");
    assert!(
        out.contains("n = 400"),
        "resolved config not printed: {out}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["config"]["critical-step/trajectory"]["n"], 400);
    assert_eq!(doc["seed_shift"], 3);
    assert_eq!(doc["complete"], true);
    assert_eq!(doc["records"].as_array().unwrap().len(), 4);
    assert_eq!(std::fs::read_dir(&plots).unwrap().count(), 4);
    std::fs::remove_dir_all(&dir).ok();
}

/// A failing criterion makes the exit code non-zero.
#[test]
fn a_failing_check_exits_non_zero() {
    let mut args = vec!["check", "critical-step/trajectory"];
    args.extend(SMALL);
    args.extend(["--set", "critical-step/trajectory.tol_plateau=[0, 0]"]);
    let (code, out, _) = descent(&args);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED"), "{out}");
}

/// The controls are not rigged: N2 with the step correctly rescaled (`n2_step_n = n`) is the
/// positive run on other streams, passes the same verdict, and the CLI reports that as a failure.
#[test]
fn a_control_that_passes_is_reported_and_exits_non_zero() {
    let mut args = vec!["check", "critical-step/trajectory"];
    args.extend(SMALL);
    args.extend(["--set", "critical-step/trajectory.n2_step_n=400"]);
    let (code, out, _) = descent(&args);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAILED: 1 record(s) not as expected: critical-step/trajectory N2"),
        "{out}"
    );
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("descent-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An unwritable `--json` path is rejected before any check runs (the run would otherwise take a
/// minute and lose its results at the end); so is a `--plots` path that is a file, and then no
/// JSON file is created either.
#[test]
fn bad_output_paths_are_rejected_before_anything_runs() {
    let dir = scratch("paths");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let missing = dir.join("no-such-dir").join("x.json");
    let json_ok = dir.join("ok.json");
    let under_file = file.join("x.json");
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec!["--json", missing.to_str().unwrap()],
            "is not an existing directory",
        ),
        (vec!["--json", dir.to_str().unwrap()], "is a directory"),
        (
            vec!["--json", under_file.to_str().unwrap()],
            "is not an existing directory",
        ),
        (
            vec![
                "--plots",
                file.to_str().unwrap(),
                "--json",
                json_ok.to_str().unwrap(),
            ],
            "is not a directory",
        ),
    ];
    for (extra, msg) in cases {
        let mut args = vec!["check", "all"];
        args.extend(&extra);
        let t = std::time::Instant::now();
        let (code, out, err) = descent(&args);
        assert_eq!(code, 2, "{extra:?}: {out}{err}");
        assert!(err.contains(msg), "{extra:?}: {err}");
        let arg = extra[extra.len() - 2];
        let arg = if msg == "is not a directory" {
            "--plots"
        } else {
            arg
        };
        assert!(
            err.contains(arg),
            "{extra:?}: the argument is not named: {err}"
        );
        assert!(!out.contains("=="), "{extra:?}: something ran: {out}");
        assert!(
            t.elapsed().as_secs() < 20,
            "{extra:?}: took {:?}",
            t.elapsed()
        );
    }
    assert!(!json_ok.exists(), "JSON written although --plots was bad");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "only the probe file itself is left"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Killing a run part-way keeps every check that finished: the JSON file is a complete, valid
/// document after each check (`complete: false` until the end), never a partial one.
#[test]
fn an_interrupted_run_keeps_the_checks_that_finished() {
    let dir = scratch("kill");
    let json = dir.join("out.json");
    let mut args = vec!["check", "critical-step", "--json", json.to_str().unwrap()];
    args.extend(SMALL);
    let mut child = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("runs");
    // The small first check finishes in about a second; the next ones (default sizes) take
    // far longer, so the run is killed while the second check runs.
    let t = std::time::Instant::now();
    let doc = loop {
        assert!(
            t.elapsed().as_secs() < 120,
            "no record written within 120 s"
        );
        if let Ok(text) = std::fs::read_to_string(&json) {
            let doc: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("not a valid document ({e}): {text}"));
            if doc["checks_done"] == 1 {
                break doc;
            }
            assert_eq!(doc["checks_done"], 0, "{doc}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run finished before the kill");
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(after, doc, "the document changed after the kill");
    assert_eq!(doc["complete"], false);
    assert_eq!(doc["all_as_expected"], false);
    assert_eq!(doc["checks_total"], 4);
    let recs = doc["records"].as_array().unwrap();
    assert_eq!(recs.len(), 4, "trajectory: positive and three controls");
    assert!(recs
        .iter()
        .all(|r| r["check"] == "critical-step/trajectory"));
    std::fs::remove_dir_all(&dir).ok();
}

mod fake {
    //! Checks with scripted behaviour, run through the CLI's `run_checks`.
    use descent_harness::check::{Ctx, DynCheck};
    use descent_harness::config::{ConfigError, Override, Range};
    use descent_harness::record::{
        Axes, Case, CheckId, Control, Criterion, CriterionKey, Record, Scored,
    };
    use std::path::PathBuf;

    pub enum Does {
        /// Returns one passing positive record.
        Pass,
        /// Panics with this message.
        Panic(&'static str),
        /// Reads the JSON file while running: it must hold a complete document with the records
        /// of every check before this one. Then returns a passing record.
        Observe(PathBuf, usize),
    }

    pub struct Fake(pub &'static str, pub Does);

    impl DynCheck for Fake {
        fn id(&self) -> CheckId {
            CheckId {
                name: self.0,
                paper: "none",
                claim: "scripted",
            }
        }
        fn controls(&self) -> &'static [Control] {
            &[]
        }
        fn default_table(&self) -> toml::Table {
            toml::Table::new()
        }
        fn ranges(&self) -> Vec<Range> {
            Vec::new()
        }
        fn resolve(&self, _: &[Override]) -> Result<toml::Table, ConfigError> {
            Ok(toml::Table::new())
        }
        fn run(&self, _: &toml::Table, _: &Ctx) -> Vec<Record> {
            match &self.1 {
                Does::Pass => {}
                Does::Panic(msg) => panic!("{msg}"),
                Does::Observe(path, before) => {
                    let doc: serde_json::Value =
                        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
                    assert_eq!(doc["checks_done"], *before, "{doc}");
                    assert_eq!(doc["complete"], false, "{doc}");
                    assert_eq!(doc["records"].as_array().unwrap().len(), *before, "{doc}");
                }
            }
            let scored = Scored {
                criteria: vec![Criterion::new(
                    CriterionKey::new("x"),
                    1.0,
                    1.0,
                    0.0,
                    "exact",
                )],
                ..Scored::default()
            };
            vec![scored.into_record(
                self.id(),
                Case::positive("scripted"),
                0.0,
                Axes {
                    title: String::new(),
                    x_label: String::new(),
                    y_label: String::new(),
                    log_x: false,
                    log_y: false,
                },
            )]
        }
    }
}

/// A check that panics becomes an error row (never as expected); the checks after it still run
/// and are written, plots included; the exit code is 1. Each check sees the document written
/// after the previous one.
#[test]
fn a_panicking_check_is_an_error_row_and_the_others_still_run() {
    use descent_harness::check::DynCheck;
    use descent_harness::cli::{run_checks, Outputs};
    use fake::{Does, Fake};
    let dir = scratch("panic");
    let json = dir.join("out.json");
    let checks = [
        Fake("fake/first", Does::Pass),
        Fake("fake/boom", Does::Panic("planted failure")),
        Fake("fake/after", Does::Observe(json.clone(), 2)),
    ];
    let picked: Vec<&dyn DynCheck> = checks.iter().map(|c| c as &dyn DynCheck).collect();
    let tables: Vec<(String, toml::Table)> = checks
        .iter()
        .map(|c| (c.0.to_string(), toml::Table::new()))
        .collect();
    let outputs = Outputs {
        json: Some(json.clone()),
        plots: Some(dir.join("plots")),
    };
    let code = run_checks(&picked, &tables, 0, 1, &outputs);
    assert_eq!(code, 1);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["complete"], true);
    assert_eq!(doc["checks_done"], 3);
    assert_eq!(doc["all_as_expected"], false);
    let recs = doc["records"].as_array().unwrap();
    let rows: Vec<(&str, &str, &str)> = recs
        .iter()
        .map(|r| {
            (
                r["check"].as_str().unwrap(),
                r["case"]["id"].as_str().unwrap(),
                r["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("fake/first", "positive", "Pass"),
            ("fake/boom", "error", "Fail"),
            ("fake/after", "positive", "Pass"),
        ]
    );
    assert!(
        recs[1]["case"]["description"]
            .as_str()
            .unwrap()
            .contains("panicked: planted failure"),
        "{}",
        recs[1]
    );
    assert_eq!(std::fs::read_dir(dir.join("plots")).unwrap().count(), 3);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "temporary files left behind: {left:?}");

    // Without the panic, the same run is as expected and exits 0.
    let checks = [
        Fake("fake/first", Does::Pass),
        Fake("fake/after", Does::Observe(json.clone(), 1)),
    ];
    let picked: Vec<&dyn DynCheck> = checks.iter().map(|c| c as &dyn DynCheck).collect();
    let code = run_checks(&picked, &tables[..2].to_vec(), 0, 1, &outputs);
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&dir).ok();
}
