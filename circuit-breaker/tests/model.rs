//! Property test: the breaker against a simple sequential model, over random configurations
//! and random sequences of calls (success, failure, ignored; fast or slow), time steps and
//! manual commands, with paused tokio time. After every step, admissions, rejections (and
//! their `retry_after`), the state and the window's statistics must agree.

use std::collections::VecDeque;
use std::time::Duration;

use palisade_circuit_breaker::error::{BoxError, CircuitOpen};
use palisade_circuit_breaker::{CircuitBreakerLayer, Outcome, SlidingWindow, State, classify_fn};
use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};

const SLOW: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
enum Window {
    Count(u64),
    Exact(u64),
    Time(u64, u32), // seconds, buckets
}

#[derive(Debug, Clone)]
struct Cfg {
    window: Window,
    min_calls: u64,
    failure_rate: Option<f64>,
    slow_rate: Option<f64>,
    consecutive: Option<u32>,
    wait_secs: u64,
    multiplier: f64,
    permits: u32,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// 0 success, 1 failure, 2 ignored; slow or not.
    Call(u8, bool),
    Advance(u64),
    ForceOpen,
    ForceClosed,
    Disable,
    Reset,
}

fn cfg_strategy() -> impl Strategy<Value = Cfg> {
    let window = prop_oneof![
        (1u64..=20).prop_map(Window::Count),
        (1u64..=20).prop_map(Window::Exact),
        (1u64..=5, 1u32..=5).prop_map(|(s, b)| Window::Time(s, b)),
    ];
    (
        window,
        1u64..=20,
        prop::option::of(prop::sample::select(vec![25.0, 50.0, 75.0, 100.0])),
        prop::option::of(prop::sample::select(vec![50.0, 100.0])),
        prop::option::of(1u32..=4),
        1u64..=5,
        prop::sample::select(vec![1.0, 2.0]),
        1u32..=3,
    )
        .prop_map(
            |(window, min, fr, sr, consecutive, wait_secs, multiplier, permits)| {
                let min_calls = match window {
                    Window::Count(n) | Window::Exact(n) => min.min(n),
                    Window::Time(..) => min.min(10),
                };
                let failure_rate = if fr.is_none() && sr.is_none() && consecutive.is_none() {
                    Some(50.0)
                } else {
                    fr
                };
                Cfg {
                    window,
                    min_calls,
                    failure_rate,
                    slow_rate: sr,
                    consecutive,
                    wait_secs,
                    multiplier,
                    permits,
                }
            },
        )
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (prop::sample::select(vec![0u8, 0, 1, 1, 2]), prop::bool::weighted(0.2)).prop_map(|(o, s)| Op::Call(o, s)),
        4 => (0u64..3000).prop_map(Op::Advance),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::ForceClosed),
        1 => Just(Op::Disable),
        1 => Just(Op::Reset),
    ]
}

/// The sequential model.
#[derive(Debug)]
struct Model {
    cfg: Cfg,
    now: u64, // nanoseconds since the breaker was built
    state: State,
    open_until: u64,
    opens: u32,
    consecutive: u32,
    trials: (u64, u64, u64, u64), // issued, ok, failed, slow
    /// Outcomes since the window was reset: (position or epoch, failed, slow).
    log: Vec<(u64, bool, bool)>,
    exact: VecDeque<(bool, bool)>,
    position: u64,
}

#[derive(Debug, PartialEq)]
enum Admit {
    Yes,
    No(State, Option<Duration>),
}

impl Model {
    fn new(cfg: Cfg) -> Model {
        Model {
            cfg,
            now: 0,
            state: State::Closed,
            open_until: 0,
            opens: 0,
            consecutive: 0,
            trials: (0, 0, 0, 0),
            log: Vec::new(),
            exact: VecDeque::new(),
            position: 0,
        }
    }

    fn bucket_nanos(&self) -> u64 {
        match self.cfg.window {
            Window::Time(s, b) => s * 1_000_000_000 / u64::from(b),
            _ => 1,
        }
    }

    fn count_geometry(n: u64) -> (u64, u64) {
        let buckets = n.min(10);
        let width = n.div_ceil(buckets);
        (width, n.div_ceil(width))
    }

