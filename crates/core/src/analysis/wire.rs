//! Cloud Monitoring's `timeSeries.list` answers read straight into the numbers the
//! judge uses: the labels canary reads, each point's interval as epoch seconds, counts
//! and latency distributions — no JSON tree in between (a pass reads hundreds of
//! thousands of points), and anything else in the answer skipped unread.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;

use crate::time::{epoch_secs, parse_rfc3339};

/// One series of an answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TimeSeries {
    pub metric: MetricPart,
    pub resource: ResourcePart,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MetricPart {
    pub labels: MetricLabels,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MetricLabels {
    pub response_code_class: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResourcePart {
    pub labels: ResourceLabels,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResourceLabels {
    pub location: String,
    pub revision_name: String,
}

/// A point: its interval (epoch seconds; `None` where the answer's time does not parse)
/// and its value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Point {
    pub interval: Interval,
    pub value: PointValue,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Interval {
    #[serde(deserialize_with = "time")]
    pub start_time: Option<u64>,
    #[serde(deserialize_with = "time")]
    pub end_time: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PointValue {
    #[serde(deserialize_with = "integer")]
    pub int64_value: Option<u64>,
    pub distribution_value: Option<WireDistribution>,
}

/// A `distributionValue` as sent; `Distribution::from_parts` reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WireDistribution {
    #[serde(deserialize_with = "integer")]
    pub count: Option<u64>,
    pub mean: Option<f64>,
    pub sum_of_squared_deviation: Option<f64>,
    /// Small (a layout's three numbers, or a list of bounds): read as JSON.
    pub bucket_options: Value,
    pub bucket_counts: Counts,
}

/// Bucket counts, each an integer or a decimal string (as int64 is sent in JSON).
#[derive(Debug, Clone, Default)]
pub struct Counts(pub Vec<u64>);

impl<'de> Deserialize<'de> for Counts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Counts, D::Error> {
        struct Each;
        impl<'de> Visitor<'de> for Each {
            type Value = Counts;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of counts")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Counts, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(Integer(v)) = seq.next_element()? {
                    out.push(v.unwrap_or(0));
                }
                Ok(Counts(out))
            }
        }
        d.deserialize_seq(Each)
    }
}

/// An integer sent as a number or a decimal string; `None` for anything else.
struct Integer(Option<u64>);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Integer, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = Integer;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer or a decimal string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Integer, E> {
                Ok(Integer(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Integer, E> {
                Ok(Integer(u64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Integer, E> {
                Ok(Integer((v.is_finite() && v >= 0.0 && v.fract() == 0.0).then_some(v as u64)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Integer, E> {
                Ok(Integer(v.parse().ok()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Integer, E> {
                Ok(Integer(None))
            }
        }
        d.deserialize_any(Either)
    }
}

fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Integer::deserialize(d)?.0)
}

fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
    Ok(text.and_then(|t| parse_rfc3339(&t)).map(epoch_secs))
}

/// One page of an answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Page {
    pub(crate) time_series: Vec<TimeSeries>,
    pub(crate) next_page_token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_read_into_numbers_and_odd_values_into_nothing() {
        let page: Page = serde_json::from_str(
            r#"{"timeSeries": [{"metric": {"type": "x", "labels": {"response_code_class": "5xx", "other": "y"}},
                 "resource": {"type": "cloud_run_revision", "labels": {"location": "r", "revision_name": "a-1"}},
                 "metricKind": "DELTA", "valueType": "INT64",
                 "points": [{"interval": {"startTime": "2026-11-19T01:00:00Z", "endTime": "2026-11-19T02:00:00Z"}, "value": {"int64Value": "42"}},
                            {"interval": {"endTime": "soon"}, "value": {"int64Value": 7}},
                            {"interval": {"endTime": "2026-11-19T02:01:00Z"}, "value": {"int64Value": "-3"}},
                            {"interval": {"endTime": "2026-11-19T02:02:00Z"}, "value": {"distributionValue": {"count": "3", "bucketCounts": ["1", 2, null]}}}]}],
                "nextPageToken": "t2", "unreachable": []}"#,
        )
        .unwrap();
        assert_eq!(page.next_page_token, "t2");
        let s = &page.time_series[0];
        assert_eq!((s.resource.labels.location.as_str(), s.resource.labels.revision_name.as_str()), ("r", "a-1"));
        assert_eq!(s.metric.labels.response_code_class.as_deref(), Some("5xx"));
        let p = &s.points;
        assert_eq!(
            (p[0].interval.start_time, p[0].interval.end_time, p[0].value.int64_value),
            (Some(1_795_050_000), Some(1_795_053_600), Some(42))
        );
        assert_eq!((p[1].interval.end_time, p[1].value.int64_value), (None, Some(7)));
        assert_eq!(p[2].value.int64_value, None);
        let d = p[3].value.distribution_value.as_ref().unwrap();
        assert_eq!((d.count, d.bucket_counts.0.clone()), (Some(3), vec![1, 2, 0]));
    }
}
