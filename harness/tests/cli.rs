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
