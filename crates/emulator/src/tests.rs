//! The emulator's Cloud Run semantics, driven in-process through the real router
//! (no sockets) on a stepped clock. Each failing request is checked for how it fails.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::Emulator;
use super::clock::VirtualClock;
use super::http::router;
use super::world::WorldConfig;

pub(super) const SVC: &str = "/v2/projects/demo/locations/us-central1/services";
pub(super) const NAME: &str = "projects/demo/locations/us-central1/services/shop";

pub(super) struct Fixture {
    pub(super) emulator: Arc<Emulator>,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let config = WorldConfig { seed: 7, base_url: "http://emu".to_owned(), ..WorldConfig::default() };
        Fixture { emulator: Arc::new(Emulator::new(config, VirtualClock::new(start, 0.0))) }
    }

    pub(super) async fn call(&self, method: &str, uri: &str, body: Option<&str>) -> (u16, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let response = router(self.emulator.clone()).oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    pub(super) async fn json(&self, method: &str, uri: &str, body: Value) -> (u16, Value) {
        self.call(method, uri, Some(&body.to_string())).await
    }

    pub(super) fn advance(&self, seconds: u64) {
        self.emulator.advance(Duration::from_secs(seconds));
    }

    /// Creates `shop` with image v1 and lets it settle.
    pub(super) async fn shop(&self) -> Value {
        let (status, op) = self
            .json(
                "POST",
                &format!("{SVC}?serviceId=shop"),
                json!({"template": {"containers": [{"image": "gcr.io/demo/shop:v1"}]}}),
            )
            .await;
        assert_eq!(status, 200, "{op}");
        self.advance(11);
        self.get().await
    }

    pub(super) async fn get(&self) -> Value {
        let (status, service) = self.call("GET", &format!("/v2/{NAME}"), None).await;
        assert_eq!(status, 200, "{service}");
        service
    }

    pub(super) async fn patch(&self, body: Value) -> (u16, Value) {
        self.json("PATCH", &format!("/v2/{NAME}"), body).await
    }
}

fn violation(error: &Value) -> &str {
    error.pointer("/error/details/0/fieldViolations/0/field").and_then(Value::as_str).unwrap_or_default()
}

pub(super) fn stable_revision(service: &Value) -> String {
    service["latestReadyRevision"].as_str().unwrap().rsplit('/').next().unwrap().to_owned()
}

/// The canary step canary itself makes: a pinned revision at 0% beside stable at 100%.
pub(super) fn canary_body(service: &Value, image: &str, revision: &str) -> Value {
    let mut body = service.clone();
    body["template"]["containers"][0]["image"] = image.into();
    body["template"]["revision"] = revision.into();
    body["traffic"] = json!([
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": stable_revision(service), "percent": 100, "tag": "stable"},
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": revision, "percent": 0, "tag": "canary"}
    ]);
    body
}

#[tokio::test]
async fn create_settles_after_the_configured_delay() {
    let f = Fixture::new();
    let (status, op) =
        f.json("POST", &format!("{SVC}?serviceId=shop"), json!({"template": {"containers": [{"image": "a:1"}]}})).await;
    assert_eq!(status, 200);
    assert_eq!(op["done"], false);
    assert_eq!(op["metadata"]["@type"], "type.googleapis.com/google.cloud.run.v2.Service");
    let during = f.get().await;
    assert_eq!(during["reconciling"], true);
    assert_eq!(during["generation"], "1");
    assert_eq!(during["observedGeneration"], "0");
    assert_eq!(during["terminalCondition"]["state"], "CONDITION_RECONCILING");
    f.advance(9);
    assert_eq!(f.get().await["reconciling"], true, "not before the settle delay");
    f.advance(1);
    let settled = f.get().await;
    assert_eq!(settled["reconciling"], false);
    assert_eq!(settled["observedGeneration"], "1");
    assert_eq!(settled["terminalCondition"]["state"], "CONDITION_SUCCEEDED");
    let latest = settled["latestReadyRevision"].as_str().unwrap();
    assert!(latest.starts_with(&format!("{NAME}/revisions/shop-00001-")), "{latest}");
    assert_eq!(settled["latestCreatedRevision"], latest);
    assert_eq!(
        settled["traffic"],
        json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]),
        "empty traffic means 100% to latest"
    );
    let (_, done) = f.call("GET", &format!("/v2/{}", op["name"].as_str().unwrap()), None).await;
    assert_eq!(done["done"], true);
    assert_eq!(done["response"]["name"], NAME);
    assert_eq!(done["response"]["@type"], "type.googleapis.com/google.cloud.run.v2.Service");
}

