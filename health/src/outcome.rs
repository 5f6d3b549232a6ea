//! What a check reports: [`Outcome`] and [`ObservedValue`].

use std::borrow::Cow;
use std::fmt;

use crate::Status;

/// The result of one run of a check.
///
/// Build one with [`Outcome::pass`], [`Outcome::warn`] or [`Outcome::fail`], and add
/// an observed value with [`Outcome::observed`]. Closures given to
/// [`check_fn`](crate::check_fn) may also return anything that implements
/// [`IntoOutcome`], such as `Result<(), E>`.
///
/// `output` is shown only for `warn` and `fail` (the draft says it should be omitted
/// for `pass`), and only to callers allowed to see details.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub(crate) status: Status,
    pub(crate) output: Option<String>,
    pub(crate) observed: Option<(ObservedValue, Option<Cow<'static, str>>)>,
}

impl Outcome {
    /// A passing outcome.
    pub fn pass() -> Self {
        Self {
            status: Status::Pass,
            output: None,
            observed: None,
        }
    }

    /// A warning, with a human-readable reason.
    pub fn warn(output: impl Into<String>) -> Self {
        Self {
            status: Status::Warn,
            output: Some(output.into()),
            observed: None,
        }
    }

    /// A failure, with a human-readable reason (an error message).
    pub fn fail(output: impl Into<String>) -> Self {
        Self {
            status: Status::Fail,
            output: Some(output.into()),
            observed: None,
        }
    }

    /// An outcome with the given status and no output.
    pub fn with_status(status: Status) -> Self {
        Self {
            status,
            output: None,
            observed: None,
        }
    }

    /// Attaches the measured value (`observedValue`) and its unit (`observedUnit`, for
    /// example `"ms"`, `"percent"` or `"connections"`; an empty unit is left out).
    ///
    /// Without it, the check's run time in milliseconds is reported (unit `ms`). Name
    /// the check's measurement to match with
    /// [`HealthCheck::measurement`](crate::HealthCheck::measurement).
    #[must_use]
    pub fn observed(
        mut self,
        value: impl Into<ObservedValue>,
        unit: impl Into<Cow<'static, str>>,
    ) -> Self {
        let unit = unit.into();
        let unit = (!unit.is_empty()).then_some(unit);
        self.observed = Some((value.into(), unit));
        self
    }

    /// The outcome's status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The outcome's output, if any.
    pub fn output(&self) -> Option<&str> {
        self.output.as_deref()
    }

    /// The observed value and unit, if any.
    pub fn observed_value(&self) -> Option<(&ObservedValue, Option<&str>)> {
        self.observed.as_ref().map(|(v, u)| (v, u.as_deref()))
    }
}

/// A check's measured value, reported as `observedValue`.
#[derive(Debug, Clone, PartialEq)]
pub enum ObservedValue {
    /// A whole number.
    Int(i64),
    /// A real number. Non-finite values are reported as `null`.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string, such as a circuit breaker's state.
    Text(Cow<'static, str>),
}

impl ObservedValue {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            ObservedValue::Int(i) => (*i).into(),
            ObservedValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            ObservedValue::Bool(b) => (*b).into(),
            ObservedValue::Text(s) => serde_json::Value::String(s.to_string()),
        }
    }
}

impl fmt::Display for ObservedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObservedValue::Int(i) => write!(f, "{i}"),
            ObservedValue::Float(x) => write!(f, "{x}"),
            ObservedValue::Bool(b) => write!(f, "{b}"),
            ObservedValue::Text(s) => f.write_str(s),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for ObservedValue {
            fn from(v: $t) -> Self {
                ObservedValue::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for ObservedValue {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(ObservedValue::Float(v as f64), ObservedValue::Int)
    }
}

impl From<usize> for ObservedValue {
    fn from(v: usize) -> Self {
        ObservedValue::from(v as u64)
    }
}

impl From<f64> for ObservedValue {
    fn from(v: f64) -> Self {
        ObservedValue::Float(v)
    }
}

impl From<f32> for ObservedValue {
    fn from(v: f32) -> Self {
        ObservedValue::Float(f64::from(v))
    }
}

impl From<bool> for ObservedValue {
    fn from(v: bool) -> Self {
        ObservedValue::Bool(v)
    }
}

impl From<&'static str> for ObservedValue {
    fn from(v: &'static str) -> Self {
        ObservedValue::Text(Cow::Borrowed(v))
    }
}

impl From<String> for ObservedValue {
    fn from(v: String) -> Self {
        ObservedValue::Text(Cow::Owned(v))
    }
}

/// Converts what a closure check returns into an [`Outcome`].
///
/// Implemented for [`Outcome`], [`Status`], `()` (pass), `bool` (`true` passes) and
/// `Result<T, E>` where `T: IntoOutcome` and `E: Display` (an error fails with its
/// message as output).
pub trait IntoOutcome {
    /// Performs the conversion.
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for Outcome {
    fn into_outcome(self) -> Outcome {
        self
    }
}

impl IntoOutcome for Status {
    fn into_outcome(self) -> Outcome {
        Outcome::with_status(self)
    }
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Outcome {
        Outcome::pass()
    }
}

impl IntoOutcome for bool {
    fn into_outcome(self) -> Outcome {
        if self {
            Outcome::pass()
        } else {
            Outcome::fail("check returned false")
        }
    }
}

impl<T: IntoOutcome, E: fmt::Display> IntoOutcome for Result<T, E> {
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(t) => t.into_outcome(),
            Err(e) => Outcome::fail(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_convert() {
        let ok: Result<(), std::io::Error> = Ok(());
        assert_eq!(ok.into_outcome(), Outcome::pass());
        let err: Result<(), std::io::Error> = Err(std::io::Error::other("refused"));
        assert_eq!(err.into_outcome(), Outcome::fail("refused"));
        let warn: Result<Outcome, String> = Ok(Outcome::warn("slow"));
        assert_eq!(warn.into_outcome().status(), Status::Warn);
        assert_eq!(false.into_outcome().status(), Status::Fail);
        assert_eq!(Status::Warn.into_outcome().output(), None);
    }

    #[test]
    fn observed_values_render() {
        assert_eq!(ObservedValue::from(3u8).to_json(), serde_json::json!(3));
        assert_eq!(ObservedValue::from(1.5).to_json(), serde_json::json!(1.5));
        assert_eq!(
            ObservedValue::Float(f64::NAN).to_json(),
            serde_json::Value::Null
        );
        assert_eq!(
            ObservedValue::from("open").to_json(),
            serde_json::json!("open")
        );
        assert_eq!(
            ObservedValue::from(u64::MAX).to_json(),
            serde_json::json!(u64::MAX as f64)
        );
    }
}
