//! Scalar quantities written as strings in manifests: durations (`90s`, `1h 30m`),
//! percentages (`0.5%`) and rollback thresholds (either of the two).
//!
//! Each type keeps the exact text the user wrote next to its parsed value, so a
//! manifest serialised back reads the way it was written, and each publishes a JSON
//! Schema pattern that accepts exactly what its parser accepts (a property test in
//! this module holds the two together).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Serialises a quantity as the text it was written as, and reads it back through
/// `FromStr`, so its parse error becomes serde's.
macro_rules! as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Units a duration may use: humantime's, minus its calendar units (months and years
/// have no fixed length, so they have no place in a hold).
const DURATION_UNITS: &str = "ns|nsec|us|usec|ms|msec|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks";

/// The JSON Schema pattern of a duration: `0`, or one or more `<integer><unit>` terms.
pub(crate) fn duration_pattern() -> String {
    format!(r"^(0|[0-9]+ ?({DURATION_UNITS})( ?[0-9]+ ?({DURATION_UNITS}))*)$")
}

/// The JSON Schema pattern of a percentage: a decimal number followed by `%`.
pub(crate) const PERCENT_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?%$";

/// A length of time written the humantime way: `90s`, `5m`, `1h 30m`, `0`.
#[derive(Clone)]
pub struct Duration {
    value: std::time::Duration,
    text: String,
}

impl Duration {
    pub(crate) const ZERO: Duration = Duration { value: std::time::Duration::ZERO, text: String::new() };

    pub(crate) fn from_std(value: std::time::Duration) -> Self {
        Duration { value, text: format_whole(value) }
    }

    pub(crate) fn as_std(&self) -> std::time::Duration {
        self.value
    }

    pub fn as_secs(&self) -> u64 {
        self.value.as_secs()
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.value.is_zero()
    }
}

/// Spells a duration in the units a person would write (`1d 2h`, `90s` as `1m 30s`),
/// never months or years, which humantime's own formatter would use and our grammar
/// refuses. Sub-second parts are kept as milliseconds.
fn format_whole(value: std::time::Duration) -> String {
    let mut rest = value.as_millis();
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut terms = Vec::new();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if rest >= size {
            terms.push(format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    terms.join(" ")
}

impl PartialEq for Duration {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for Duration {}

/// Why a string is not a duration, phrased for a person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration; write a whole number and a unit, like `90s`, `5m` or `1h 30m`")]
pub struct DurationError {
    text: String,
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || DurationError { text: text.to_owned() };
        if !duration_regex_matches(text) {
            return Err(err());
        }
        let value =
            if text == "0" { std::time::Duration::ZERO } else { humantime::parse_duration(text).map_err(|_| err())? };
        Ok(Duration { value, text: text.to_owned() })
    }
}

/// Checks the same grammar as [`duration_pattern`] without a regex engine: terms of
/// digits, an optional single space, a unit, separated by at most one space.
fn duration_regex_matches(text: &str) -> bool {
    if text == "0" {
        return true;
    }
    let units: Vec<&str> = DURATION_UNITS.split('|').collect();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut terms = 0;
    while i < bytes.len() {
        if terms > 0 && bytes[i] == b' ' {
            i += 1;
        }
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return false;
        }
        if i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        if !units.contains(&&text[unit_start..i]) {
            return false;
        }
        terms += 1;
    }
    terms > 0
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text.is_empty() { f.write_str("0s") } else { f.write_str(&self.text) }
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duration({self})")
    }
}

impl Default for Duration {
    fn default() -> Self {
        Duration::ZERO
    }
}

as_text!(Duration);

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration: a whole number and a unit (s, m, h, d, w; also ms), several terms allowed, or 0.",
            "pattern": duration_pattern(),
            "examples": ["90s", "5m", "1h 30m", "24h"]
        })
    }
}

/// A percentage written with its sign, like `0.5%` or `99%`.
#[derive(Clone)]
pub(crate) struct Percent {
    points: f64,
    text: String,
}

impl Percent {
    /// The value as written, in percentage points (`0.5%` is `0.5`).
    pub(crate) fn points(&self) -> f64 {
        self.points
    }

    /// The value as a fraction (`0.5%` is `0.005`).
    pub(crate) fn fraction(&self) -> f64 {
        self.points / 100.0
    }

    #[cfg(test)]
    pub(crate) fn from_points(points: f64) -> Self {
        Percent { points, text: format!("{points}%") }
    }
}

