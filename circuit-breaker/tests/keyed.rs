//! Keyed breakers: one per key, bounded, idle keys evicted, open share capped.

use std::time::Duration;

use palisade_circuit_breaker::error::CircuitOpen;
use palisade_circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State};
use tower::{Layer, Service, ServiceExt, service_fn};

/// Requests are `(key, fail)`.
fn inner() -> impl Service<(&'static str, bool), Response = (), Error = std::io::Error> + Clone {
    service_fn(|(_, fail): (&'static str, bool)| async move {
        if fail {
            Err(std::io::Error::other("down"))
        } else {
            Ok(())
        }
    })
}

async fn send<S>(svc: &mut S, key: &'static str, fail: bool) -> Result<(), Option<CircuitOpen>>
where
    S: Service<(&'static str, bool), Error = palisade_circuit_breaker::error::BoxError>,
{
    match svc.ready().await.unwrap().call((key, fail)).await {
        Ok(_) => Ok(()),
        Err(e) => Err(e.downcast::<CircuitOpen>().ok().map(|b| *b)),
    }
}

fn builder() -> palisade_circuit_breaker::Builder {
    CircuitBreakerLayer::builder("backends")
        .sliding_window(SlidingWindow::count(2))
        .minimum_calls(2)
        .wait_duration(Duration::from_secs(30))
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_breaker() {
    let layer = builder()
        .keyed(|req: &(&'static str, bool)| req.0)
        .build()
        .unwrap();
    let mut svc = layer.layer(inner());
    send(&mut svc, "a", true).await.unwrap_err();
    send(&mut svc, "a", true).await.unwrap_err();
    let open = send(&mut svc, "a", false)
        .await
        .unwrap_err()
        .expect("rejected");
    assert_eq!(open.breaker(), "backends/a");
    // "b" is unaffected, and a clone of the service sees the same breakers.
    send(&mut svc, "b", false).await.unwrap();
    let mut clone = svc.clone();
    assert!(send(&mut clone, "a", false).await.unwrap_err().is_some());
    assert_eq!(layer.handle(&"a").unwrap().state(), State::Open);
    assert_eq!(layer.handle(&"b").unwrap().state(), State::Closed);
    let mut keys = layer.keys();
    keys.sort_unstable();
    assert_eq!(keys, vec!["a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn keys_beyond_the_bound_share_the_overflow_breaker() {
    let layer = builder()
        .keyed(|req: &(&'static str, bool)| req.0)
        .max_keys(2)
        .build()
        .unwrap();
    let mut svc = layer.layer(inner());
    send(&mut svc, "a", false).await.unwrap();
    send(&mut svc, "b", false).await.unwrap();
    // "c" and "d" find no room: they share the overflow breaker.
    send(&mut svc, "c", true).await.unwrap_err();
    send(&mut svc, "d", true).await.unwrap_err();
    let open = send(&mut svc, "c", false)
        .await
        .unwrap_err()
        .expect("rejected");
    assert_eq!(open.breaker(), "backends/_overflow");
    assert_eq!(layer.overflow_handle().state(), State::Open);
    assert!(layer.handle(&"c").is_none());
    send(&mut svc, "a", false).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_closed_keys_are_evicted_but_open_ones_are_kept() {
    let layer = builder()
        .keyed(|req: &(&'static str, bool)| req.0)
        .max_keys(2)
        .idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut svc = layer.layer(inner());
    send(&mut svc, "idle", false).await.unwrap();
    send(&mut svc, "open", true).await.unwrap_err();
    send(&mut svc, "open", true).await.unwrap_err();
    assert_eq!(layer.handle(&"open").unwrap().state(), State::Open);

    tokio::time::advance(Duration::from_secs(59)).await;
    send(&mut svc, "new", false).await.unwrap();
    assert!(
        layer.handle(&"new").is_none(),
        "not idle long enough: overflow"
    );

    tokio::time::advance(Duration::from_secs(61)).await;
    send(&mut svc, "new", false).await.unwrap();
    let mut keys = layer.keys();
    keys.sort_unstable();
    assert_eq!(keys, vec!["new", "open"], "the idle closed key made room");
    // The evicted key comes back: "new" last saw a call at t = 120 s, but idleness is
    // measured between sweeps, so the sweep at t = 241 s first notes its activity and
    // only a later one finds it idle for 60 s.
    tokio::time::advance(Duration::from_secs(121)).await;
    send(&mut svc, "idle", false).await.unwrap();
    assert!(!layer.keys().contains(&"idle"));
    tokio::time::advance(Duration::from_secs(61)).await;
    send(&mut svc, "idle", false).await.unwrap();
    let mut keys = layer.keys();
    keys.sort_unstable();
    assert_eq!(keys, vec!["idle", "open"]);
}

#[tokio::test(start_paused = true)]
async fn the_share_of_open_keys_is_capped() {
    let layer = builder()
        .keyed(|req: &(&'static str, bool)| req.0)
        .max_open_ratio(0.5)
        .build()
        .unwrap();
    let mut svc = layer.layer(inner());
    for key in ["a", "b", "c", "d"] {
        send(&mut svc, key, false).await.unwrap();
    }
    for key in ["a", "b", "c"] {
        send(&mut svc, key, true).await.unwrap_err();
        send(&mut svc, key, true).await.unwrap_err();
    }
    let states: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|k| layer.handle(k).unwrap().state())
        .collect();
    assert_eq!(states, vec![State::Open, State::Open, State::Closed]);
    // Once "a" recovers, "c" may open.
    layer.handle(&"a").unwrap().force_closed();
    send(&mut svc, "c", true).await.unwrap_err();
    assert_eq!(layer.handle(&"c").unwrap().state(), State::Open);
}

#[test]
fn keyed_settings_are_validated() {
    let kf = |req: &(&'static str, bool)| req.0;
    let err =
        |b: palisade_circuit_breaker::KeyedBuilder<&str, _, _, _>| b.build().unwrap_err().field();
    assert_eq!(err(builder().keyed(kf).max_keys(0)), "max_keys");
    assert_eq!(
        err(builder().keyed(kf).idle_timeout(Duration::ZERO)),
        "idle_timeout"
    );
    assert_eq!(
        err(builder().keyed(kf).max_open_ratio(0.0)),
        "max_open_ratio"
    );
    assert_eq!(
        err(builder().keyed(kf).max_open_ratio(f64::NAN)),
        "max_open_ratio"
    );
    assert_eq!(err(builder().minimum_calls(0).keyed(kf)), "minimum_calls");
}
