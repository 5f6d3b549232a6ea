//! Runs the W3C Trace Context test service (see the library docs).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = tracecontext_test_service::address(std::env::args().skip(1))?;
    tracing::subscriber::set_global_default(tracecontext_test_service::subscriber())?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("tracecontext-test-service listening on http://{addr}/test");
    axum::serve(listener, tracecontext_test_service::app()).await?;
    Ok(())
}
