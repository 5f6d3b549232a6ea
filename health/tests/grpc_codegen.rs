//! The committed gRPC code matches what protox + tonic-prost-build generate from the
//! vendored `proto/grpc/health/v1/health.proto`, so users never run a protobuf compiler
//! and CI catches drift. Regenerate with `PALISADE_BLESS=1 cargo test -p
//! palisade-health --all-features --test grpc_codegen`.
#![cfg(feature = "grpc")]

use std::path::Path;

#[test]
fn generated_grpc_code_is_up_to_date() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(
        [manifest.join("proto/grpc/health/v1/health.proto")],
        [manifest.join("proto")],
    )
    .expect("the vendored health.proto compiles");
    let out = palisade_testkit::TempDir::new("palisade-health-codegen");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .out_dir(out.path())
        .compile_fds(fds)
        .expect("code generation succeeds");
    let generated = std::fs::read_to_string(out.path().join("grpc.health.v1.rs")).unwrap();
    let committed_path = manifest.join("src/grpc/generated/grpc.health.v1.rs");
    if std::env::var_os("PALISADE_BLESS").is_some() {
        std::fs::write(&committed_path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date; regenerate it with PALISADE_BLESS=1 cargo test -p palisade-health \
         --all-features --test grpc_codegen",
        committed_path.display()
    );
}