/// A long-running emulator keeps only the newest operations: the oldest is forgotten
/// (404, as Cloud Run answers for an expired one), the newest still answers.
#[tokio::test]
async fn only_the_newest_operations_are_kept() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let config = WorldConfig { seed: 7, max_operations: 2, ..WorldConfig::default() };
    let f = Fixture { emulator: Arc::new(Emulator::new(config, VirtualClock::new(start, 0.0))) };
    let mut names = Vec::new();
    for image in ["a:1", "a:2", "a:3"] {
        let body = json!({"template": {"containers": [{"image": image}]}});
        let (status, op) = if names.is_empty() {
            f.json("POST", &format!("{SVC}?serviceId=shop"), body).await
        } else {
            f.json("PATCH", &format!("/v2/{NAME}"), body).await
        };
        assert_eq!(status, 200, "{op}");
        names.push(op["name"].as_str().unwrap().to_owned());
        f.advance(11);
    }
    let (first, _) = f.call("GET", &format!("/v2/{}", names[0]), None).await;
    assert_eq!(first, 404);
    for name in &names[1..] {
        let (status, op) = f.call("GET", &format!("/v2/{name}"), None).await;
        assert_eq!((status, &op["done"]), (200, &json!(true)), "{op}");
    }
}

#[tokio::test]
async fn creating_twice_or_with_a_bad_id_is_refused() {
    let f = Fixture::new();
    f.shop().await;
    let (status, err) =
        f.json("POST", &format!("{SVC}?serviceId=shop"), json!({"template": {"containers": [{"image": "a:1"}]}})).await;
    assert_eq!((status, err["error"]["status"].as_str()), (409, Some("ALREADY_EXISTS")));
    let (status, err) = f
        .json("POST", &format!("{SVC}?serviceId=Shop_1"), json!({"template": {"containers": [{"image": "a:1"}]}}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(violation(&err), "service_id");
    let (status, err) =
        f.json("POST", &format!("{SVC}?serviceId=empty"), json!({"template": {"containers": []}})).await;
    assert_eq!(status, 400);
    assert_eq!(violation(&err), "service.template.containers");
}

#[tokio::test]
async fn only_a_template_change_creates_a_revision() {
    let f = Fixture::new();
    let service = f.shop().await;
    let canary = canary_body(&service, "gcr.io/demo/shop:v2", "shop-v2");
    let (status, op) = f.patch(canary.clone()).await;
    assert_eq!(status, 200, "{op}");
    f.advance(11);
    let deployed = f.get().await;
    assert_eq!(deployed["generation"], "2");
    assert_eq!(deployed["latestCreatedRevision"], format!("{NAME}/revisions/shop-v2"));
    assert_eq!(deployed["latestReadyRevision"], format!("{NAME}/revisions/shop-v2"));
    let statuses = deployed["trafficStatuses"].as_array().unwrap();
    assert_eq!(statuses[0]["percent"], 100);
    assert_eq!(statuses[0]["tag"], "stable");
    assert_eq!(statuses[0]["uri"], "http://emu/run/demo/us-central1/stable---shop");
    assert_eq!(statuses[1]["revision"], "shop-v2");
    assert!(statuses[1].get("percent").is_none(), "0% is omitted, as proto3 JSON does");
    // Traffic only: same template, no new revision.
    let mut split = deployed.clone();
    split["traffic"][0]["percent"] = 95.into();
    split["traffic"][1]["percent"] = 5.into();
    assert_eq!(f.patch(split).await.0, 200);
    f.advance(11);
    let (_, revisions) = f.call("GET", &format!("/v2/{NAME}/revisions"), None).await;
    assert_eq!(revisions["revisions"].as_array().unwrap().len(), 2);
    let after = f.get().await;
    assert_eq!(after["generation"], "3");
    assert_eq!(after["latestCreatedRevision"], deployed["latestCreatedRevision"]);
}

#[tokio::test]
async fn reusing_a_pinned_name_with_another_template_is_refused() {
    let f = Fixture::new();
    let service = f.shop().await;
    assert_eq!(f.patch(canary_body(&service, "gcr.io/demo/shop:v2", "shop-v2")).await.0, 200);
    f.advance(11);
    let deployed = f.get().await;
    let mut clash = canary_body(&deployed, "gcr.io/demo/shop:v3", "shop-v2");
    clash["traffic"][0]["revision"] = stable_revision(&service).into();
    let (status, err) = f.patch(clash).await;
    assert_eq!(status, 409);
    assert_eq!(err["error"]["status"], "ALREADY_EXISTS");
    assert_eq!(err["error"]["message"], "Revision named 'shop-v2' with different configuration already exists.");
    let (status, err) = f.patch(canary_body(&deployed, "gcr.io/demo/shop:v3", "checkout-v3")).await;
    assert_eq!(status, 400, "a pinned name must start with SERVICE-");
    assert_eq!(violation(&err), "service.template.revision");
}

#[tokio::test]
async fn traffic_rules_are_enforced_with_field_violations() {
    let f = Fixture::new();
    let service = f.shop().await;
    let stable = stable_revision(&service);
    let cases = [
        (json!([{"revision": stable, "percent": 90}]), "service.traffic"),
        (json!([{"revision": "shop-nope", "percent": 100}]), "service.traffic[0].revision"),
        (
            json!([{"revision": stable, "percent": 100, "tag": "a"}, {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "tag": "a"}]),
            "service.traffic[1].tag",
        ),
        (json!([{"revision": stable, "percent": 101}]), "service.traffic[0].percent"),
        (
            json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "revision": stable, "percent": 100}]),
            "service.traffic[0].revision",
        ),
        (json!([{"type": "SOMETIMES", "percent": 100}]), "service.traffic[0].type"),
    ];
    for (traffic, field) in cases {
        let mut body = service.clone();
        body["traffic"] = traffic.clone();
        let (status, err) = f.patch(body).await;
        assert_eq!(status, 400, "{traffic}: {err}");
        assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(violation(&err), field, "{traffic}: {err}");
    }
    assert_eq!(f.get().await["generation"], "1", "nothing refused was applied");
}

