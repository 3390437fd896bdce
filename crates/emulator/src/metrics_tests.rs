//! The traffic model and the Cloud Monitoring API, with a fixed seed: emitted rates
//! sit within their binomial confidence intervals, p95 from emitted buckets matches
//! the profile, splits are honoured, the publishing delay hides recent minutes, timed
//! degradations appear on time, and aligners and reducers agree with hand-computed
//! values.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::clock::rfc3339;
use super::tests::{Fixture, NAME, canary_body};
use crate::histogram::Histogram;

const REQUEST_COUNT: &str = "metric.type=\"run.googleapis.com/request_count\"";
const LATENCIES: &str = "metric.type=\"run.googleapis.com/request_latencies\"";

impl Fixture {
    async fn load(&self, rps: f64) {
        let (status, body) = self.json("PUT", "/emulator/v1/load", json!({"service": NAME, "rps": rps})).await;
        assert_eq!(status, 200, "{body}");
    }

    async fn profile(&self, profile: Value) {
        let (status, body) = self.json("PUT", "/emulator/v1/profiles", profile).await;
        assert_eq!(status, 200, "{body}");
    }

    fn now(&self) -> SystemTime {
        self.emulator.now()
    }

    /// `timeSeries.list` with the given filter and extra parameters, over [start, now].
    async fn series(&self, filter: &str, start: SystemTime, extra: &[(&str, &str)]) -> Vec<Value> {
        let end = rfc3339(self.now());
        let start = rfc3339(start);
        let mut params =
            vec![("filter", filter), ("interval.startTime", start.as_str()), ("interval.endTime", end.as_str())];
        params.extend_from_slice(extra);
        let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let (status, body) = self.call("GET", &format!("/v3/projects/demo/timeSeries?{query}"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["executionErrors"], json!([]));
        body["timeSeries"].as_array().cloned().unwrap_or_default()
    }

    /// [`Fixture::series`] summed by `ALIGN_DELTA` over periods of `period` (`"60s"`, …).
    async fn deltas(&self, filter: &str, start: SystemTime, period: &str) -> Vec<Value> {
        self.series(
            filter,
            start,
            &[("aggregation.alignmentPeriod", period), ("aggregation.perSeriesAligner", "ALIGN_DELTA")],
        )
        .await
    }
}

fn int(point: &Value) -> u64 {
    point["value"]["int64Value"].as_str().unwrap().parse().unwrap()
}

fn total(series: &[Value], class: &str) -> u64 {
    series
        .iter()
        .filter(|s| s["metric"]["labels"]["response_code_class"] == class)
        .flat_map(|s| s["points"].as_array().unwrap().iter().map(int))
        .sum()
}

/// Wilson score interval for a binomial proportion.
fn wilson(successes: u64, n: u64, z: f64) -> (f64, f64) {
    let (k, n) = (successes as f64, n as f64);
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    (centre - half, centre + half)
}

#[tokio::test]
async fn error_rates_sit_within_their_binomial_confidence_intervals() {
    let f = Fixture::new();
    f.profile(json!({"image": "gcr.io/demo/shop:v1", "errorRate": 0.02, "clientErrorRate": 0.05})).await;
    f.shop().await;
    let start = f.now();
    f.load(20.0).await;
    f.advance(3 * 3600);
    let series = f.series(REQUEST_COUNT, start, &[]).await;
    let (ok, client, server) = (total(&series, "2xx"), total(&series, "4xx"), total(&series, "5xx"));
    let n = ok + client + server;
    // ~3 h minus the publishing delay at 20 rps.
    let expected = 20.0 * (3.0 * 3600.0 - 180.0);
    assert!((n as f64 - expected).abs() < 4.0 * expected.sqrt() + 1200.0, "{n} requests, expected about {expected}");
    // 99.9% intervals: a fixed seed makes this deterministic, the width makes it honest.
    let (lo, hi) = wilson(server, n, 3.29);
    assert!(lo <= 0.02 && 0.02 <= hi, "5xx rate {} outside its interval", server as f64 / n as f64);
    let (lo, hi) = wilson(client, n, 3.29);
    assert!(lo <= 0.05 && 0.05 <= hi, "4xx rate {} outside its interval", client as f64 / n as f64);
    assert_eq!(series[0]["metricKind"], "DELTA");
    assert_eq!(series[0]["valueType"], "INT64");
    assert_eq!(series[0]["resource"]["type"], "cloud_run_revision");
    let labels = &series[0]["resource"]["labels"];
    for label in ["project_id", "service_name", "revision_name", "location", "configuration_name"] {
        assert!(labels[label].is_string(), "{label}");
    }
}

#[tokio::test]
async fn p95_from_emitted_buckets_is_within_5_percent_of_the_profile() {
    let f = Fixture::new();
    f.profile(json!({"image": "gcr.io/demo/shop:v1", "p50Ms": 120, "p95Ms": 450})).await;
    f.shop().await;
    let start = f.now();
    f.load(10.0).await;
    f.advance(30 * 60);
    let series = f.series(LATENCIES, start, &[]).await;
    assert_eq!(series.len(), 1);
    assert_eq!(series[0]["valueType"], "DISTRIBUTION");
    assert_eq!(series[0]["unit"], "ms");
    let mut merged = Histogram::latency();
    for point in series[0]["points"].as_array().unwrap() {
        merged.add(&from_wire(&point["value"]["distributionValue"]));
    }
    assert!(merged.count >= 10_000, "{} requests", merged.count);
    let p95 = merged.quantile(0.95).unwrap();
    assert!((p95 / 450.0 - 1.0).abs() < 0.05, "p95 {p95} vs 450");
    let p50 = merged.quantile(0.5).unwrap();
    assert!((p50 / 120.0 - 1.0).abs() < 0.05, "p50 {p50} vs 120");
    // The server-side ALIGN_PERCENTILE_95 over the whole window agrees.
    let aligned = f
        .series(
            LATENCIES,
            start,
            &[("aggregation.alignmentPeriod", "3600s"), ("aggregation.perSeriesAligner", "ALIGN_PERCENTILE_95")],
        )
        .await;
    let server_p95 = aligned[0]["points"][0]["value"]["doubleValue"].as_f64().unwrap();
    assert!((server_p95 / p95 - 1.0).abs() < 0.01, "{server_p95} vs {p95}");
    assert_eq!(aligned[0]["valueType"], "DOUBLE");
    assert_eq!(aligned[0]["metricKind"], "GAUGE");
}

#[tokio::test]
async fn traffic_splits_are_honoured_over_time() {
    let f = Fixture::new();
    let service = f.shop().await;
    f.load(50.0).await;
    let mut body = canary_body(&service, "gcr.io/demo/shop:v2", "shop-v2");
    body["traffic"][0]["percent"] = 90.into();
    body["traffic"][1]["percent"] = 10.into();
    assert_eq!(f.patch(body).await.0, 200);
    f.advance(11);
    let start = f.now();
    f.advance(3600);
    let series = f.series(REQUEST_COUNT, start, &[]).await;
    let by_revision = |r: &str| -> u64 {
        series
            .iter()
            .filter(|s| s["resource"]["labels"]["revision_name"] == r)
            .flat_map(|s| s["points"].as_array().unwrap().iter().map(int))
            .sum()
    };
    let canary = by_revision("shop-v2");
    let all: u64 = series.iter().flat_map(|s| s["points"].as_array().unwrap().iter().map(int)).sum();
    let (lo, hi) = wilson(canary, all, 3.29);
    assert!(lo <= 0.10 && 0.10 <= hi, "canary share {}", canary as f64 / all as f64);
}

#[tokio::test]
async fn the_publishing_delay_hides_recent_minutes() {
    let f = Fixture::new();
    f.shop().await;
    f.load(5.0).await;
    let start = f.now();
    f.advance(179);
    assert!(f.series(REQUEST_COUNT, start, &[]).await.is_empty(), "nothing is published within 180 s");
    f.advance(10 * 60);
    let series = f.series(REQUEST_COUNT, start, &[]).await;
    let points = series[0]["points"].as_array().unwrap();
    let newest_end = super::clock::parse_rfc3339(points[0]["interval"]["endTime"].as_str().unwrap()).unwrap();
    let age = f.now().duration_since(newest_end).unwrap();
    assert!(age >= Duration::from_secs(180) && age < Duration::from_secs(240), "newest point is {age:?} old");
    // Newest first, each a whole minute.
    let ends: Vec<&str> = points.iter().map(|p| p["interval"]["endTime"].as_str().unwrap()).collect();
    assert!(ends.windows(2).all(|w| w[0] > w[1]), "{ends:?}");
    let first = &points[0]["interval"];
    let span = super::clock::parse_rfc3339(first["endTime"].as_str().unwrap())
        .unwrap()
        .duration_since(super::clock::parse_rfc3339(first["startTime"].as_str().unwrap()).unwrap())
        .unwrap();
    assert_eq!(span, Duration::from_secs(60));
}

#[tokio::test]
async fn a_timed_degradation_appears_when_it_should() {
    let f = Fixture::new();
    let service = f.shop().await;
    f.profile(
        json!({"image": "gcr.io/demo/shop:v2", "errorRate": 0.0, "changes": [{"after": "20m", "errorRate": 0.5}]}),
    )
    .await;
    f.load(20.0).await;
    let mut body = canary_body(&service, "gcr.io/demo/shop:v2", "shop-v2");
    body["traffic"][0]["percent"] = 50.into();
    body["traffic"][1]["percent"] = 50.into();
    f.patch(body).await;
    f.advance(10);
    let serving_from = f.now();
    f.advance(40 * 60);
    let series = f.series(&format!("{REQUEST_COUNT} AND resource.labels.revision_name=\"shop-v2\" AND metric.labels.response_code_class=\"5xx\""), serving_from, &[]).await;
    assert_eq!(series.len(), 1);
    let first_error = series[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| super::clock::parse_rfc3339(p["interval"]["startTime"].as_str().unwrap()).unwrap())
        .min()
        .unwrap();
    let after = first_error.duration_since(serving_from).unwrap();
    assert!(
        after >= Duration::from_secs(19 * 60) && after <= Duration::from_secs(21 * 60),
        "first 5xx {after:?} after serving"
    );
}

#[tokio::test]
async fn same_seed_same_numbers() {
    async fn run() -> Value {
        let f = Fixture::new();
        f.profile(json!({"image": "gcr.io/demo/shop:v1", "errorRate": 0.01})).await;
        f.shop().await;
        let start = f.now();
        f.load(7.0).await;
        f.advance(1800);
        Value::Array(f.series(REQUEST_COUNT, start, &[]).await)
    }
    let (a, b) = (run().await, run().await);
    assert_eq!(a, b);
    assert!(!a.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn aligners_and_reducers_agree_with_hand_computed_values() {
    let f = Fixture::new();
    f.profile(json!({"image": "gcr.io/demo/shop:v1", "errorRate": 0.1})).await;
    let service = f.shop().await;
    f.load(3.0).await;
    let mut body = canary_body(&service, "gcr.io/demo/shop:v2", "shop-v2");
    body["traffic"][0]["percent"] = 70.into();
    body["traffic"][1]["percent"] = 30.into();
    f.patch(body).await;
    f.advance(10);
    let start = f.now();
    f.advance(13 * 60);
    // The raw minutes, by revision and class.
    let raw = f.series(REQUEST_COUNT, start, &[]).await;
    let mut per_minute: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for s in &raw {
        for p in s["points"].as_array().unwrap() {
            *per_minute
                .entry((
                    p["interval"]["endTime"].as_str().unwrap().to_owned(),
                    s["metric"]["labels"]["response_code_class"].as_str().unwrap().to_owned(),
                ))
                .or_default() += int(p);
        }
    }
    let raw_total: u64 = per_minute.values().sum();
    // ALIGN_DELTA + REDUCE_SUM over one period covering everything = the raw total.
    let summed = f
        .series(
            REQUEST_COUNT,
            start,
            &[
                ("aggregation.alignmentPeriod", "3600s"),
                ("aggregation.perSeriesAligner", "ALIGN_DELTA"),
                ("aggregation.crossSeriesReducer", "REDUCE_SUM"),
            ],
        )
        .await;
    assert_eq!(summed.len(), 1);
    assert_eq!(int(&summed[0]["points"][0]), raw_total);
    assert!(summed[0]["metric"]["labels"].as_object().unwrap().is_empty(), "no group-by keeps no labels");
    // Grouped by class: each group's sum.
    let grouped = f
        .series(
            REQUEST_COUNT,
            start,
            &[
                ("aggregation.alignmentPeriod", "3600s"),
                ("aggregation.perSeriesAligner", "ALIGN_SUM"),
                ("aggregation.crossSeriesReducer", "REDUCE_SUM"),
                ("aggregation.groupByFields", "metric.labels.response_code_class"),
            ],
        )
        .await;
    for s in &grouped {
        let class = s["metric"]["labels"]["response_code_class"].as_str().unwrap();
        let expected: u64 = per_minute.iter().filter(|((_, c), _)| c == class).map(|(_, n)| n).sum();
        assert_eq!(int(&s["points"][0]), expected, "{class}");
    }
    // ALIGN_RATE over 60 s periods: each minute's count / 60, per series.
    let rates = f.series(&format!("{REQUEST_COUNT} AND resource.labels.revision_name=\"shop-v2\" AND metric.labels.response_code_class=\"2xx\""), start, &[("aggregation.alignmentPeriod", "60s"), ("aggregation.perSeriesAligner", "ALIGN_RATE")]).await;
    let raw_v2 = raw
        .iter()
        .find(|s| {
            s["resource"]["labels"]["revision_name"] == "shop-v2"
                && s["metric"]["labels"]["response_code_class"] == "2xx"
        })
        .unwrap();
    // Periods end at the query's end time and step back 60 s at a time, so each holds
    // exactly one raw minute.
    let rate_points = rates[0]["points"].as_array().unwrap();
    assert_eq!(rate_points.len(), raw_v2["points"].as_array().unwrap().len());
    for (rate, count) in rate_points.iter().zip(raw_v2["points"].as_array().unwrap()) {
        assert!((rate["value"]["doubleValue"].as_f64().unwrap() - int(count) as f64 / 60.0).abs() < 1e-9);
    }
    // REDUCE_MEAN across the two revisions' 2xx series, per minute.
    let means = f
        .series(
            &format!("{REQUEST_COUNT} AND metric.labels.response_code_class=\"2xx\""),
            start,
            &[
                ("aggregation.alignmentPeriod", "60s"),
                ("aggregation.perSeriesAligner", "ALIGN_DELTA"),
                ("aggregation.crossSeriesReducer", "REDUCE_MEAN"),
            ],
        )
        .await;
    for point in means[0]["points"].as_array().unwrap() {
        let end = super::clock::parse_rfc3339(point["interval"]["endTime"].as_str().unwrap()).unwrap();
        let holds = |p: &Value| {
            let raw_end = super::clock::parse_rfc3339(p["interval"]["endTime"].as_str().unwrap()).unwrap();
            end >= raw_end && end < raw_end + Duration::from_secs(60)
        };
        let values: Vec<f64> = raw
            .iter()
            .filter(|s| s["metric"]["labels"]["response_code_class"] == "2xx")
            .filter_map(|s| s["points"].as_array().unwrap().iter().find(|p| holds(p)).map(|p| int(p) as f64))
            .collect();
        let expected = values.iter().sum::<f64>() / values.len() as f64;
        assert!((point["value"]["doubleValue"].as_f64().unwrap() - expected).abs() < 1e-9, "{end:?}");
    }
    // Unknown metric types and malformed filters are refused; resource.type != matches nothing.
    let (status, _) = f
        .call(
            "GET",
            "/v3/projects/demo/timeSeries?filter=metric.type%3D%22x%22&interval.endTime=2026-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(status, 400);
    let none = f.series(&format!("{REQUEST_COUNT} AND resource.type!=\"cloud_run_revision\""), start, &[]).await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn paging_and_metric_gaps() {
    let f = Fixture::new();
    let service = f.shop().await;
    f.load(10.0).await;
    let mut body = canary_body(&service, "gcr.io/demo/shop:v2", "shop-v2");
    body["traffic"][0]["percent"] = 50.into();
    body["traffic"][1]["percent"] = 50.into();
    f.patch(body).await;
    f.advance(10);
    let start = f.now();
    f.advance(5 * 60);
    let (status, _) = f
        .json("POST", "/emulator/v1/faults", json!({"kind": "metricGap", "pathContains": "shop-v2", "minutes": 10}))
        .await;
    assert_eq!(status, 200);
    f.advance(20 * 60);
    let series = f.series(&format!("{REQUEST_COUNT} AND resource.labels.revision_name=\"shop-v2\""), start, &[]).await;
    let minutes = series[0]["points"].as_array().unwrap().len();
    assert!((10..=13).contains(&minutes), "{minutes} published minutes of 22, 10 in the gap");
    // One page of one series (pageSize 1) up to `end`: its series' points and the
    // next page's token.
    let page = |token: String, end: String| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("filter", REQUEST_COUNT),
                ("interval.startTime", &rfc3339(start)),
                ("interval.endTime", &end),
                ("pageSize", "1"),
                ("pageToken", &token),
            ])
            .finish();
        let f = &f;
        async move {
            let (status, page) = f.call("GET", &format!("/v3/projects/demo/timeSeries?{query}"), None).await;
            assert_eq!(status, 200, "{page}");
            assert_eq!(page["timeSeries"].as_array().map_or(0, Vec::len), 1, "one series a page: {page}");
            let points = page["timeSeries"][0]["points"].as_array().map_or(0, Vec::len);
            (points, page["nextPageToken"].as_str().map(str::to_owned))
        }
    };
    // Paging: one series per page until the token runs out.
    let end = rfc3339(f.now());
    let (mut token, mut seen) = (String::new(), 0);
    loop {
        let (_, next) = page(token, end.clone()).await;
        seen += 1;
        match next {
            Some(t) => token = t,
            None => break,
        }
    }
    assert_eq!(seen, 2, "2xx for each revision");
    // A later page is cut from the answer the first page was (a cursor), even after
    // time moved on; a token sent with another query, or whose answer is gone, is
    // worked out afresh.
    let later = rfc3339(f.now() + std::time::Duration::from_secs(3600));
    let (_, token) = page(String::new(), later.clone()).await;
    let token = token.expect("two series, a page each");
    assert!(token.starts_with('c'), "a cursor: {token}");
    f.advance(30 * 60);
    let (second, end) = page(token.clone(), later.clone()).await;
    assert_eq!(end, None);
    let (_, fresh_token) = page(String::new(), later.clone()).await;
    let (second_now, _) = page(fresh_token.expect("two series"), later.clone()).await;
    assert!(second_now >= second + 25, "page 2 was of the first answer: {second} points, now {second_now}");
    let (again, _) = page(token, later).await;
    assert_eq!(again, second_now, "a finished cursor is gone: its page is worked out afresh");
}

#[tokio::test]
async fn smoke_requests_to_a_tag_fail_as_often_as_the_profile_says() {
    let f = Fixture::new();
    let service = f.shop().await;
    f.profile(json!({"image": "gcr.io/demo/shop:v2", "errorRate": 0.5})).await;
    f.patch(canary_body(&service, "gcr.io/demo/shop:v2", "shop-v2")).await;
    f.advance(11);
    assert_eq!(
        f.call("GET", "/run/demo/us-central1/canary---shop/healthz", None).await.0,
        200,
        "health paths answer the health status"
    );
    let mut failures = 0;
    for _ in 0..400 {
        if f.call("POST", "/run/demo/us-central1/canary---shop/api/order", Some("{}")).await.0 == 500 {
            failures += 1;
        }
    }
    assert!((150..=250).contains(&failures), "{failures} of 400");
}

/// Reads back a point the emulator wrote: its own layout, counts as decimal strings.
fn from_wire(wire: &Value) -> Histogram {
    assert_eq!(wire["bucketOptions"], Histogram::latency().to_wire()["bucketOptions"]);
    let mut h = Histogram::latency();
    for (i, c) in wire["bucketCounts"].as_array().unwrap().iter().enumerate() {
        h.counts[i] = c.as_str().unwrap().parse().unwrap();
    }
    h.count = wire["count"].as_str().unwrap().parse().unwrap();
    h.mean = wire["mean"].as_f64().unwrap();
    h.sum_of_squared_deviation = wire["sumOfSquaredDeviation"].as_f64().unwrap();
    h
}

/// 5xx ÷ all requests of `revision` in the minutes of `series` ending in (from, to].
fn error_rate_between(series: &[Value], revision: &str, from: SystemTime, to: SystemTime) -> f64 {
    let (mut errors, mut all) = (0, 0);
    for s in series.iter().filter(|s| s["resource"]["labels"]["revision_name"] == revision) {
        for p in s["points"].as_array().unwrap() {
            let end = super::clock::parse_rfc3339(p["interval"]["endTime"].as_str().unwrap()).unwrap();
            if end > from && end <= to {
                all += int(p);
                if s["metric"]["labels"]["response_code_class"] == "5xx" {
                    errors += int(p);
                }
            }
        }
    }
    errors as f64 / all.max(1) as f64
}

#[tokio::test]
async fn a_shared_incident_hits_every_revision_for_its_period_and_cold_starts_follow_increases() {
    let f = Fixture::new();
    let service = f.shop().await;
    f.load(50.0).await;
    let (status, body) = f
        .json(
            "PUT",
            "/emulator/v1/conditions",
            json!({"service": NAME, "incidents": [{"after": "10m", "lasts": "20m", "errorRate": 0.12}],
                   "coldStart": {"p95Ms": 3000, "minutes": 2}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let set = f.now();
    let mut body = canary_body(&service, "gcr.io/demo/shop:v2", "shop-v2");
    body["traffic"][0]["percent"] = 50.into();
    body["traffic"][1]["percent"] = 50.into();
    assert_eq!(f.patch(body).await.0, 200);
    f.advance(50 * 60);
    let series = f.series(REQUEST_COUNT, set, &[]).await;
    let minutes = |m: u64| set + Duration::from_secs(m * 60);
    let mut revisions: Vec<String> =
        series.iter().map(|s| s["resource"]["labels"]["revision_name"].as_str().unwrap().to_owned()).collect();
    revisions.dedup();
    assert_eq!(revisions.len(), 2, "{revisions:?}");
    for revision in &revisions {
        let during = error_rate_between(&series, revision, minutes(11), minutes(30));
        let after = error_rate_between(&series, revision, minutes(31), minutes(46));
        assert!((0.09..0.15).contains(&during), "{revision}: {during} during the incident");
        assert!(after < 0.02, "{revision}: {after} after it");
    }
    let (status, listed) = f.call("GET", "/emulator/v1/conditions", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["conditions"][0]["service"], NAME);
    assert_eq!(listed["conditions"][0]["coldStart"]["p95Ms"], 3000.0);
    // The canary's first minutes after its increase are slow; later ones are not.
    let latencies = f.series(&format!("{LATENCIES} AND resource.labels.revision_name=\"shop-v2\""), set, &[]).await;
    let points = latencies[0]["points"].as_array().unwrap();
    let p95_at = |i: usize| from_wire(&points[points.len() - 1 - i]["value"]["distributionValue"]).quantile(0.95);
    assert!(p95_at(0).unwrap() > 2000.0, "first minute p95 {:?}", p95_at(0));
    assert!(p95_at(10).unwrap() < 1000.0, "eleventh minute p95 {:?}", p95_at(10));
    let (status, err) =
        f.json("PUT", "/emulator/v1/conditions", json!({"service": NAME, "variation": {"dispersion": 0}})).await;
    assert_eq!(status, 400, "{err}");
    assert!(err.to_string().contains("variation.dispersion"), "{err}");
}

/// Sums of the per-minute points of `series` into periods of `period` seconds ending at
/// `end`, by (revision, class or "latency", period end): counts, and latency bucket counts.
fn bucketed(series: &[Value], end: u64, period: u64) -> std::collections::BTreeMap<(String, String, u64), Vec<u64>> {
    let mut out: std::collections::BTreeMap<(String, String, u64), Vec<u64>> = Default::default();
    for s in series {
        let revision = s["resource"]["labels"]["revision_name"].as_str().unwrap().to_owned();
        let class = s["metric"]["labels"]["response_code_class"].as_str().unwrap_or("latency").to_owned();
        for p in s["points"].as_array().unwrap() {
            let e = super::clock::parse_rfc3339(p["interval"]["endTime"].as_str().unwrap()).unwrap();
            let e = super::clock::epoch_secs(e);
            let bucket = end - (end - e) / period * period;
            let values: Vec<u64> = match p["value"].get("distributionValue") {
                Some(d) => from_wire(d).counts,
                None => vec![int(p)],
            };
            let sum = out.entry((revision.clone(), class.clone(), bucket)).or_insert_with(|| vec![0; values.len()]);
            for (a, b) in sum.iter_mut().zip(values) {
                *a += b;
            }
        }
    }
    out
}

#[tokio::test]
async fn long_periods_sum_exactly_the_minutes_they_hold_before_and_after_their_hours_are_kept() {
    let f = Fixture::new();
    let service = f.shop().await;
    f.load(30.0).await;
    let (status, body) = f
        .json(
            "PUT",
            "/emulator/v1/conditions",
            json!({"service": NAME, "variation": {"dispersion": 3},
                   "incidents": [{"after": "70m", "lasts": "40m", "errorRate": 0.1}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let start = f.now();
    let mut body = canary_body(&service, "gcr.io/demo/shop:v2", "shop-v2");
    body["traffic"][0]["percent"] = 70.into();
    body["traffic"][1]["percent"] = 30.into();
    assert_eq!(f.patch(body).await.0, 200);
    // Ends on an odd second, so periods do not line up with hours.
    f.advance(5 * 3600 + 37 * 60 + 13);
    let end = super::clock::epoch_secs(f.now());
    for metric in [REQUEST_COUNT, LATENCIES] {
        let minutes = f.deltas(metric, start, "60s").await;
        let busiest = minutes.iter().map(|s| s["points"].as_array().unwrap().len()).max();
        assert!(busiest > Some(300), "minute points over 5 h: {busiest:?}");
        for period in [3600u64, 7200, 600, 4 * 3600 + 60, 86_400] {
            let p = format!("{period}s");
            let extra = [("aggregation.alignmentPeriod", p.as_str()), ("aggregation.perSeriesAligner", "ALIGN_DELTA")];
            let first = f.series(metric, start, &extra).await;
            let expected = bucketed(&minutes, end, 60);
            let regrouped: std::collections::BTreeMap<_, Vec<u64>> =
                expected.iter().fold(Default::default(), |mut acc, ((r, c, e), v)| {
                    let bucket = end - (end - e) / period * period;
                    let sum = acc.entry((r.clone(), c.clone(), bucket)).or_insert_with(|| vec![0; v.len()]);
                    for (a, b) in sum.iter_mut().zip(v) {
                        *a += b;
                    }
                    acc
                });
            assert_eq!(bucketed(&first, end, period), regrouped, "{metric} over {period} s");
            // Asked again, from the kept hours: the same answer.
            assert_eq!(f.series(metric, start, &extra).await, first, "{metric} over {period} s, kept");
        }
    }
    let kept = f.emulator.with_world(|w, _| Ok::<_, ()>(w.kept_hours())).unwrap();
    assert!(kept >= 8, "two revisions' whole hours are kept: {kept}");
    // A gap over past minutes: kept hours are dropped and the sums leave those minutes out.
    let gap_from = start + Duration::from_secs(2 * 3600 + 600);
    f.emulator
        .with_world(|w, _| {
            w.add_gap("shop", gap_from, gap_from + Duration::from_secs(1800));
            Ok::<_, ()>(())
        })
        .unwrap();
    let extra = [("aggregation.alignmentPeriod", "3600s"), ("aggregation.perSeriesAligner", "ALIGN_DELTA")];
    let minutes = f.deltas(REQUEST_COUNT, start, "60s").await;
    let hours = f.series(REQUEST_COUNT, start, &extra).await;
    assert_eq!(total(&hours, "2xx"), total(&minutes, "2xx"));
    assert_eq!(total(&hours, "5xx"), total(&minutes, "5xx"));
    // Pages hold at most pageSize points (a series whole, one at least), as Cloud
    // Monitoring counts them.
    let (mut token, mut pages, mut series_seen) = (String::new(), 0, 0);
    loop {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("filter", REQUEST_COUNT),
                ("interval.startTime", &rfc3339(start)),
                ("interval.endTime", &rfc3339(f.now())),
                ("aggregation.alignmentPeriod", "60s"),
                ("aggregation.perSeriesAligner", "ALIGN_DELTA"),
                ("pageSize", "400"),
                ("pageToken", &token),
            ])
            .finish();
        let (status, page) = f.call("GET", &format!("/v3/projects/demo/timeSeries?{query}"), None).await;
        assert_eq!(status, 200, "{page}");
        let series = page["timeSeries"].as_array().unwrap();
        let points: usize = series.iter().map(|s| s["points"].as_array().unwrap().len()).sum();
        assert!(points <= 400 || series.len() == 1, "{points} points in {} series", series.len());
        pages += 1;
        series_seen += series.len();
        match page["nextPageToken"].as_str() {
            Some(t) => token = t.to_owned(),
            None => break,
        }
    }
    assert_eq!(series_seen, minutes.len());
    assert!(pages >= 2, "{pages} pages");
    let before_gap: u64 = bucketed(&minutes, end, 60).values().map(|v| v[0]).sum();
    assert_eq!(before_gap, total(&minutes, "2xx") + total(&minutes, "5xx") + total(&minutes, "4xx"));
}

#[tokio::test]
async fn a_sum_asked_for_pass_after_pass_from_an_old_anchor_keeps_its_first_ten_minutes() {
    let f = Fixture::new();
    f.shop().await;
    f.load(20.0).await;
    // To 35 minutes past an hour: each sum ends with new 10-minute cells, whose keeping
    // drops the old ones nobody asks for.
    let into_hour = super::clock::epoch_secs(f.now()) % 3600;
    f.advance(2 * 3600 + (3600 + 35 * 60 - into_hour) % 3600);
    // A 10-minute boundary that is not an hour: the sum from it starts with four
    // 10-minute cells, then whole hours.
    let hour = super::clock::epoch_secs(f.now()) / 3600 * 3600;
    let anchor = SystemTime::UNIX_EPOCH + Duration::from_secs(hour - 3600 + 20 * 60);
    let first_cells: Vec<u64> = (0..4).map(|i| hour - 3600 + (20 + 10 * i) * 60).collect();
    let mut first = None;
    for _ in 0..12 {
        f.advance(3600);
        let period = format!("{}s", f.now().duration_since(anchor).unwrap().as_secs());
        let sum = f.deltas(REQUEST_COUNT, anchor, &period).await;
        let minutes = f.deltas(REQUEST_COUNT, anchor, "60s").await;
        assert_eq!(total(&sum, "2xx"), total(&minutes, "2xx"), "the sum is its minutes'");
        first.get_or_insert(total(&sum, "2xx"));
    }
    // Twelve hours on, far past how long 10-minute cells are kept unasked, the ones the
    // sum keeps asking for are still kept (not drawn again from minutes every pass).
    let kept = f.emulator.with_world(|w, _| Ok::<_, ()>(w.kept_starts(600))).unwrap();
    for start in first_cells {
        assert!(kept.contains(&start), "the 10-minute cell at {start} is kept: {kept:?}");
    }
    assert!(kept.first().is_some_and(|k| *k >= hour - 3600), "no older cell is: {kept:?}");
}
