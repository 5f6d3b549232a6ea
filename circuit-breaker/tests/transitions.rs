//! Every transition, with paused time.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use palisade_circuit_breaker::{CircuitBreakerLayer, Outcome, SlidingWindow, State};
use support::{FAIL, OK, scripted, send, slow};
use tokio::time::{advance, sleep};
use tower::Layer;

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn opens_when_failure_rate_reaches_threshold_and_rejects_without_calling_inner() {
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .wait_duration(Duration::from_secs(5))
        .build()
        .unwrap();
    let handle = layer.handle();
    let calls = counter();
    let mut svc = layer.layer(scripted(calls.clone()));

    assert_eq!(send(&mut svc, OK).await, Ok(true));
    for _ in 0..2 {
        assert_eq!(send(&mut svc, FAIL).await, Ok(false));
    }
    // 2 failures of 3 calls, but fewer than minimum_calls: still closed.
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(send(&mut svc, OK).await, Ok(true));
    // 2 of 4 = 50 %: the fourth call (a success) completes the minimum and trips it.
    assert_eq!(handle.state(), State::Open);
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    let open = send(&mut svc, OK).await.unwrap_err();
    assert_eq!(open.breaker(), "t");
    assert_eq!(open.state(), State::Open);
    assert_eq!(open.retry_after(), Some(Duration::from_secs(5)));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "rejected calls never reach the inner service"
    );
}

#[tokio::test(start_paused = true)]
async fn half_opens_exactly_at_wait_duration() {
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::count(2))
        .minimum_calls(2)
        .wait_duration(Duration::from_secs(10))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(scripted(counter()));
    send(&mut svc, FAIL).await.unwrap();
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(handle.state(), State::Open);

    advance(Duration::from_secs(10) - MS).await;
    let open = send(&mut svc, OK).await.unwrap_err();
    assert_eq!(open.retry_after(), Some(MS));
    assert_eq!(handle.state(), State::Open);

    advance(MS).await;
    assert_eq!(handle.state(), State::HalfOpen);
    assert_eq!(send(&mut svc, OK).await, Ok(true));
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_its_permits_then_closes() {
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::count(2))
        .minimum_calls(2)
        .wait_duration(Duration::from_secs(1))
        .permitted_calls_in_half_open(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    let calls = counter();
    let svc = layer.layer(scripted(calls.clone()));
    let mut s = svc.clone();
    send(&mut s, FAIL).await.unwrap();
    send(&mut s, FAIL).await.unwrap();
    advance(Duration::from_secs(1)).await;

    // Two slow trials in flight take both permits; a third caller is rejected.
    let t1 = tokio::spawn({
        let mut s = svc.clone();
        async move { send(&mut s, slow(false, Duration::from_secs(1))).await }
    });
    let t2 = tokio::spawn({
        let mut s = svc.clone();
        async move { send(&mut s, slow(false, Duration::from_secs(1))).await }
    });
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert_eq!(handle.state(), State::HalfOpen);
    let open = send(&mut s, OK).await.unwrap_err();
    assert_eq!(open.state(), State::HalfOpen);
    assert_eq!(open.retry_after(), None);

    assert_eq!(t1.await.unwrap(), Ok(true));
    assert_eq!(t2.await.unwrap(), Ok(true));
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn failed_trial_reopens_and_the_wait_grows() {
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::count(1))
        .minimum_calls(1)
        .wait_duration(Duration::from_secs(1))
        .wait_duration_multiplier(2.0)
        .max_wait_duration(Duration::from_secs(3))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(scripted(counter()));
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(handle.retry_after(), Some(Duration::from_secs(1)));
    advance(Duration::from_secs(1)).await;
    send(&mut svc, FAIL).await.unwrap(); // the trial fails
    assert_eq!(handle.state(), State::Open);
    assert_eq!(handle.retry_after(), Some(Duration::from_secs(2)));
    advance(Duration::from_secs(2)).await;
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(handle.retry_after(), Some(Duration::from_secs(3)), "capped");
    advance(Duration::from_secs(3)).await;
    send(&mut svc, OK).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    // A successful close resets the growth.
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(handle.retry_after(), Some(Duration::from_secs(1)));
}

