//! The `CanaryRollout` manifest as Rust types. The doc comments here become the
//! JSON Schema's descriptions, which editors show as hover text: write them for the
//! person editing a manifest.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::quantity::{Duration, Percent, Threshold};

/// The only `apiVersion` this build understands.
pub(crate) const API_VERSION: &str = "canary/v1alpha1";
/// The only `kind` this build understands.
pub(crate) const KIND: &str = "CanaryRollout";

/// A CanaryRollout: roll a new container image out to a Cloud Run service in traffic
/// stages, judge each stage against SLOs from Cloud Monitoring, and advance, hold or
/// roll back automatically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryRollout {
    /// Always `canary/v1alpha1`.
    #[schemars(schema_with = "api_version_schema")]
    pub(crate) api_version: String,
    /// Always `CanaryRollout`.
    #[schemars(schema_with = "kind_schema")]
    pub(crate) kind: String,
    /// Identifies this rollout.
    pub metadata: Metadata,
    /// What to roll out, where, and how to judge it.
    pub spec: RolloutSpec,
}

fn api_version_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "const": API_VERSION, "description": "Always `canary/v1alpha1`."})
}

fn kind_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "const": KIND, "description": "Always `CanaryRollout`."})
}

/// Identifies the rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The rollout's name: a DNS-1123 label (lowercase letters, digits and `-`, starting
    /// with a letter, at most 63 characters), unique across the manifest set. Commands
    /// such as `canary status NAME` use it, and it is recorded on the service as its owner.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"), example = &"ion-api")]
    pub name: String,
}

/// The desired rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutSpec {
    /// The Google Cloud project ID (not its number or display name) that holds the service.
    #[schemars(regex(pattern = r"^([a-z][-a-z0-9.]*:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$"), example = &"your-project-id")]
    pub(crate) project: String,
    /// The Cloud Run region, such as `us-central1` or `europe-west4`.
    #[schemars(regex(pattern = r"^[a-z]+-[a-z]+[0-9]+$"), example = &"us-central1")]
    pub(crate) region: String,
    /// The name of an existing Cloud Run service in that project and region.
    #[schemars(length(min = 1, max = 49), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"), example = &"ion-api")]
    pub(crate) service: String,
    /// Take over a service that no manifest owns yet. Adoption requires the service to
    /// send 100% of its traffic to a single revision, which becomes the stable one.
    /// Without it, canary only acts on services already marked as owned by this rollout.
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) adopt: bool,
    /// The canary's revision template, laid over the stable revision's template: fields
    /// given here replace the stable ones, env vars are merged by name, and everything
    /// else (secrets, VPC access, volumes, probes, scaling) is kept from the stable revision.
    pub template: Template,
    /// Requests sent to the canary's own tag URL while it has 0% of traffic. Any failure
    /// stops the rollout before a single user request reaches the canary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) smoke_tests: Vec<SmokeTest>,
    /// How smoke tests authenticate: `none`, or `idToken` to send a Google ID token for
    /// the service URL (needed for services that do not allow unauthenticated calls).
    #[serde(default, skip_serializing_if = "SmokeAuth::is_none")]
    pub(crate) smoke_auth: SmokeAuth,
    /// The traffic stages, in order. Weights strictly increase and the last is 100.
    /// Every stage but the last needs a `hold`.
    #[schemars(length(min = 1, max = 20))]
    pub stages: Vec<Stage>,
    /// How each stage is judged: the promotion gates and the rollback triggers.
    #[serde(default)]
    pub analysis: Analysis,
    /// Where to announce phase changes (deploying, stage advanced, paused, promoted,
    /// rolled back, failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) notify: Vec<Notify>,
    /// Hold the rollout at its current stage (a pause kept in git). Rollback triggers
    /// still protect it; `canary resume` cannot override this.
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) paused: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

/// The canary revision's settings. Only `image` is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Template {
    /// The container image to roll out, by tag or digest.
    #[schemars(length(min = 1, max = 1024), example = &"us-central1-docker.pkg.dev/your-project-id/ion-api/ion-api:phase4-canary")]
    pub image: String,
    /// Environment variables, merged by name over the stable revision's. Values are
    /// strings: quote numbers and booleans (`"8080"`, `"true"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}))]
    pub(crate) env: BTreeMap<String, String>,
    /// CPU and memory limits; unset ones are kept from the stable revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resources: Option<Resources>,
    /// The service account the canary revision runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z][-a-z0-9]*@[-a-z0-9.]+\.iam\.gserviceaccount\.com$|^[0-9]+-compute@developer\.gserviceaccount\.com$"), example = &"ion-api-runner@your-project-id.iam.gserviceaccount.com")]
    pub(crate) service_account: Option<String>,
}

