//! The demo runs in CI: it must finish well under a minute and exit 0, which it does only
//! when every invariant holds.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn demo_runs_and_its_invariants_hold() {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .output()
        .expect("run the demo binary");
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        elapsed < Duration::from_secs(60),
        "the demo took {elapsed:?}"
    );
    for expected in [
        "phase",
        "healthy",
        "faults",
        "recovery",
        "closed    -> open",
        "half_open -> closed",
        "invariants hold",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Progress bars hide themselves when stderr is not a terminal.
    assert!(
        !stderr.contains("orders,"),
        "progress bars drawn to a pipe:\n{stderr}"
    );
}
