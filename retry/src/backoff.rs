//! Backoff schedules and jitter.
//!
//! The wait before retry number `n` (0 for the first retry) is computed in two steps:
//!
//! 1. the [`Backoff`] gives a base delay `temp = min(max_delay, backoff(n))`;
//! 2. the [`Jitter`] spreads it, following the AWS Architecture Blog's
//!    ["Exponential Backoff And Jitter"](https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/)
//!    definitions, so that many clients failing together do not retry in lock-step.
//!
//! Every jittered delay lies in `0..=max_delay`; the bounds of each kind are on [`Jitter`]'s
//! variants. Jitter draws from a [`fastrand`] generator; give the builder a
//! [`seed`](crate::Builder::seed) to make a run reproducible in tests.

use std::time::Duration;

/// How the base delay grows from one retry to the next (before [`Jitter`]).
///
/// Every delay is capped by the builder's [`max_delay`](crate::Builder::max_delay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// The same delay before every retry.
    Constant(Duration),
    /// `base + step * n` before retry `n` (0-based).
    Linear {
        /// The delay before the first retry.
        base: Duration,
        /// Added for every further retry.
        step: Duration,
    },
    /// `base * factor^n` before retry `n` (0-based).
    Exponential {
        /// The delay before the first retry.
        base: Duration,
        /// The growth factor, at least 1.0 and finite.
        factor: f64,
    },
}

impl Backoff {
    /// The same delay `delay` before every retry.
    pub const fn constant(delay: Duration) -> Self {
        Self::Constant(delay)
    }

    /// `base`, then `base + step`, `base + 2 * step`, …
    pub const fn linear(base: Duration, step: Duration) -> Self {
        Self::Linear { base, step }
    }

    /// `base`, then `base * factor`, `base * factor²`, … (the default is 100 ms doubling).
    pub const fn exponential(base: Duration, factor: f64) -> Self {
        Self::Exponential { base, factor }
    }

    /// The delay before the first retry.
    pub fn base(&self) -> Duration {
        match *self {
            Self::Constant(d) => d,
            Self::Linear { base, .. } | Self::Exponential { base, .. } => base,
        }
    }

    /// The un-jittered delay before retry `retry` (0-based), capped at `cap`.
    pub fn delay(&self, retry: u32, cap: Duration) -> Duration {
        let d = match *self {
            Self::Constant(d) => d,
            Self::Linear { base, step } => step
                .checked_mul(retry)
                .and_then(|s| base.checked_add(s))
                .unwrap_or(cap),
            Self::Exponential { base, factor } => {
                let secs = base.as_secs_f64() * factor.powi(retry.min(i32::MAX as u32) as i32);
                // An unvalidated factor (negative, NaN) must not panic here either.
                if secs.is_finite() && secs >= 0.0 && secs < cap.as_secs_f64() {
                    Duration::from_secs_f64(secs)
                } else {
                    cap
                }
            }
        };
        d.min(cap)
    }

    pub(crate) fn validate(&self) -> Result<(), crate::ConfigError> {
        if let Self::Exponential { factor, .. } = *self
            && !(factor.is_finite() && factor >= 1.0)
        {
            return Err(crate::ConfigError::new(
                "backoff",
                format!("exponential factor must be finite and in 1.0..=f64::MAX, got {factor}"),
            ));
        }
        Ok(())
    }
}

impl Default for Backoff {
    /// Exponential: 100 ms, doubling.
    fn default() -> Self {
        Self::exponential(Duration::from_millis(100), 2.0)
    }
}

/// How the base delay is randomised (AWS definitions; `temp` is the capped [`Backoff`] delay,
/// `cap` the builder's [`max_delay`](crate::Builder::max_delay)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Exactly `temp`.
    None,
    /// Uniform in `0..=temp` (the default: the least total work for the server).
    #[default]
    Full,
    /// `temp / 2 + uniform(0..=temp / 2)`, so in `temp / 2..=temp`.
    Equal,
    /// `min(cap, uniform(base..=previous * 3))`, where `previous` is the last delay (initially
    /// the backoff's base); the backoff kind only supplies `base`.
    Decorrelated,
}