    /// (calls, failures, slow) in the window now.
    fn window(&self) -> (u64, u64, u64) {
        let sum = |it: &mut dyn Iterator<Item = (bool, bool)>| {
            it.fold((0, 0, 0), |(c, f, s), (fail, slow)| {
                (c + 1, f + u64::from(fail), s + u64::from(slow))
            })
        };
        match self.cfg.window {
            Window::Exact(_) => sum(&mut self.exact.iter().copied()),
            Window::Count(n) => {
                if self.position == 0 {
                    return (0, 0, 0);
                }
                let (width, buckets) = Self::count_geometry(n);
                let bucket = (self.position - 1) / width;
                let start = (bucket + 1).saturating_sub(buckets) * width;
                let (_, f, s) = sum(&mut self
                    .log
                    .iter()
                    .filter(|(p, ..)| *p > start)
                    .map(|&(_, f, s)| (f, s)));
                (self.position - start, f, s)
            }
            Window::Time(_, b) => {
                let epoch = self.now / self.bucket_nanos();
                let start = (epoch + 1).saturating_sub(u64::from(b));
                sum(&mut self
                    .log
                    .iter()
                    .filter(|(e, ..)| *e >= start)
                    .map(|&(_, f, s)| (f, s)))
            }
        }
    }

    fn reset_window(&mut self) {
        self.log.clear();
        self.exact.clear();
        self.position = 0;
    }

    fn enter(&mut self, to: State) {
        match to {
            State::Open => {
                let base = Duration::from_secs(self.cfg.wait_secs).as_secs_f64();
                let cap = base * 4.0;
                let wait = (base * self.cfg.multiplier.powi(self.opens as i32)).min(cap);
                self.opens += 1;
                self.open_until = self.now + Duration::from_secs_f64(wait).as_nanos() as u64;
            }
            State::HalfOpen => self.trials = (0, 0, 0, 0),
            State::Closed | State::Disabled => {
                if self.state == State::HalfOpen {
                    self.opens = 0;
                }
                self.reset_window();
            }
            _ => {}
        }
        self.consecutive = 0;
        self.state = to;
    }

    /// Time-driven transitions, as a call or a state read applies them.
    fn refresh(&mut self) {
        if self.state == State::Open && self.now >= self.open_until {
            self.enter(State::HalfOpen);
        }
    }

    fn admit(&mut self) -> Admit {
        self.refresh();
        match self.state {
            State::Closed | State::Disabled => Admit::Yes,
            State::ForcedOpen => Admit::No(State::ForcedOpen, None),
            State::Open => Admit::No(
                State::Open,
                Some(Duration::from_nanos(self.open_until - self.now)),
            ),
            _ => {
                if self.trials.0 < u64::from(self.cfg.permits) {
                    self.trials.0 += 1;
                    Admit::Yes
                } else {
                    Admit::No(State::HalfOpen, None)
                }
            }
        }
    }

    fn pct(n: u64, of: u64) -> f64 {
        n as f64 * 100.0 / of as f64
    }

    fn verdict(&self) -> Option<State> {
        let (_, ok, failed, slow) = self.trials;
        let p = u64::from(self.cfg.permits);
        let remaining = p.saturating_sub(ok + failed);
        let reopen = match self.cfg.failure_rate {
            Some(t) => Self::pct(failed, p) >= t,
            None => failed > 0,
        } || self.cfg.slow_rate.is_some_and(|t| Self::pct(slow, p) >= t);
        if reopen {
            return Some(State::Open);
        }
        let fail_ok = match self.cfg.failure_rate {
            Some(t) => Self::pct(failed + remaining, p) < t,
            None => failed + remaining == 0,
        };
        let slow_ok = self
            .cfg
            .slow_rate
            .is_none_or(|t| Self::pct(slow + remaining, p) < t);
        (fail_ok && slow_ok).then_some(State::Closed)
    }

    /// Records the outcome of an admitted call (admitted in `admitted_in`).
    fn complete(&mut self, admitted_in: State, outcome: u8, slow: bool) {
        if outcome == 2 {
            if admitted_in == State::HalfOpen {
                self.trials.0 -= 1;
            }
            return;
        }
        let failure = outcome == 1;
        if admitted_in == State::HalfOpen {
            self.trials.1 += u64::from(!failure);
            self.trials.2 += u64::from(failure);
            self.trials.3 += u64::from(slow);
            if let Some(to) = self.verdict() {
                self.enter(to);
            }
            return;
        }
        match self.cfg.window {
            Window::Exact(n) => {
                if self.exact.len() as u64 == n {
                    self.exact.pop_front();
                }
                self.exact.push_back((failure, slow));
            }
            Window::Count(_) => {
                self.position += 1;
                self.log.push((self.position, failure, slow));
            }
            Window::Time(..) => {
                let epoch = self.now / self.bucket_nanos();
                self.log.push((epoch, failure, slow));
            }
        }
        if self.state == State::Disabled {
            return;
        }
        if self.cfg.consecutive.is_some() {
            if failure {
                self.consecutive += 1;
            } else {
                self.consecutive = 0;
            }
        }
        let (calls, failures, slows) = self.window();
        let by_rate = calls >= self.cfg.min_calls
            && (self
                .cfg
                .failure_rate
                .is_some_and(|t| Self::pct(failures, calls) >= t)
                || self
                    .cfg
                    .slow_rate
                    .is_some_and(|t| Self::pct(slows, calls) >= t));
        let by_consecutive = self.cfg.consecutive.is_some_and(|n| self.consecutive >= n);
        if by_rate || by_consecutive {
            self.enter(State::Open);
        }
    }
}

