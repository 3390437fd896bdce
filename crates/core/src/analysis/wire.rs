//! Cloud Monitoring's `timeSeries.list` answers read straight into the numbers the
//! judge uses: the labels canary reads, each point's interval as epoch seconds, counts
//! and latency distributions — no JSON tree in between (a pass reads hundreds of
//! thousands of points), and anything else in the answer skipped unread.

use crate::analysis::distribution::BucketOptions;
use crate::time::{epoch_secs, parse_rfc3339};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

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
    /// The bucket layout, when it is one canary knows (read straight from the answer:
    /// a JSON tree for each of a pass's hundreds of thousands of distributions cost
    /// more than the rest of the distribution).
    #[serde(deserialize_with = "buckets")]
    pub(crate) bucket_options: Option<BucketOptions>,
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

/// `bucketOptions` as one of the three layouts Cloud Monitoring sends: exponential
/// first, then linear, then explicit bounds; a layout's numbers as JSON numbers or
/// decimal strings, bounds as numbers. Anything else (a wrong type anywhere, a missing
/// number) reads as `None`, never as an error for the whole page.
fn buckets<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BucketOptions>, D::Error> {
    let layouts: Layouts = d.deserialize_any(MapOrNothing(std::marker::PhantomData))?;
    if let Some(e) = layouts.exponential {
        let (Some(n), Some(growth), Some(scale)) = (e.num_finite, e.growth, e.scale) else { return Ok(None) };
        return Ok(Some(BucketOptions::Exponential { num_finite: n as usize, growth, scale }));
    }
    if let Some(l) = layouts.linear {
        let (Some(n), Some(width)) = (l.num_finite, l.width) else { return Ok(None) };
        return Ok(Some(BucketOptions::Linear { num_finite: n as usize, width, offset: l.offset.unwrap_or(0.0) }));
    }
    Ok(layouts.explicit.and_then(|e| e.bounds).map(|bounds| BucketOptions::Explicit { bounds }))
}

/// The `Visitor` methods of a tolerant reader for the JSON values it does not read:
/// each skipped, as `$none`.
macro_rules! otherwise {
    ($t:ty, $none:expr, $($skip:ident),*) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$t, E> {
            Ok($none)
        }
        fn visit_unit<E: de::Error>(self) -> Result<$t, E> {
            Ok($none)
        }
        otherwise!(@more $t, $none, $($skip),*);
    };
    (@more $t:ty, $none:expr, $($skip:ident),*) => {
        $(otherwise!(@one $skip, $t, $none);)*
    };
    (@one numbers, $t:ty, $none:expr) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$t, E> {
            Ok($none)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$t, E> {
            Ok($none)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$t, E> {
            Ok($none)
        }
    };
    (@one strings, $t:ty, $none:expr) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$t, E> {
            Ok($none)
        }
    };
    (@one lists, $t:ty, $none:expr) => {
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<$t, A::Error> {
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            Ok($none)
        }
    };
    (@one maps, $t:ty, $none:expr) => {
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<$t, A::Error> {
            while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
            Ok($none)
        }
    };
}

/// A map read field by field into `T`; any other JSON value is skipped and reads as
/// `T::default()`.
trait FromMap: Default {
    fn field<'de, A: de::MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

struct MapOrNothing<T>(std::marker::PhantomData<T>);

impl<'de, T: FromMap> Deserialize<'de> for MapOrNothingValue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MapOrNothing(std::marker::PhantomData)).map(MapOrNothingValue)
    }
}

/// [`MapOrNothing`]'s value, to read as a map's field.
struct MapOrNothingValue<T>(T);

impl<'de, T: FromMap> Visitor<'de> for MapOrNothing<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any value")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut out = T::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            out.field(&key, &mut map)?;
        }
        Ok(out)
    }
    otherwise!(T, T::default(), lists, numbers, strings);
}

#[derive(Default)]
struct Layouts {
    exponential: Option<Layout>,
    linear: Option<Layout>,
    explicit: Option<Explicit>,
}