/// Container resource limits, written as Cloud Run writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Resources {
    /// vCPUs: `"1"`, `"2"`, `"4"`, `"8"`, or millicores such as `"500m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"), example = &"2")]
    pub(crate) cpu: Option<String>,
    /// Memory: `512Mi`, `1Gi`, `4Gi`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(Ki|Mi|Gi|M|G)$"), example = &"1Gi")]
    pub(crate) memory: Option<String>,
}

/// One request sent to the canary before it receives traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SmokeTest {
    /// The path (and query) to request, starting with `/`. The host is always the
    /// canary's tag URL from Cloud Run, never one from the manifest.
    #[schemars(regex(pattern = r"^/[^\s]*$"), example = &"/health")]
    pub(crate) path: String,
    /// The HTTP method.
    #[serde(default, skip_serializing_if = "Method::is_get")]
    pub(crate) method: Method,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) headers: BTreeMap<String, String>,
    /// A JSON request body (sent with `Content-Type: application/json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) json: Option<serde_json::Value>,
    /// The status the response must have. Without it, any 2xx passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub(crate) expect_status: Option<u16>,
    /// How long to wait for the response.
    #[serde(default = "default_smoke_timeout")]
    #[schemars(extend("default" = "10s"))]
    pub(crate) timeout: Duration,
}

fn default_smoke_timeout() -> Duration {
    Duration::from_std(std::time::Duration::from_secs(10))
}

/// An HTTP method for a smoke test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum Method {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    fn is_get(&self) -> bool {
        *self == Method::Get
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

/// How smoke tests authenticate to the canary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum SmokeAuth {
    /// No credentials: the service allows unauthenticated calls.
    #[default]
    None,
    /// A Google-signed ID token whose audience is the service URL.
    IdToken,
}

impl SmokeAuth {
    fn is_none(&self) -> bool {
        *self == SmokeAuth::None
    }
}

/// One traffic stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    /// The canary's share of traffic in this stage, in percent (1–100).
    #[schemars(range(min = 1, max = 100), example = 5)]
    pub weight: u8,
    /// How long the stage lasts before its promotion gates are judged. Required on every
    /// stage but the last; on the last it is a soak at 100% before the canary becomes
    /// stable (default 0). Paused time does not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Duration>,
}

/// How a stage is judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Analysis {
    /// How often data is judged. At least 1m (Cloud Monitoring's resolution).
    #[serde(default = "default_interval")]
    #[schemars(extend("default" = "1m"))]
    pub(crate) interval: Duration,
    /// Time after each traffic change that is left out of judgement, while new
    /// instances start and caches warm. Must be shorter than the shortest hold.
    #[serde(default)]
    #[schemars(extend("default" = "0s"))]
    pub warmup: Duration,
    /// After a hold ends, how long to wait for enough data before pausing the rollout
    /// (phase `Paused`, reason `InsufficientData`) and notifying people.
    #[serde(default = "default_max_wait")]
    #[schemars(extend("default" = "6h"))]
    pub max_wait: Duration,
    /// Gates that must all pass over a stage's hold before the rollout advances.
    #[serde(default)]
    pub(crate) promotion: Promotion,
    /// Triggers that roll back at once, in any stage, when any one of them fires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) rollback: Vec<RollbackTrigger>,
    /// What a promotion gate that fails at the end of a hold does: `rollback`, or
    /// `pause` to wait for a person.
    #[serde(default)]
    pub(crate) on_gate_failure: GateFailurePolicy,
    /// Whose fault a rollback trigger is when stable fails it too over the same minutes
    /// and the canary is not conclusively worse than stable: `pause` (a shared incident:
    /// traffic goes back to stable, the image is not rejected, and the stage starts again
    /// once stable has recovered; a second one in the rollout counts as the canary's) or
    /// `canaryFault` (always roll back and reject the image).
    #[serde(default)]
    pub shared_incidents: SharedIncidentPolicy,
    /// After a shared incident, how long stable must stay within every rollback trigger
    /// before the stage starts again with a fresh hold.
    #[serde(default = "default_incident_recovery")]
    #[schemars(extend("default" = "15m"))]
    pub incident_recovery: Duration,
}