async fn run(cfg: Cfg, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let window = match cfg.window {
        Window::Count(n) => SlidingWindow::count(n),
        Window::Exact(n) => SlidingWindow::exact_count(n),
        Window::Time(s, b) => SlidingWindow::time(Duration::from_secs(s), b),
    };
    let mut b = CircuitBreakerLayer::builder("model")
        .sliding_window(window)
        .minimum_calls(cfg.min_calls)
        .wait_duration(Duration::from_secs(cfg.wait_secs))
        .wait_duration_multiplier(cfg.multiplier)
        .max_wait_duration(Duration::from_secs(cfg.wait_secs * 4))
        .permitted_calls_in_half_open(cfg.permits);
    b = match cfg.failure_rate {
        Some(t) => b.failure_rate_threshold(t),
        None => b.without_failure_rate_threshold(),
    };
    if let Some(t) = cfg.slow_rate {
        b = b.slow_call_duration(SLOW).slow_call_rate_threshold(t);
    }
    if let Some(n) = cfg.consecutive {
        b = b.consecutive_failures(n);
    }
    let layer = b
        .with_classifier(classify_fn(|r: Result<&u8, &BoxError>| match r {
            Ok(0) => Outcome::Success,
            Ok(1) | Err(_) => Outcome::Failure,
            Ok(_) => Outcome::Ignored,
        }))
        .build()
        .expect("generated configs are valid");
    let handle = layer.handle();
    let inner = service_fn(|(outcome, slow): (u8, bool)| async move {
        if slow {
            tokio::time::sleep(SLOW + Duration::from_millis(1)).await;
        }
        Ok::<u8, BoxError>(outcome)
    });
    let mut svc = layer.layer(inner);
    let mut model = Model::new(cfg.clone());
    for (i, op) in ops.into_iter().enumerate() {
        match op {
            Op::Call(outcome, slow) => {
                let slow = slow && cfg.slow_rate.is_some();
                let expected = model.admit();
                let admitted_in = model.state;
                let got = svc.ready().await.unwrap().call((outcome, slow)).await;
                match (&expected, got) {
                    (Admit::Yes, Ok(_)) => {
                        if slow {
                            model.now += (SLOW + Duration::from_millis(1)).as_nanos() as u64;
                        }
                        model.complete(admitted_in, outcome, slow);
                    }
                    (Admit::No(state, retry), Err(e)) => {
                        let open = e
                            .downcast_ref::<CircuitOpen>()
                            .ok_or_else(|| TestCaseError::fail(format!("step {i}: {e}")))?;
                        prop_assert_eq!(open.state(), *state, "step {}", i);
                        prop_assert_eq!(open.retry_after(), *retry, "step {}", i);
                    }
                    (expected, got) => {
                        return Err(TestCaseError::fail(format!(
                            "step {i} {op:?}: model {expected:?}, breaker {:?} (model {model:?})",
                            got.map_err(|e| e.to_string())
                        )));
                    }
                }
            }
            Op::Advance(ms) => {
                tokio::time::advance(Duration::from_millis(ms)).await;
                model.now += ms * 1_000_000;
            }
            Op::ForceOpen => {
                handle.force_open();
                let opens = model.opens;
                model.enter(State::ForcedOpen);
                model.opens = opens;
            }
            Op::ForceClosed => {
                handle.force_closed();
                let opens = model.opens;
                model.enter(State::Closed);
                model.opens = opens; // by hand, only `reset` resets the backoff
            }
            Op::Disable => {
                handle.disable();
                let opens = model.opens;
                model.enter(State::Disabled);
                model.opens = opens;
            }
            Op::Reset => {
                handle.reset();
                model.opens = 0;
                model.enter(State::Closed);
            }
        }
        model.refresh();
        prop_assert_eq!(handle.state(), model.state, "step {} after {:?}", i, op);
        if matches!(model.state, State::Closed | State::Disabled) {
            let stats = handle.stats();
            let (calls, failures, slow) = model.window();
            prop_assert_eq!(
                (stats.calls, stats.failures, stats.slow_calls),
                (calls, failures, slow),
                "window after step {} ({:?})",
                i,
                op
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn breaker_agrees_with_the_sequential_model(
        cfg in cfg_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..80),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(cfg, ops))?;
    }
}
