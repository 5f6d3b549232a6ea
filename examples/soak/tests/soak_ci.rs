//! The CI variant of the soak: the real binaries, about 60 seconds of load through one chaos
//! cycle (30 % errors, slow, killed and restarted) and a rolling restart; every check of the
//! report must hold. The long run is `soak` without `--ci` (see docs/RELIABILITY.md).
//!
//! Needs the `inventory-service` and `order-service` binaries of the same profile
//! (`cargo build -p inventory-service -p order-service`; `cargo test --workspace` builds
//! them).

#[test]
fn soak_ci_variant_passes_every_check() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let options = soak::Options::ci(soak::default_bin_dir());
    let started = std::time::Instant::now();
    let report = runtime
        .block_on(soak::run(&options))
        .unwrap_or_else(|e| panic!("the soak could not run: {e}"));
    println!("{report}");
    assert!(report.passed(), "soak checks failed:\n{report}");
    // Every kind of phase ran, the rolling restart included.
    for kind in [
        soak::PhaseKind::Erroring,
        soak::PhaseKind::Slow,
        soak::PhaseKind::Down,
        soak::PhaseKind::RollingRestart,
    ] {
        assert!(
            report
                .phases
                .iter()
                .any(|p| p.kind == kind && p.requests > 0),
            "no {kind:?} phase with traffic:\n{report}"
        );
    }
    assert_eq!(report.restarts.len(), 1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(110),
        "the CI variant took {:?}",
        started.elapsed()
    );
}
