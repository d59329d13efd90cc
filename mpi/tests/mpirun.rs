//! The binary under `mpirun` on this host (shared memory only): the MPI simulation equals the
//! threaded one bit for bit with 2 and 3 ranks (3 splits the worker counts unevenly), and a bad
//! argument exits 2 naming it. `scripts/mpi.sh` runs the full-size version.

use std::process::{Command, Output};

fn mpirun(np: usize, args: &[&str]) -> Output {
    // Bounded: a hung launch fails the test after two minutes instead of stalling the suite.
    Command::new("timeout")
        .args([
            "120",
            "mpirun",
            "--oversubscribe",
            "--bind-to",
            "none",
            "--mca",
            "plm",
            "isolated",
        ])
        .args([
            "--mca",
            "btl",
            "self,vader",
            "--mca",
            "oob_tcp_if_include",
            "lo",
        ])
        .args(["-n", &np.to_string(), env!("CARGO_BIN_EXE_descent-mpi")])
        .args(args)
        // mpirun refuses to start as root without both.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .expect("mpirun runs (OpenMPI is installed by .ci/install.sh)")
}

#[test]
fn mpi_simulation_is_bit_identical_to_the_threaded_one() {
    for np in [2, 3] {
        let out = mpirun(np, &["verify", "--t", "24", "--reps", "70"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{np} ranks:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(", 0 failed"), "{text}");
        assert!(!text.contains("DIFFER"), "{text}");
        let identical = text.matches("values bit-identical").count();
        // At least 4 worker counts (1, 2, 3, 7 and the rank-dependent ones) × 6 schedules.
        assert!(identical >= 24, "every case compared: {text}");
    }
}

#[test]
fn a_bad_key_exits_2_and_names_it() {
    let out = mpirun(2, &["speedup", "--set", "no_such_key=1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no_such_key"), "{err}");
}