impl Jitter {
    /// The jittered delay before retry `retry`, given the previous delay (`None` before the
    /// first retry).
    pub(crate) fn apply(
        self,
        backoff: &Backoff,
        retry: u32,
        previous: Option<Duration>,
        cap: Duration,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        let temp = backoff.delay(retry, cap);
        match self {
            Self::None => temp,
            Self::Full => uniform(rng, Duration::ZERO, temp),
            Self::Equal => {
                let half = temp / 2;
                half + uniform(rng, Duration::ZERO, temp - half)
            }
            Self::Decorrelated => {
                let base = backoff.base().min(cap);
                let prev = previous.unwrap_or(base);
                let high = prev.saturating_mul(3).max(base);
                uniform(rng, base, high).min(cap)
            }
        }
    }
}

fn uniform(rng: &mut fastrand::Rng, low: Duration, high: Duration) -> Duration {
    let lo = u64::try_from(low.as_nanos()).unwrap_or(u64::MAX);
    let hi = u64::try_from(high.as_nanos()).unwrap_or(u64::MAX);
    if hi <= lo {
        return low;
    }
    Duration::from_nanos(rng.u64(lo..=hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn exact_schedules_without_jitter() {
        let cap = Duration::from_secs(1);
        let sched = |b: Backoff| (0..6).map(|n| b.delay(n, cap)).collect::<Vec<_>>();
        assert_eq!(sched(Backoff::constant(7 * MS)), vec![7 * MS; 6]);
        assert_eq!(
            sched(Backoff::linear(10 * MS, 5 * MS)),
            [10, 15, 20, 25, 30, 35].map(|m| m * MS)
        );
        assert_eq!(
            sched(Backoff::exponential(100 * MS, 2.0)),
            [100, 200, 400, 800, 1000, 1000].map(|m| m * MS)
        );
    }

    #[test]
    fn huge_retry_numbers_saturate_at_the_cap() {
        let cap = Duration::from_secs(3);
        assert_eq!(Backoff::exponential(MS, 10.0).delay(u32::MAX, cap), cap);
        assert_eq!(
            Backoff::linear(Duration::MAX, Duration::MAX).delay(u32::MAX, cap),
            cap
        );
    }

    #[test]
    fn an_unvalidated_factor_never_panics() {
        let cap = Duration::from_secs(1);
        for f in [-2.0, f64::NAN, f64::NEG_INFINITY, 0.0] {
            for n in 0..5 {
                assert!(Backoff::exponential(MS, f).delay(n, cap) <= cap);
            }
        }
    }

    #[test]
    fn factor_below_one_or_nan_is_rejected() {
        for f in [0.5, f64::NAN, f64::INFINITY, -2.0] {
            let e = Backoff::exponential(MS, f).validate().unwrap_err();
            assert_eq!(e.field(), "backoff");
        }
    }

    fn backoffs() -> impl Strategy<Value = Backoff> {
        let d = (0u64..5_000).prop_map(Duration::from_millis);
        prop_oneof![
            d.clone().prop_map(Backoff::constant),
            (d.clone(), d.clone()).prop_map(|(b, s)| Backoff::linear(b, s)),
            (d, 1.0f64..10.0).prop_map(|(b, f)| Backoff::exponential(b, f)),
        ]
    }

    proptest! {
        #[test]
        fn jittered_delays_stay_within_documented_bounds(
            backoff in backoffs(),
            cap_ms in 1u64..20_000,
            seed in any::<u64>(),
            retries in 1u32..40,
        ) {
            let cap = Duration::from_millis(cap_ms);
            for jitter in [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
                let mut rng = fastrand::Rng::with_seed(seed);
                let mut prev = None;
                for n in 0..retries {
                    let d = jitter.apply(&backoff, n, prev, cap, &mut rng);
                    let temp = backoff.delay(n, cap);
                    prop_assert!(d <= cap);
                    match jitter {
                        Jitter::None => prop_assert_eq!(d, temp),
                        Jitter::Full => prop_assert!(d <= temp),
                        Jitter::Equal => prop_assert!(d >= temp / 2 && d <= temp),
                        Jitter::Decorrelated => {
                            let base = backoff.base().min(cap);
                            prop_assert!(d >= base.min(cap));
                            prop_assert!(d <= prev.unwrap_or(base).saturating_mul(3).max(base));
                        }
                    }
                    prev = Some(d);
                }
            }
        }
    }
}
