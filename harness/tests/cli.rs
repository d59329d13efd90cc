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