impl FromMap for Layouts {
    fn field<'de, A: de::MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "exponentialBuckets" => self.exponential = Some(map.next_value::<MapOrNothingValue<Layout>>()?.0),
            "linearBuckets" => self.linear = Some(map.next_value::<MapOrNothingValue<Layout>>()?.0),
            "explicitBuckets" => self.explicit = Some(map.next_value::<MapOrNothingValue<Explicit>>()?.0),
            _ => {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Layout {
    num_finite: Option<f64>,
    growth: Option<f64>,
    scale: Option<f64>,
    width: Option<f64>,
    offset: Option<f64>,
}

impl FromMap for Layout {
    fn field<'de, A: de::MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        let slot = match key {
            "numFiniteBuckets" => &mut self.num_finite,
            "growthFactor" => &mut self.growth,
            "scale" => &mut self.scale,
            "width" => &mut self.width,
            "offset" => &mut self.offset,
            _ => {
                map.next_value::<de::IgnoredAny>()?;
                return Ok(());
            }
        };
        *slot = map.next_value::<Number<true>>()?.0;
        Ok(())
    }
}

#[derive(Default)]
struct Explicit {
    bounds: Option<Vec<f64>>,
}

impl FromMap for Explicit {
    fn field<'de, A: de::MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        if key == "bounds" {
            self.bounds = map.next_value::<Bounds>()?.0;
        } else {
            map.next_value::<de::IgnoredAny>()?;
        }
        Ok(())
    }
}

/// A list of bounds: its numbers (anything else in it left out); `None` when not a list.
struct Bounds(Option<Vec<f64>>);

impl<'de> Deserialize<'de> for Bounds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bounds, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Bounds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of bounds")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bounds, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(Number::<false>(v)) = seq.next_element()? {
                    out.extend(v);
                }
                Ok(Bounds(Some(out)))
            }
            otherwise!(Bounds, Bounds(None), maps, numbers, strings);
        }
        d.deserialize_any(List)
    }
}

/// A number, or with `STRINGS` a decimal string too; `None` for anything else.
struct Number<const STRINGS: bool>(Option<f64>);

impl<'de, const STRINGS: bool> Deserialize<'de> for Number<STRINGS> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Number<STRINGS>, D::Error> {
        struct Scalar<const S: bool>;
        impl<'de, const S: bool> Visitor<'de> for Scalar<S> {
            type Value = Number<S>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number<S>, E> {
                Ok(Number(Some(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number<S>, E> {
                Ok(Number(Some(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number<S>, E> {
                Ok(Number(Some(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Number<S>, E> {
                Ok(Number(if S { v.parse().ok() } else { None }))
            }
            otherwise!(Number<S>, Number(None), lists, maps);
        }
        d.deserialize_any(Scalar::<STRINGS>)
    }
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

    #[test]
    fn bucket_layouts_read_as_the_json_tree_read_them_and_odd_ones_as_none() {
        // What the JSON-tree reader this replaced made of each (exponential before
        // linear before explicit; strings as numbers except in bounds).
        let exponential = BucketOptions::Exponential { num_finite: 100, growth: 1.4, scale: 1.0 };
        let layouts = [
            (
                r#"{"exponentialBuckets": {"numFiniteBuckets": "100", "growthFactor": 1.4, "scale": 1}, "linearBuckets": {"numFiniteBuckets": 3, "width": 1}}"#,
                Some(exponential),
            ),
            (
                r#"{"linearBuckets": {"numFiniteBuckets": 3, "width": "10", "extra": [1, {"x": 2}]}}"#,
                Some(BucketOptions::Linear { num_finite: 3, width: 10.0, offset: 0.0 }),
            ),
            (
                r#"{"explicitBuckets": {"bounds": [1, "2", 4.5, null, [3]]}}"#,
                Some(BucketOptions::Explicit { bounds: vec![1.0, 4.5] }),
            ),
            (r#"{"exponentialBuckets": {"numFiniteBuckets": 100, "growthFactor": "fast", "scale": 1}}"#, None),
            (r#"{"exponentialBuckets": [1, 2, 3]}"#, None),
            (r#"{"explicitBuckets": {"bounds": {"a": 1}}}"#, None),
            (r#""buckets""#, None),
            (r#"null"#, None),
            (r#"{}"#, None),
        ];
        for (layout, expected) in layouts {
            let text = format!(r#"{{"count": "1", "bucketOptions": {layout}, "bucketCounts": ["1"]}}"#);
            let read: WireDistribution = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{layout}: {e}"));
            assert_eq!(read.bucket_options, expected, "{layout}");
            // Read from a JSON tree (`Distribution::from_wire`), the same.
            let tree: serde_json::Value = serde_json::from_str(&text).unwrap();
            let from_tree: WireDistribution = serde::Deserialize::deserialize(&tree).unwrap();
            assert_eq!(from_tree.bucket_options, read.bucket_options, "{layout} from a tree");
        }
    }
}
