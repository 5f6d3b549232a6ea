//! The inventory service binary: configuration from the environment (see [`Config`]),
//! logs to stderr, stops gracefully on SIGTERM or Ctrl-C.
//!
//! A bad configuration or a failed start ends the process with a one-line error and a
//! non-zero exit code (2 for configuration, 1 otherwise), never a panic.

use std::process::ExitCode;

use inventory_service::Config;

fn main() -> ExitCode {
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("inventory-service: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("inventory-service: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Logs, OTLP traces and the metrics recorder, from the `OTEL_*` variables.
    let telemetry = match runtime.block_on(async { example_telemetry::init("inventory-service") }) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("inventory-service: {e}");
            return ExitCode::from(2);
        }
    };
    config.metrics = Some(telemetry.metrics());
    let result = runtime.block_on(async {
        let service = inventory_service::InventoryService::bind(config).await?;
        tracing::info!(grpc = %service.grpc_addr(), admin = %service.admin_addr(), "inventory-service listening");
        // Flush spans after the servers have stopped.
        service
            .health()
            .on_shutdown_blocking("opentelemetry", telemetry.shutdown_hook());
        service.serve(shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inventory-service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
