//! What `/metrics` shows, kept with prometheus-client, and [`Metered`]: the platform
//! with every Cloud Run and Cloud Monitoring call counted by method and status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::analysis::wire::TimeSeries;
use crate::platform::{Clock, CloudRun, Monitoring, Probe, ProbeAnswer, Prober};
use crate::state::Phase;
use crate::transport::ApiFailure;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiCall {
    method: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rollout {
    rollout: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutPhase {
    rollout: String,
    phase: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Notification {
    target: String,
    result: String,
}

/// What `canary_errors_total{kind}` counts: a pass's errors by their kind, an invalid
/// manifest, a notification that could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorLabel {
    Pass(crate::reconcile::ErrorKind),
    Manifest,
    Notification,
}

impl ErrorLabel {
    fn name(self) -> &'static str {
        match self {
            ErrorLabel::Pass(kind) => kind.name(),
            ErrorLabel::Manifest => "manifest",
            ErrorLabel::Notification => "notification",
        }
    }
}

/// Every metric the watch exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    passes: Counter,
    errors: Family<Kind, Counter>,
    api_calls: Family<ApiCall, Counter>,
    decision_seconds: Histogram,
    phase: Family<RolloutPhase, Gauge>,
    weight: Family<Rollout, Gauge>,
    rollouts: Gauge,
    notifications: Family<Notification, Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("canary");
        let passes = Counter::default();
        registry.register("passes", "Reconcile passes started (each over the rollouts due together)", passes.clone());
        let errors = Family::<Kind, Counter>::default();
        registry.register("errors", "Errors, by kind (api, write, clock, manifest, notification)", errors.clone());
        let api_calls = Family::<ApiCall, Counter>::default();
        registry.register(
            "api_calls",
            "Cloud Run and Cloud Monitoring API calls, by method and HTTP status (after retries)",
            api_calls.clone(),
        );
        let decision_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register_with_unit(
            "decision_duration",
            "From the start of a pass to one rollout's decision being carried out",
            Unit::Seconds,
            decision_seconds.clone(),
        );
        let phase = Family::<RolloutPhase, Gauge>::default();
        registry.register("rollout_phase", "1 for each rollout's current phase, 0 for the others", phase.clone());
        let weight = Family::<Rollout, Gauge>::default();
        registry.register("rollout_canary_weight_percent", "Percent of traffic on each canary", weight.clone());
        let rollouts = Gauge::default();
        registry.register("rollouts", "Rollouts managed (valid manifests and held invalid edits)", rollouts.clone());
        let notifications = Family::<Notification, Counter>::default();
        registry.register("notifications", "Notifications, by target kind and result", notifications.clone());
        Metrics { registry, passes, errors, api_calls, decision_seconds, phase, weight, rollouts, notifications }
    }
}