#[tokio::test]
async fn stale_etags_are_refused_and_fresh_ones_accepted() {
    let f = Fixture::new();
    let service = f.shop().await;
    let mut first = service.clone();
    first["labels"] = json!({"team": "a"});
    assert_eq!(f.patch(first).await.0, 200);
    let mut second = service.clone();
    second["labels"] = json!({"team": "b"});
    let (status, err) = f.patch(second).await;
    assert_eq!((status, err["error"]["status"].as_str()), (409, Some("ABORTED")));
    let current = f.get().await;
    assert_ne!(current["etag"], service["etag"], "every write makes a new etag");
    assert!(current["etag"].as_str().unwrap().starts_with('"'), "etags carry quotes");
    let mut third = current.clone();
    third["labels"] = json!({"team": "c"});
    assert_eq!(f.patch(third).await.0, 200);
    let (status, _) = f.call("DELETE", &format!("/v2/{NAME}?etag=%22stale%22"), None).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn reserved_annotations_are_refused() {
    let f = Fixture::new();
    let service = f.shop().await;
    for (field, pointer) in
        [("service.annotations", "/annotations"), ("service.template.annotations", "/template/annotations")]
    {
        let mut body = service.clone();
        let mut target = &mut body;
        for part in pointer.split('/').skip(1) {
            target = &mut target[part];
        }
        *target = json!({"run.googleapis.com/ingress": "all"});
        let (status, err) = f.patch(body).await;
        assert_eq!(status, 400);
        assert_eq!(violation(&err), field);
        assert!(err["error"]["message"].as_str().unwrap().contains("run.googleapis.com/"), "{err}");
    }
    let mut ok = service.clone();
    ok["annotations"] = json!({"canary/owner": "shop"});
    assert_eq!(f.patch(ok).await.0, 200, "canary's own namespace is allowed");
}

#[tokio::test]
async fn a_serving_revision_cannot_be_deleted() {
    let f = Fixture::new();
    let service = f.shop().await;
    let stable = stable_revision(&service);
    let (status, err) = f.call("DELETE", &format!("/v2/{NAME}/revisions/{stable}"), None).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["status"], "FAILED_PRECONDITION");
    // Once traffic has moved away and no tag names it, it can go.
    assert_eq!(f.patch(canary_body(&service, "gcr.io/demo/shop:v2", "shop-v2")).await.0, 200);
    f.advance(11);
    let mut all_new = f.get().await;
    all_new["traffic"] = json!([{"revision": "shop-v2", "percent": 100}]);
    assert_eq!(f.patch(all_new).await.0, 200);
    f.advance(11);
    let (status, op) = f.call("DELETE", &format!("/v2/{NAME}/revisions/{stable}"), None).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["done"], true);
    let (status, _) = f.call("GET", &format!("/v2/{NAME}/revisions/{stable}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn malformed_and_oversized_bodies_get_400() {
    let f = Fixture::new();
    f.shop().await;
    let (status, err) = f.call("PATCH", &format!("/v2/{NAME}"), Some("{\"template\": ")).await;
    assert_eq!(status, 400);
    assert_eq!(violation(&err), "service");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid value for field 'service': Invalid JSON payload received.")
    );
    let (status, err) = f.call("PATCH", &format!("/v2/{NAME}"), Some("[1, 2]")).await;
    assert_eq!((status, violation(&err)), (400, "service"));
    let huge = format!("{{\"labels\": {{\"a\": \"{}\"}}}}", "x".repeat(2 * 1024 * 1024));
    let (status, err) = f.call("PATCH", &format!("/v2/{NAME}"), Some(&huge)).await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("larger than"), "{err}");
    let (status, err) = f.call("GET", &format!("{SVC}?pageSize=abc"), None).await;
    assert_eq!((status, violation(&err)), (400, "pageSize"));
}