/// What a rollback trigger that stable fails too does (`analysis.sharedIncidents`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SharedIncidentPolicy {
    /// Traffic back to stable, phase `Paused` with reason `SharedIncident`, the image not
    /// rejected; the stage starts again once stable recovers. A second shared incident in
    /// one rollout is the canary's fault.
    #[default]
    Pause,
    /// The strict reading: every failed trigger rolls back and rejects the image.
    CanaryFault,
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            interval: default_interval(),
            warmup: Duration::ZERO,
            max_wait: default_max_wait(),
            promotion: Promotion::default(),
            rollback: Vec::new(),
            on_gate_failure: GateFailurePolicy::default(),
            shared_incidents: SharedIncidentPolicy::default(),
            incident_recovery: default_incident_recovery(),
        }
    }
}

fn default_incident_recovery() -> Duration {
    Duration::from_std(std::time::Duration::from_secs(15 * 60))
}

fn default_interval() -> Duration {
    Duration::from_std(std::time::Duration::from_secs(60))
}

fn default_max_wait() -> Duration {
    Duration::from_std(std::time::Duration::from_secs(6 * 3600))
}

/// Promotion gates: canary compared with stable over the stage's hold, minus warm-up.
/// A gate that is not set is not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Promotion {
    /// The most the canary's error rate (5xx ÷ all requests) may exceed stable's, in
    /// percentage points: `0.5%` allows 1.2% against stable's 0.7%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_error_rate_increase: Option<Percent>,
    /// The most the canary's p95 latency may exceed stable's, relative to it: `10%`
    /// allows 330 ms against stable's 300 ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_p95_increase: Option<Percent>,
    /// The fewest canary requests a stage must see before its gates can pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = 1000)]
    pub(crate) min_requests: Option<u64>,
}

/// A rollback trigger: `metric` with exactly one bound. `errorRate` takes `above` with a
/// percentage, `availability` takes `below` with a percentage, and `p95Latency` takes
/// `above` with a duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RollbackTrigger {
    /// What is measured on the canary revision.
    pub(crate) metric: Metric,
    /// Fire when the metric is above this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) above: Option<Threshold>,
    /// Fire when the metric is below this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) below: Option<Threshold>,
    /// Judge the aggregate over this sliding window (`5m`: the last five minutes'
    /// requests) instead of the newest published minute. 0 or a multiple of
    /// `analysis.interval`.
    #[serde(default, rename = "for", skip_serializing_if = "Duration::is_zero")]
    #[schemars(extend("default" = "0s"))]
    pub(crate) window: Duration,
}

/// A metric canary can judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Metric {
    /// 5xx responses ÷ all responses (4xx are the client's fault). Bound: `above: 5%`.
    ErrorRate,
    /// 1 − errorRate. Bound: `below: 99%`.
    Availability,
    /// The 95th percentile of request latency. Bound: `above: 2s`.
    P95Latency,
}

impl Metric {
    /// The name a manifest writes (`errorRate`), which is its check's.
    pub(crate) fn name(self) -> &'static str {
        crate::analysis::verdict::CheckKind::from(self).name()
    }
}

/// What a promotion gate failing at the end of a hold does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum GateFailurePolicy {
    /// Roll back to stable and reject the image.
    #[default]
    Rollback,
    /// Hold the current stage (phase `Paused`) until a person resumes, promotes or aborts.
    Pause,
}

/// A place to announce phase changes. The URL is read from an environment variable so
/// that no secret is ever written in a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) enum Notify {
    /// A Slack incoming webhook.
    Slack(WebhookTarget),
    /// A generic webhook that receives a JSON document per phase change.
    Webhook(WebhookTarget),
}

/// Where a notification is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct WebhookTarget {
    /// The name of the environment variable that holds the webhook URL.
    #[schemars(regex(pattern = "^[A-Za-z_][A-Za-z0-9_]*$"), example = &"SLACK_WEBHOOK_URL")]
    pub(crate) url_from_env: String,
}