impl Metrics {
    /// The OpenMetrics text `/metrics` serves.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The same in the Prometheus text format (0.0.4), for scrapers and tools that do
    /// not ask for OpenMetrics (`promtool check metrics` among them). The encoder's
    /// output is kept; only a counter's `# HELP` / `# TYPE` lines take the name its
    /// samples carry (`…_total`), which is where the two formats differ for us.
    pub(crate) fn encode_prometheus(&self) -> String {
        let text = self.encode();
        let counters: Vec<&str> =
            text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
        let mut out = String::with_capacity(text.len() + counters.len() * 12);
        for line in text.lines() {
            let descriptor = ["# HELP ", "# TYPE "].into_iter().find_map(|p| Some((p, line.strip_prefix(p)?)));
            match descriptor {
                Some((prefix, rest)) => {
                    let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                    if counters.contains(&name) {
                        out.push_str(&format!("{prefix}{name}_total {tail}\n"));
                    } else {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    pub(crate) fn pass_started(&self) {
        self.passes.inc();
    }

    pub(crate) fn error(&self, kind: ErrorLabel) {
        self.errors.get_or_create(&Kind { kind: kind.name().to_owned() }).inc();
    }

    pub(crate) fn api_call(&self, method: &str, status: &str) {
        self.api_calls.get_or_create(&ApiCall { method: method.to_owned(), status: status.to_owned() }).inc();
    }

    pub(crate) fn decision(&self, seconds: f64) {
        self.decision_seconds.observe(seconds);
    }

    /// A rollout's phase and canary weight after a pass.
    pub(crate) fn rollout(&self, name: &str, phase: Phase, weight: u32) {
        for p in Phase::ALL {
            let labels = RolloutPhase { rollout: name.to_owned(), phase: p.name().to_owned() };
            self.phase.get_or_create(&labels).set(i64::from(p == phase));
        }
        self.weight.get_or_create(&Rollout { rollout: name.to_owned() }).set(i64::from(weight));
    }

    /// A rollout no longer managed: its series go.
    pub(crate) fn forget(&self, name: &str) {
        for p in Phase::ALL {
            self.phase.remove(&RolloutPhase { rollout: name.to_owned(), phase: p.name().to_owned() });
        }
        self.weight.remove(&Rollout { rollout: name.to_owned() });
    }

    pub(crate) fn managed(&self, count: usize) {
        self.rollouts.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub(crate) fn notification(&self, target: &str, result: &str) {
        self.notifications.get_or_create(&Notification { target: target.to_owned(), result: result.to_owned() }).inc();
    }
}

/// What `/readyz` reports.
#[derive(Debug, Default)]
pub(crate) struct Health {
    first_pass: AtomicBool,
    /// 0 unknown, 1 the last Cloud Run call answered, 2 it did not.
    cloud_run: AtomicU8,
}

impl Health {
    pub(crate) fn first_pass_done(&self) {
        self.first_pass.store(true, Ordering::Relaxed);
    }

    /// `Ok` when ready, or why not.
    pub(crate) fn ready(&self) -> Result<(), &'static str> {
        if !self.first_pass.load(Ordering::Relaxed) {
            return Err("the first pass has not finished");
        }
        if self.cloud_run.load(Ordering::Relaxed) == 2 {
            return Err("Cloud Run is not reachable");
        }
        Ok(())
    }

    fn cloud_run(&self, reachable: bool) {
        self.cloud_run.store(if reachable { 1 } else { 2 }, Ordering::Relaxed);
    }
}

/// The platform, with its API calls counted and Cloud Run's reachability noted.
#[derive(Debug)]
pub(crate) struct Metered<P> {
    pub(crate) inner: P,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
}

impl<P> Metered<P> {
    fn record<T>(&self, method: &str, result: &Result<T, ApiFailure>) {
        let status = match result {
            Ok(_) => "200".to_owned(),
            Err(e) => e.status.map_or_else(|| "unreachable".to_owned(), |s| s.to_string()),
        };
        self.metrics.api_call(method, &status);
    }

    fn record_cloud_run<T>(&self, method: &str, result: &Result<T, ApiFailure>) {
        self.record(method, result);
        // An answer of any kind means Cloud Run is there; no answer or a 5xx does not.
        let reachable = match result {
            Ok(_) => true,
            Err(e) => e.status.is_some_and(|s| s < 500),
        };
        self.health.cloud_run(reachable);
    }
}

impl<P: CloudRun> CloudRun for Metered<P> {
    async fn list_services(&self, project: &str, region: &str) -> Result<Vec<Box<RawValue>>, ApiFailure> {
        let result = self.inner.list_services(project, region).await;
        self.record_cloud_run("run.services.list", &result);
        result
    }

    async fn get_service(&self, name: &str) -> Result<Option<Value>, ApiFailure> {
        let result = self.inner.get_service(name).await;
        self.record_cloud_run("run.services.get", &result);
        result
    }

    async fn patch_service(&self, service: &Value) -> Result<(), ApiFailure> {
        let result = self.inner.patch_service(service).await;
        self.record_cloud_run("run.services.patch", &result);
        result
    }
}

impl<P: Monitoring> Monitoring for Metered<P> {
    async fn time_series_each(
        &self,
        project: &str,
        query: &[(String, String)],
        each: &mut (dyn FnMut(TimeSeries) + Send),
    ) -> Result<(), ApiFailure> {
        let result = self.inner.time_series_each(project, query, each).await;
        self.record("monitoring.timeSeries.list", &result);
        result
    }
}

impl<P: Clock> Clock for Metered<P> {
    async fn now(&self) -> Result<SystemTime, ApiFailure> {
        self.inner.now().await
    }
}

impl<P: Prober> Prober for Metered<P> {
    async fn probe(&self, probe: &Probe) -> ProbeAnswer {
        self.inner.probe(probe).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_series_carry_one_phase_and_go_with_the_rollout() {
        let m = Metrics::default();
        m.rollout("api", Phase::Progressing, 25);
        m.api_call("run.services.list", "200");
        m.error(ErrorLabel::Pass(crate::reconcile::ErrorKind::Write));
        m.decision(0.02);
        let text = m.encode();
        assert!(text.contains(r#"canary_rollout_phase{rollout="api",phase="Progressing"} 1"#), "{text}");
        assert!(text.contains(r#"canary_rollout_phase{rollout="api",phase="Waiting"} 0"#), "{text}");
        assert!(text.contains(r#"canary_rollout_canary_weight_percent{rollout="api"} 25"#), "{text}");
        assert!(text.contains(r#"canary_api_calls_total{method="run.services.list",status="200"} 1"#), "{text}");
        assert!(text.contains("canary_decision_duration_seconds_count 1"), "{text}");
        let prometheus = m.encode_prometheus();
        assert!(prometheus.contains("# TYPE canary_api_calls_total counter\n"), "{prometheus}");
        assert!(prometheus.contains("# HELP canary_errors_total Errors"), "{prometheus}");
        assert!(prometheus.contains("# TYPE canary_rollouts gauge\n"), "{prometheus}");
        m.forget("api");
        assert!(!m.encode().contains(r#"rollout="api""#));
    }

    #[test]
    fn ready_after_the_first_pass_while_cloud_run_answers() {
        let h = Health::default();
        assert!(h.ready().is_err());
        h.first_pass_done();
        assert_eq!(h.ready(), Ok(()));
        h.cloud_run(false);
        assert_eq!(h.ready(), Err("Cloud Run is not reachable"));
        h.cloud_run(true);
        assert_eq!(h.ready(), Ok(()));
    }
}