#[tokio::test]
async fn update_mask_replaces_only_named_fields_and_no_mask_replaces_all() {
    let f = Fixture::new();
    let service = f.shop().await;
    let mut labelled = service.clone();
    labelled["labels"] = json!({"team": "a"});
    labelled["description"] = "kept".into();
    assert_eq!(f.patch(labelled).await.0, 200);
    // With a mask, only `labels` changes; `description` in the stored service survives.
    let (status, _) = f.json("PATCH", &format!("/v2/{NAME}?updateMask=labels"), json!({"labels": {"team": "b"}})).await;
    assert_eq!(status, 200);
    let masked = f.get().await;
    assert_eq!(masked["labels"], json!({"team": "b"}));
    assert_eq!(masked["description"], "kept");
    assert_eq!(masked["template"], service["template"]);
    // Without a mask the body is the whole service: what it leaves out is gone.
    let (status, _) = f.json("PATCH", &format!("/v2/{NAME}"), json!({"template": service["template"].clone()})).await;
    assert_eq!(status, 200);
    let replaced = f.get().await;
    assert!(replaced.get("labels").is_none() && replaced.get("description").is_none(), "{replaced}");
}

#[tokio::test]
async fn allow_missing_creates_and_validate_only_changes_nothing() {
    let f = Fixture::new();
    let body = json!({"template": {"containers": [{"image": "a:1"}]}});
    let (status, _) = f.json("PATCH", &format!("/v2/{NAME}"), body.clone()).await;
    assert_eq!(status, 404);
    let (status, op) = f.json("PATCH", &format!("/v2/{NAME}?validateOnly=true&allowMissing=true"), body.clone()).await;
    assert_eq!((status, op["done"].clone()), (200, json!(true)));
    assert_eq!(f.call("GET", &format!("/v2/{NAME}"), None).await.0, 404, "validateOnly writes nothing");
    let (status, _) = f.json("PATCH", &format!("/v2/{NAME}?allowMissing=true"), body).await;
    assert_eq!(status, 200);
    assert_eq!(f.get().await["generation"], "1");
}

