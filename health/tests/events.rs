//! `tracing` events (feature `tracing`): one per status change (not per run), on
//! drain, and per shutdown hook.
#![cfg(feature = "tracing")]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_health::HealthCheck;
use support::{FAIL, PASS, Scripted, advance, settle};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
    fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}

#[tokio::test(start_paused = true)]
async fn status_changes_drain_and_hooks_emit_events() {
    let buf = Buf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buf.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let health = support::registry();
    let db = Scripted::new(PASS);
    let every = Duration::from_secs(1);
    health
        .register(HealthCheck::readiness("db", db.clone()).interval(every))
        .unwrap();
    settle().await;
    advance(every).await;
    advance(every).await;
    assert_eq!(db.runs(), 3);
    assert_eq!(buf.count("health check passing"), 1, "{}", buf.text());
    assert!(
        buf.text()
            .contains(r#"check="db" kind="readiness" from="none" to="pass""#)
    );

    db.set(FAIL);
    advance(every).await;
    advance(every).await;
    assert_eq!(buf.count("health check failing"), 1, "{}", buf.text());
    assert!(
        buf.text()
            .contains(r#"from="pass" to="fail" output="connection refused""#),
        "{}",
        buf.text()
    );

    health.drain();
    assert_eq!(buf.count("draining: readiness is now failing"), 1);
    health.on_shutdown("flush", || async {});
    health.on_shutdown("stuck", std::future::pending::<()>);
    health.run_shutdown_hooks().await;
    assert!(
        buf.text().contains(r#"shutdown hook completed hook=flush"#),
        "{}",
        buf.text()
    );
    assert!(
        buf.text()
            .contains(r#"shutdown hook did not complete hook=stuck outcome=TimedOut"#),
        "{}",
        buf.text()
    );
}