#[tokio::test(start_paused = true)]
async fn dropped_trial_gives_its_permit_back() {
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::count(1))
        .minimum_calls(1)
        .wait_duration(Duration::from_secs(1))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(scripted(counter()));
    send(&mut svc, FAIL).await.unwrap();
    advance(Duration::from_secs(1)).await;
    {
        use tower::{Service, ServiceExt};
        let fut = svc
            .ready()
            .await
            .unwrap()
            .call(slow(false, Duration::from_secs(60)));
        // The permit is taken: another caller is rejected.
        let mut other = svc.clone();
        assert!(send(&mut other, OK).await.is_err());
        drop(fut);
    }
    assert_eq!(handle.state(), State::HalfOpen);
    assert_eq!(send(&mut svc, OK).await, Ok(true));
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn cancelled_calls_can_count_as_failures() {
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::count(1))
        .minimum_calls(1)
        .cancelled_outcome(Outcome::Failure)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(scripted(counter()));
    use tower::{Service, ServiceExt};
    let fut = svc
        .ready()
        .await
        .unwrap()
        .call(slow(false, Duration::from_secs(60)));
    drop(fut);
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_hung_trial_is_reclaimed_after_the_lease_and_its_late_outcome_ignored() {
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::count(1))
        .minimum_calls(1)
        .wait_duration(Duration::from_secs(1))
        .permitted_calls_in_half_open(1)
        .max_wait_in_half_open(Duration::from_secs(5))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(scripted(counter()));
    let mut s = svc.clone();
    send(&mut s, FAIL).await.unwrap();
    advance(Duration::from_secs(1)).await;
    // The trial hangs for 60 s.
    let hung = tokio::spawn({
        let mut s = svc.clone();
        async move { send(&mut s, slow(false, Duration::from_secs(60))).await }
    });
    tokio::task::yield_now().await;
    advance(Duration::from_secs(5) - MS).await;
    assert_eq!(handle.state(), State::HalfOpen);
    advance(MS).await;
    // The lease is up: the hung trial counts as failed and the breaker re-opens.
    assert_eq!(handle.state(), State::Open);
    advance(Duration::from_secs(1)).await;
    assert_eq!(send(&mut s, OK).await, Ok(true));
    assert_eq!(handle.state(), State::Closed);
    // The hung trial finally succeeds: its outcome belongs to an old generation.
    assert_eq!(hung.await.unwrap(), Ok(true));
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn late_failures_from_before_a_trip_are_ignored() {
    // The count window counts calls when they are admitted: the slow call is the first of 3.
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::count(3))
        .minimum_calls(3)
        .wait_duration(Duration::from_secs(1))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(scripted(counter()));
    // A slow call admitted while closed...
    let late = tokio::spawn({
        let mut s = svc.clone();
        async move { send(&mut s, slow(true, Duration::from_secs(3))).await }
    });
    tokio::task::yield_now().await;
    let mut s = svc.clone();
    send(&mut s, FAIL).await.unwrap();
    send(&mut s, FAIL).await.unwrap();
    assert_eq!(handle.state(), State::Open);
    advance(Duration::from_secs(1)).await;
    send(&mut s, OK).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    // ...fails after the breaker closed again: it must not count in the new window.
    assert_eq!(late.await.unwrap(), Ok(false));
    assert_eq!(handle.stats().calls, 0);
    send(&mut s, FAIL).await.unwrap();
    assert_eq!(
        handle.state(),
        State::Closed,
        "one failure in the new window is not 2"
    );
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_trip_and_a_success_resets_them() {
    let layer = CircuitBreakerLayer::builder("t")
        .without_failure_rate_threshold()
        .consecutive_failures(3)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(scripted(counter()));
    send(&mut svc, FAIL).await.unwrap();
    send(&mut svc, FAIL).await.unwrap();
    send(&mut svc, OK).await.unwrap();
    send(&mut svc, FAIL).await.unwrap();
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.stats().consecutive_failures, 2);
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_on_the_slow_call_rate() {
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::count(4))
        .minimum_calls(4)
        .slow_call_duration(Duration::from_secs(1))
        .slow_call_rate_threshold(50.0)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(scripted(counter()));
    send(&mut svc, slow(false, Duration::from_secs(1)))
        .await
        .unwrap(); // not slower than 1 s
    send(&mut svc, slow(false, Duration::from_millis(1001)))
        .await
        .unwrap();
    send(&mut svc, OK).await.unwrap();
    assert_eq!(handle.stats().slow_calls, 1);
    send(&mut svc, slow(false, Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(handle.state(), State::Open);
    let stats = handle.stats();
    assert_eq!(stats.total_slow_calls, 2);
    assert_eq!(stats.total_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_failures_exactly_at_the_bucket_boundary() {
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::time(Duration::from_secs(10), 10))
        .minimum_calls(3)
        .failure_rate_threshold(100.0)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(scripted(counter()));
    send(&mut svc, FAIL).await.unwrap();
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(handle.stats().calls, 2);
    advance(Duration::from_secs(10) - MS).await;
    assert_eq!(handle.stats().calls, 2);
    advance(MS).await;
    assert_eq!(handle.stats().calls, 0, "the first bucket left the window");
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(
        handle.state(),
        State::Closed,
        "only one failure in the window"
    );
    send(&mut svc, FAIL).await.unwrap();
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_trips_when_old_successes_leave() {
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::time(Duration::from_secs(2), 2))
        .minimum_calls(2)
        .failure_rate_threshold(60.0)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(scripted(counter()));
    for _ in 0..4 {
        send(&mut svc, OK).await.unwrap();
    }
    advance(Duration::from_secs(1)).await;
    send(&mut svc, FAIL).await.unwrap();
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(handle.state(), State::Closed, "2 of 6");
    advance(Duration::from_secs(1)).await;
    // The successes' bucket leaves: this success makes it 2 failures of 3.
    send(&mut svc, OK).await.unwrap();
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn manual_commands_and_subscription() {
    let layer = CircuitBreakerLayer::builder("manual")
        .sliding_window(SlidingWindow::count(2))
        .minimum_calls(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut rx = handle.subscribe();
    assert_eq!(*rx.borrow_and_update(), State::Closed);
    let calls = counter();
    let mut svc = layer.layer(scripted(calls.clone()));

    handle.force_open();
    assert_eq!(*rx.borrow_and_update(), State::ForcedOpen);
    let open = send(&mut svc, OK).await.unwrap_err();
    assert_eq!(open.state(), State::ForcedOpen);
    assert_eq!(open.retry_after(), None);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    handle.disable();
    assert_eq!(*rx.borrow_and_update(), State::Disabled);
    for _ in 0..5 {
        send(&mut svc, FAIL).await.unwrap();
    }
    assert_eq!(handle.state(), State::Disabled, "disabled never trips");
    let stats = handle.stats();
    assert_eq!((stats.calls, stats.failures), (2, 2), "but still records");
    assert_eq!(stats.total_failures, 5);

    handle.force_closed();
    assert_eq!(*rx.borrow_and_update(), State::Closed);
    assert_eq!(handle.stats().calls, 0, "the window starts empty");
    send(&mut svc, FAIL).await.unwrap();
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(*rx.borrow_and_update(), State::Open);
    handle.reset();
    assert_eq!(*rx.borrow_and_update(), State::Closed);
    assert!(!rx.has_changed().unwrap());
}

#[tokio::test(start_paused = true)]
async fn hook_sees_every_transition_with_rates() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let layer = CircuitBreakerLayer::builder("hooked")
        .sliding_window(SlidingWindow::count(2))
        .minimum_calls(2)
        .wait_duration(Duration::from_secs(1))
        .permitted_calls_in_half_open(1)
        .on_state_change({
            let seen = seen.clone();
            move |t| {
                seen.lock()
                    .unwrap()
                    .push((t.from(), t.to(), t.failure_rate()))
            }
        })
        .build()
        .unwrap();
    let mut svc = layer.layer(scripted(counter()));
    send(&mut svc, OK).await.unwrap();
    send(&mut svc, FAIL).await.unwrap();
    sleep(Duration::from_secs(1)).await;
    send(&mut svc, OK).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (State::Closed, State::Open, 50.0),
            (State::Open, State::HalfOpen, 0.0),
            (State::HalfOpen, State::Closed, 0.0),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_largest_waits_trip_without_overflow() {
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::count(1))
        .minimum_calls(1)
        .wait_duration(Duration::MAX)
        .max_wait_duration(Duration::MAX)
        .wait_duration_multiplier(1000.0)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(scripted(counter()));
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(handle.state(), State::Open);
    let open = send(&mut svc, OK).await.unwrap_err();
    // Capped at what the clock can hold: about 584 years of nanoseconds.
    assert!(open.retry_after().unwrap() > Duration::from_secs(500 * 365 * 24 * 3600));
}

#[tokio::test(start_paused = true)]
async fn only_reset_restarts_the_backoff_by_hand() {
    let layer = CircuitBreakerLayer::builder("t")
        .sliding_window(SlidingWindow::count(1))
        .minimum_calls(1)
        .wait_duration(Duration::from_secs(1))
        .wait_duration_multiplier(2.0)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(scripted(counter()));
    send(&mut svc, FAIL).await.unwrap();
    advance(Duration::from_secs(1)).await;
    assert_eq!(handle.state(), State::HalfOpen);
    handle.force_closed();
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(
        handle.retry_after(),
        Some(Duration::from_secs(2)),
        "growth carried on"
    );
    handle.reset();
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(
        handle.retry_after(),
        Some(Duration::from_secs(1)),
        "reset restarts it"
    );
}