#[tokio::test]
async fn unknown_fields_survive_a_round_trip() {
    let f = Fixture::new();
    let service = f.shop().await;
    let mut rich = service.clone();
    rich["template"]["vpcAccess"] =
        json!({"connector": "projects/demo/locations/us-central1/connectors/c", "egress": "ALL_TRAFFIC"});
    rich["template"]["volumes"] =
        json!([{"name": "cfg", "secret": {"secret": "cfg", "items": [{"version": "3", "path": "cfg.json"}]}}]);
    rich["template"]["containers"][0]["env"] =
        json!([{"name": "DB_PASSWORD", "valueSource": {"secretKeyRef": {"secret": "db", "version": "latest"}}}]);
    rich["template"]["scaling"] = json!({"minInstanceCount": 1, "maxInstanceCount": 7});
    rich["template"]["futureField"] = json!({"nested": [1, 2, {"x": true}]});
    rich["someNewServiceField"] = "kept".into();
    assert_eq!(f.patch(rich.clone()).await.0, 200);
    f.advance(11);
    let back = f.get().await;
    for pointer in [
        "/template/vpcAccess",
        "/template/volumes",
        "/template/containers/0/env",
        "/template/scaling",
        "/template/futureField",
        "/someNewServiceField",
    ] {
        assert_eq!(back.pointer(pointer), rich.pointer(pointer), "{pointer}");
    }
}

#[tokio::test]
async fn snake_case_and_numeric_enums_are_accepted_and_ints_returned_on_request() {
    let f = Fixture::new();
    let body = r#"{"template": {"containers": [{"image": "a:1"}], "service_account": "sa@p.iam.gserviceaccount.com", "execution_environment": 2},
                   "traffic": [{"type": 1, "percent": 100}]}"#;
    let (status, _) = f.call("POST", &format!("{SVC}?serviceId=shop"), Some(body)).await;
    assert_eq!(status, 200);
    f.advance(11);
    let named = f.get().await;
    assert_eq!(named["template"]["serviceAccount"], "sa@p.iam.gserviceaccount.com");
    assert_eq!(named["template"]["executionEnvironment"], "EXECUTION_ENVIRONMENT_GEN2");
    assert_eq!(named["traffic"][0]["type"], "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST");
    let (_, ints) = f.call("GET", &format!("/v2/{NAME}?%24alt=json%3Benum-encoding%3Dint"), None).await;
    assert_eq!(ints["traffic"][0]["type"], 1);
    assert_eq!(ints["terminalCondition"]["state"], 4);
    assert_eq!(ints["template"]["executionEnvironment"], 2);
    assert_eq!(ints["generation"], "1", "int64 stays a string");
}

#[tokio::test]
async fn a_never_ready_image_fails_with_cloud_runs_condition_and_its_tag_answers_503() {
    let f = Fixture::new();
    let service = f.shop().await;
    let (status, _) =
        f.json("PUT", "/emulator/v1/profiles", json!({"image": "gcr.io/demo/shop:broken", "ready": false})).await;
    assert_eq!(status, 200);
    assert_eq!(f.patch(canary_body(&service, "gcr.io/demo/shop:broken", "shop-broken")).await.0, 200);
    f.advance(11);
    let failed = f.get().await;
    assert_eq!(failed["reconciling"], false);
    assert_eq!(failed["terminalCondition"]["state"], "CONDITION_FAILED");
    let message = failed["terminalCondition"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Revision 'shop-broken' is not ready and cannot serve traffic. The user-provided container failed to start"
        ),
        "{message}"
    );
    assert_eq!(failed["latestCreatedRevision"], format!("{NAME}/revisions/shop-broken"));
    assert_eq!(failed["latestReadyRevision"], service["latestReadyRevision"], "stable stays the latest ready");
    let (_, revision) = f.call("GET", &format!("/v2/{NAME}/revisions/shop-broken"), None).await;
    assert_eq!(revision["conditions"][0]["state"], "CONDITION_FAILED");
    assert_eq!(revision["conditions"][0]["revisionReason"], "HEALTH_CHECK_CONTAINER_ERROR");
    let (status, _) = f.call("GET", "/run/demo/us-central1/canary---shop/health", None).await;
    assert_eq!(status, 503);
    let (status, body) = f.call("GET", "/run/demo/us-central1/stable---shop/health", None).await;
    assert_eq!(status, 200, "{body}");
    let (_, op) = f.call("GET", &format!("/v2/{NAME}"), None).await;
    assert_eq!(op["name"], NAME);
}