impl PartialEq for Percent {
    fn eq(&self, other: &Self) -> bool {
        self.points == other.points
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a percentage; write a number followed by `%`, like `0.5%` or `99%`")]
pub(crate) struct PercentError {
    text: String,
}

impl FromStr for Percent {
    type Err = PercentError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || PercentError { text: text.to_owned() };
        let number = text.strip_suffix('%').ok_or_else(err)?;
        let (whole, frac) = number.split_once('.').unwrap_or((number, "0"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !digits(frac) {
            return Err(err());
        }
        let points: f64 = number.parse().map_err(|_| err())?;
        Ok(Percent { points, text: text.to_owned() })
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Percent({self})")
    }
}

as_text!(Percent);

impl JsonSchema for Percent {
    fn schema_name() -> Cow<'static, str> {
        "Percent".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A percentage: a decimal number followed by `%`.",
            "pattern": PERCENT_PATTERN,
            "examples": ["0.5%", "5%", "99.9%"]
        })
    }
}

/// The bound of a rollback trigger: a percentage for rates, a duration for latency.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Threshold {
    Percent(Percent),
    Latency(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is neither a percentage (like `5%`) nor a duration (like `2s`)")]
pub(crate) struct ThresholdError {
    text: String,
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(p) = text.parse() {
            return Ok(Threshold::Percent(p));
        }
        match text.parse() {
            Ok(d) => Ok(Threshold::Latency(d)),
            Err(_) => Err(ThresholdError { text: text.to_owned() }),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Percent(p) => p.fmt(f),
            Threshold::Latency(d) => d.fmt(f),
        }
    }
}

as_text!(Threshold);

impl JsonSchema for Threshold {
    fn schema_name() -> Cow<'static, str> {
        "Threshold".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A percentage (`5%`, for errorRate and availability) or a duration (`2s`, `800ms`, for p95Latency).",
            "pattern": format!("{}|{}", PERCENT_PATTERN, duration_pattern()),
            "examples": ["5%", "99%", "2s", "800ms"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_parse_as_humantime_does() {
        let cases =
            [("90s", 90), ("5m", 300), ("1h 30m", 5400), ("1h30m", 5400), ("24h", 86_400), ("0", 0), ("2d", 172_800)];
        for (text, secs) in cases {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.as_secs(), secs, "{text}");
            assert_eq!(d.to_string(), text);
        }
    }

    #[test]
    fn durations_refuse_what_a_person_might_mistype() {
        for text in ["", "1 hour and a half", "5", "-5m", "1.5h", "5 m  ", "1month", "1y", "m", "10 "] {
            assert!(text.parse::<Duration>().is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn percentages_keep_points_and_fraction() {
        let p: Percent = "0.5%".parse().unwrap();
        assert_eq!(p.points(), 0.5);
        assert!((p.fraction() - 0.005).abs() < 1e-12);
        for bad in ["0.5", "%", ".5%", "5.%", "-1%", "1e2%", "5 %"] {
            assert!(bad.parse::<Percent>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn thresholds_tell_rates_from_latencies() {
        assert!(matches!("5%".parse::<Threshold>(), Ok(Threshold::Percent(_))));
        assert!(matches!("2s".parse::<Threshold>(), Ok(Threshold::Latency(_))));
        assert!("fast".parse::<Threshold>().is_err());
    }

    fn schema_regex(pattern: &str) -> jsonschema::Validator {
        jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": pattern})).unwrap()
    }

    proptest! {
        // The schema editors use and the parser canary uses must agree on every string.
        #[test]
        fn duration_schema_pattern_agrees_with_parser(text in "[0-9]{0,3}( ?)(ms|s|m|h|d|w|min|hours|x|)( ?[0-9]{1,2}(s|m|h|y)?){0,2}") {
            let by_schema = schema_regex(&duration_pattern()).is_valid(&serde_json::json!(text));
            let by_parser = text.parse::<Duration>().is_ok();
            prop_assert_eq!(by_schema, by_parser, "{:?}", text);
        }

        #[test]
        fn percent_schema_pattern_agrees_with_parser(text in "[0-9.]{0,4}%?") {
            let by_schema = schema_regex(PERCENT_PATTERN).is_valid(&serde_json::json!(text));
            let by_parser = text.parse::<Percent>().is_ok();
            prop_assert_eq!(by_schema, by_parser, "{:?}", text);
        }

        #[test]
        fn durations_round_trip_through_their_text(secs in 0u64..10_000_000) {
            let d = Duration::from_std(std::time::Duration::from_secs(secs));
            let back: Duration = d.to_string().parse().unwrap();
            prop_assert_eq!(back.as_std(), d.as_std());
        }
    }
}