#[tokio::test]
async fn tag_urls_answer_with_the_profile_health_status() {
    let f = Fixture::new();
    let service = f.shop().await;
    f.json("PUT", "/emulator/v1/profiles", json!({"image": "gcr.io/demo/shop:v2", "healthStatus": 500})).await;
    f.patch(canary_body(&service, "gcr.io/demo/shop:v2", "shop-v2")).await;
    f.advance(11);
    let (status, body) = f.call("GET", "/run/demo/us-central1/canary---shop/health", None).await;
    assert_eq!(status, 500);
    assert_eq!(body["revision"], "shop-v2");
    let (status, body) = f.call("POST", "/run/demo/us-central1/shop/api/x", Some("{}")).await;
    assert_eq!(status, 200, "the service URL sends 100% to stable: {body}");
    assert_eq!(f.call("GET", "/run/demo/us-central1/nope/health", None).await.0, 404);
}

#[tokio::test]
async fn faults_fire_as_scripted_and_the_log_records_every_call() {
    let f = Fixture::new();
    let service = f.shop().await;
    f.call("DELETE", "/emulator/v1/requests", None).await;
    let (status, _) = f.json("POST", "/emulator/v1/faults", json!({"method": "GET", "pathContains": "/services/shop", "status": 503, "times": 2, "retryAfterSeconds": 3})).await;
    assert_eq!(status, 200);
    let (status, err) = f.call("GET", &format!("/v2/{NAME}"), None).await;
    assert_eq!((status, err["error"]["status"].as_str()), (503, Some("UNAVAILABLE")));
    assert_eq!(err["error"]["details"][0]["retryDelay"], "3s");
    assert_eq!(f.call("GET", &format!("/v2/{NAME}"), None).await.0, 503);
    assert_eq!(f.call("GET", &format!("/v2/{NAME}"), None).await.0, 200, "spent after two");
    // A stale read serves the service as it was before the newest write.
    let mut labelled = service.clone();
    labelled["labels"] = json!({"v": "2"});
    f.patch(labelled).await;
    f.json("POST", "/emulator/v1/faults", json!({"kind": "staleRead", "times": 1})).await;
    let stale = f.get().await;
    assert!(stale.get("labels").is_none(), "{stale}");
    assert_eq!(f.get().await["labels"]["v"], "2");
    // An etag conflict refuses a write that would otherwise succeed.
    f.json("POST", "/emulator/v1/faults", json!({"kind": "etagConflict", "method": "PATCH", "times": 1})).await;
    let fresh = f.get().await;
    let (status, err) = f.patch(fresh.clone()).await;
    assert_eq!((status, err["error"]["status"].as_str()), (409, Some("ABORTED")));
    assert_eq!(f.patch(fresh).await.0, 200);
    let (_, log) = f.call("GET", "/emulator/v1/requests", None).await;
    let statuses: Vec<u64> = log.as_array().unwrap().iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, vec![503, 503, 200, 200, 200, 200, 200, 409, 200]);
    assert_eq!(log[0]["method"], "GET");
    assert_eq!(log[0]["path"], format!("/v2/{NAME}"));
    let (status, _) = f.json("POST", "/emulator/v1/faults", json!({"status": 200})).await;
    assert_eq!(status, 400, "a fault must be an error");
}

#[tokio::test]
async fn lists_are_paged_and_revisions_listed_across_services() {
    let f = Fixture::new();
    for id in ["a1", "a2", "a3", "a4", "a5"] {
        let (status, _) = f
            .json("POST", &format!("{SVC}?serviceId={id}"), json!({"template": {"containers": [{"image": "x:1"}]}}))
            .await;
        assert_eq!(status, 200);
    }
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let (status, page) = f.call("GET", &format!("{SVC}?pageSize=2&pageToken={token}"), None).await;
        assert_eq!(status, 200);
        let services = page["services"].as_array().unwrap();
        assert!(services.len() <= 2);
        names.extend(services.iter().map(|s| s["name"].as_str().unwrap().rsplit('/').next().unwrap().to_owned()));
        match page["nextPageToken"].as_str() {
            Some(next) => token = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(names, ["a1", "a2", "a3", "a4", "a5"]);
    let (status, err) = f.call("GET", &format!("{SVC}?pageToken=zz"), None).await;
    assert_eq!((status, violation(&err)), (400, "page_token"));
    let (_, all) = f.call("GET", &format!("{SVC}/-/revisions"), None).await;
    assert_eq!(all["revisions"].as_array().unwrap().len(), 5);
    assert_eq!(f.call("GET", &format!("{SVC}/nope/revisions"), None).await.0, 404);
}

#[tokio::test]
async fn delete_removes_the_service_and_its_revisions() {
    let f = Fixture::new();
    let service = f.shop().await;
    let (status, op) = f.call("DELETE", &format!("/v2/{NAME}"), None).await;
    assert_eq!((status, op["done"].clone()), (200, json!(true)));
    assert_eq!(op["response"]["name"], NAME);
    assert_eq!(f.call("GET", &format!("/v2/{NAME}"), None).await.0, 404);
    assert_eq!(f.call("GET", &format!("/v2/{}", service["latestReadyRevision"].as_str().unwrap()), None).await.0, 404);
    let (_, op_again) = f.call("GET", &format!("/v2/{}", op["name"].as_str().unwrap()), None).await;
    assert_eq!(op_again["done"], true);
}

#[tokio::test]
async fn operations_wait_returns_at_once_on_a_stepped_clock() {
    let f = Fixture::new();
    let (_, op) =
        f.json("POST", &format!("{SVC}?serviceId=shop"), json!({"template": {"containers": [{"image": "a:1"}]}})).await;
    let (status, waited) =
        f.json("POST", &format!("/v2/{}:wait", op["name"].as_str().unwrap()), json!({"timeout": "30s"})).await;
    assert_eq!(status, 200);
    assert_eq!(waited["done"], false);
    f.advance(10);
    let (_, waited) = f.json("POST", &format!("/v2/{}:wait", op["name"].as_str().unwrap()), json!({})).await;
    assert_eq!(waited["done"], true);
}

#[tokio::test]
async fn the_control_api_moves_the_clock() {
    let f = Fixture::new();
    let (_, clock) = f.call("GET", "/emulator/v1/clock", None).await;
    assert_eq!(clock["timeScale"], 0.0);
    let (status, moved) = f.json("POST", "/emulator/v1/clock:advance", json!({"seconds": 90})).await;
    assert_eq!(status, 200);
    let before = super::clock::parse_rfc3339(clock["now"].as_str().unwrap()).unwrap();
    let after = super::clock::parse_rfc3339(moved["now"].as_str().unwrap()).unwrap();
    assert_eq!(after.duration_since(before).unwrap(), Duration::from_secs(90));
    assert_eq!(f.json("POST", "/emulator/v1/clock:advance", json!({"seconds": -1})).await.0, 400);
    assert_eq!(f.json("PUT", "/emulator/v1/profiles", json!({"image": "x", "healthStatus": 42})).await.0, 400);
    assert_eq!(f.json("PUT", "/emulator/v1/profiles", json!({"image": "x", "colour": "red"})).await.0, 400);
}

mod hostile {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Random bytes, and truncations of a real body, never crash the emulator and
        /// never get a server error.
        #[test]
        fn random_and_truncated_bodies_get_a_client_error_or_success(bytes in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..400) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let f = Fixture::new();
                let service = f.shop().await;
                let real = canary_body(&service, "gcr.io/demo/shop:v2", "shop-v2").to_string();
                let truncated = &real.as_bytes()[..cut.min(real.len())];
                for body in [bytes.as_slice(), truncated] {
                    let text = String::from_utf8_lossy(body).into_owned();
                    for (method, uri) in [("PATCH", format!("/v2/{NAME}")), ("POST", format!("{SVC}?serviceId=x")), ("PUT", "/emulator/v1/profiles".to_owned()), ("POST", "/emulator/v1/faults".to_owned())] {
                        let (status, _) = f.call(method, &uri, Some(&text)).await;
                        prop_assert!(status < 500, "{} {} -> {}", method, uri, status);
                        // A body that happens to be a valid fault really injects one.
                        f.call("DELETE", "/emulator/v1/faults", None).await;
                    }
                }
                Ok(())
            })?;
        }
    }
}
