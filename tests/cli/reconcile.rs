//! The real `canary` binary reconciling against `canary emulator` over HTTP, on a
//! stepped clock: `reconcile --once` and `clock:advance`, alternately.

use std::path::PathBuf;
use std::process::Output;

use serde_json::{Value, json};

use crate::support::{
    EmulatorProcess, Manifest, Scenario, code, eventually, repo, service_path, stderr, stdout, tool, write_manifest,
};

/// The service every rollout here works on.
fn api() -> String {
    service_path("api")
}

/// An emulator, a folder of manifests, and the binary pointed at both.
pub(crate) struct Rollout {
    pub(crate) emulator: EmulatorProcess,
    pub(crate) dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

impl Rollout {
    pub(crate) fn start(profiles: &str, rps: f64) -> Rollout {
        let dir = tempfile::tempdir().unwrap();
        // Fields canary does not own (scaling, VPC, secrets) must survive every write.
        let template = "      scaling: {minInstanceCount: 1, maxInstanceCount: 7}\n      \
             vpcAccess: {connector: projects/demo-project/locations/us-central1/connectors/vpc, egress: ALL_TRAFFIC}\n      \
             volumes: [{name: cfg, secret: {secret: app-config}}]\n      \
             containers: [{env: [{name: DB_PASSWORD, valueSource: {secretKeyRef: {secret: db, version: latest}}}]}]";
        let emulator = Scenario::new(11)
            .profile(r#"{image: "gcr.io/demo/api:v1", errorRate: 0.005, p50Ms: 80, p95Ms: 250}"#)
            .profile_lines(profiles)
            .service("api", "gcr.io/demo/api:v1", template, rps)
            .start(dir.path(), &[]);
        std::fs::create_dir(dir.path().join("manifests")).unwrap();
        Rollout { emulator, dir, http: reqwest::blocking::Client::new() }
    }

    /// A healthy v2 canary of `api`, deployed and holding its first stage (5%).
    pub(crate) fn at_first_stage(rps: f64) -> Rollout {
        let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2"}"#, rps);
        r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
        let steps = r.run_until(60, 5, |res| res["action"] == "setTraffic");
        assert_eq!(steps.last().unwrap()["result"]["action"], "setTraffic", "{steps:#?}");
        r
    }

    /// The manifest of [`Rollout::manifest`] with its own `analysis` block (indented
    /// four spaces).
    pub(crate) fn manifest_judged(&self, image: &str, analysis: &str) {
        self.write_manifest("api.yaml", image, analysis);
    }

    fn write_manifest(&self, file: &str, image: &str, analysis: &str) {
        let manifest = Manifest::new("api", image)
            .stages(&[(5, "30m"), (25, "30m"), (50, "30m"), (100, "10m")])
            .analysis(analysis);
        write_manifest(&manifest, &self.manifests(), file);
    }

    /// The emulator's clock, as seconds since the epoch.
    fn now(&self) -> u64 {
        let clock = self.emulator.get("/emulator/v1/clock");
        let text = clock["now"].as_str().unwrap_or_default().to_owned();
        canary_emulator::clock::parse_rfc3339(&text)
            .unwrap_or_else(|| panic!("clock: {clock}"))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    pub(crate) fn manifest(&self, file: &str, image: &str, extra: &str) {
        let analysis = format!(
            "    warmup: 2m\n    maxWait: 2h\n    promotion: {{maxErrorRateIncrease: 0.5%, maxP95Increase: 10%, minRequests: 500}}\n    rollback:\n      - {{metric: errorRate, above: 5%}}\n      - {{metric: p95Latency, above: 2s, for: 5m}}\n{extra}"
        );
        self.write_manifest(file, image, &analysis);
    }

    fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    pub(crate) fn canary(&self, args: &[&str]) -> Output {
        assert_cmd::Command::cargo_bin("canary")
            .unwrap()
            .current_dir(self.dir.path())
            .env("CLOUD_RUN_EMULATOR_HOST", self.emulator.base.trim_start_matches("http://"))
            .env("NO_COLOR", "1")
            .args(args)
            .output()
            .unwrap()
    }

    /// `canary ARGS` left running (`status --watch`), its stdout piped. NO_COLOR is not
    /// set: what it prints when piped is its own choice.
    pub(crate) fn spawn(&self, args: &[&str]) -> std::process::Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"))
            .current_dir(self.dir.path())
            .env("CLOUD_RUN_EMULATOR_HOST", self.emulator.base.trim_start_matches("http://"))
            .env_remove("NO_COLOR")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    pub(crate) fn reconcile(&self) -> (i32, Vec<Value>) {
        let out = self.canary(&["reconcile", "--once", "-o", "json", "manifests"]);
        let results: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}\n{}", stdout(&out), stderr(&out)));
        (code(&out), results.as_array().cloned().unwrap_or_default())
    }

    pub(crate) fn advance(&self, seconds: u64) {
        self.emulator.advance(seconds);
    }

    fn service(&self) -> Value {
        self.emulator.get(&format!("/v2/{}", api()))
    }

    fn patches(&self) -> usize {
        self.emulator.requests_where(|r| r["method"] == "PATCH").len()
    }

    /// How revisions of an image behave from now on.
    fn profile(&self, profile: Value) {
        self.emulator.control(reqwest::Method::PUT, "profiles", &profile);
    }

    fn fault(&self, fault: Value) {
        self.emulator.fault(&fault);
    }

    fn revisions(&self) -> Vec<String> {
        let list = self.emulator.get(&format!("/v2/{}/revisions", api()));
        list["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().rsplit('/').next().unwrap().to_owned())
            .collect()
    }

    /// Runs passes, advancing `step` seconds between them, until `done` or `max` passes.
    pub(crate) fn run_until(&self, step: u64, max: usize, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        for _ in 0..max {
            let (exit, results) = self.reconcile();
            let result = results[0].clone();
            seen.push(json!({"exit": exit, "result": result}));
            if done(&result) {
                break;
            }
            self.advance(step);
        }
        seen
    }
}

/// The first result's phase after the pass and its action.
fn phase_and_action(results: &[Value]) -> (&str, Option<&str>) {
    (results[0]["phaseAfter"].as_str().unwrap_or_default(), results[0]["action"].as_str())
}

fn phase(v: &Value) -> &str {
    v["result"]["phaseAfter"].as_str().unwrap_or_default()
}

#[test]
fn a_healthy_canary_is_promoted_through_every_stage_keeping_what_it_does_not_own() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2", errorRate: 0.005, p50Ms: 80, p95Ms: 250}"#, 20.0);
    // A tag the team made by hand: canary must leave it alone.
    let mut service = r.service();
    let stable = service["latestReadyRevision"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    service["traffic"] = json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}, {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": stable, "tag": "team-preview"}]);
    let patched = r.http.patch(format!("{}/v2/{}", r.emulator.base, api())).body(service.to_string()).send().unwrap();
    assert!(patched.status().is_success());
    r.advance(15);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    let before = r.patches();
    let steps = r.run_until(300, 60, |res| res["phaseAfter"] == "Promoted");
    let actions: Vec<&str> =
        steps.iter().map(|s| s["result"]["action"].as_str().unwrap()).filter(|a| *a != "none").collect();
    assert_eq!(actions, ["deploy", "setTraffic", "setTraffic", "setTraffic", "setTraffic", "promote"], "{steps:#?}");
    assert!(steps.iter().all(|s| s["exit"] == 0), "{steps:#?}");
    assert_eq!(r.patches() - before, 6, "each step is exactly one PATCH");
    let weights: Vec<Value> = steps
        .iter()
        .filter(|s| s["result"]["action"] == "setTraffic")
        .map(|s| s["result"]["trafficAfter"].clone())
        .collect();
    assert_eq!(weights.len(), 4);
    // Idle passes after promotion write nothing.
    let settled = r.patches();
    for _ in 0..3 {
        r.advance(600);
        let (exit, results) = r.reconcile();
        assert_eq!((exit, results[0]["action"].as_str()), (0, Some("none")));
    }
    assert_eq!(r.patches(), settled);
    // What canary does not own survived the whole rollout.
    let end = r.service();
    assert_eq!(end["template"]["scaling"], json!({"minInstanceCount": 1, "maxInstanceCount": 7}));
    assert_eq!(end["template"]["vpcAccess"]["connector"], "projects/demo-project/locations/us-central1/connectors/vpc");
    assert_eq!(end["template"]["volumes"][0]["secret"]["secret"], "app-config");
    assert_eq!(end["template"]["containers"][0]["env"][0]["valueSource"]["secretKeyRef"]["secret"], "db");
    assert_eq!(end["template"]["containers"][0]["image"], "gcr.io/demo/api:v2");
    let traffic = end["traffic"].as_array().unwrap();
    assert!(traffic.iter().any(|t| t["tag"] == "team-preview" && t["revision"] == stable.as_str()), "{traffic:?}");
    assert!(traffic.iter().any(|t| t["tag"] == "stable" && t["percent"] == 100), "{traffic:?}");
    assert_eq!(end["annotations"]["canary/phase"], "Promoted");
    assert_eq!(r.revisions().len(), 2, "one canary revision, no duplicates");
}

#[test]
fn a_canary_with_10_percent_errors_is_rolled_back_with_exit_3_and_never_redeployed() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2", errorRate: 0.10, p50Ms: 80, p95Ms: 250}"#, 20.0);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    let steps = r.run_until(120, 30, |res| res["phaseAfter"] == "RolledBack");
    let last = steps.last().unwrap();
    assert_eq!(phase(last), "RolledBack", "{steps:#?}");
    assert_eq!(last["exit"], 3, "exit 3 in the pass that rolled back");
    assert_eq!(last["result"]["action"], "rollback");
    // Whichever sees it first: the 5% trigger, or the comparison with stable's 0.5%.
    let reason = last["result"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("rolled back: rollback trigger errorRate failed")
            || reason.starts_with("rolled back: promotion gate errorRateIncrease failed"),
        "{last}"
    );
    assert_eq!(last["result"]["trafficAfter"].as_object().unwrap().len(), 1);
    let patches = r.patches();
    for _ in 0..3 {
        r.advance(600);
        let (exit, results) = r.reconcile();
        assert_eq!(exit, 0, "later passes are quiet");
        assert_eq!(results[0]["phaseAfter"], "RolledBack");
        assert!(results[0]["reason"].as_str().unwrap().contains("was rejected"));
    }
    assert_eq!(r.patches(), patches, "a rolled-back image is not deployed again");
}

#[test]
fn without_traffic_a_canary_waits_and_is_never_promoted_or_rolled_back() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2", errorRate: 0.5}"#, 0.0);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    let steps = r.run_until(900, 20, |_| false);
    for s in &steps {
        assert!(!["Promoted", "RolledBack"].contains(&phase(s)), "{s}");
        assert_ne!(s["exit"], 3);
    }
    let last = phase(steps.last().unwrap());
    assert!(["Waiting", "Paused"].contains(&last), "{steps:#?}");
    assert_eq!(r.service()["annotations"]["canary/stage"], "1", "stuck at the first stage");
}

#[test]
fn a_revision_that_never_becomes_ready_fails_and_traffic_is_untouched() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:broken", ready: false}"#, 20.0);
    r.manifest("api.yaml", "gcr.io/demo/api:broken", "");
    let steps = r.run_until(60, 10, |res| res["phaseAfter"] == "Failed");
    let last = steps.last().unwrap();
    assert_eq!(phase(last), "Failed", "{steps:#?}");
    assert_eq!(last["exit"], 3);
    assert!(last["result"]["reason"].as_str().unwrap().starts_with("RevisionFailed: Revision"), "{last}");
    let traffic = r.service()["trafficStatuses"].clone();
    let serving: Vec<&Value> =
        traffic.as_array().unwrap().iter().filter(|t| t["percent"].as_u64().unwrap_or(0) > 0).collect();
    assert_eq!(serving.len(), 1);
    assert_eq!(serving[0]["percent"], 100);
    assert_eq!(serving[0]["tag"], "stable");
}

#[test]
fn a_failing_smoke_test_keeps_the_canary_from_ever_getting_traffic() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2", healthStatus: 500}"#, 20.0);
    r.manifest(
        "api.yaml",
        "gcr.io/demo/api:v2",
        "  smokeTests: [{path: /health}, {path: /api/orders, method: POST, json: {sku: A1}}]\n",
    );
    let steps = r.run_until(60, 10, |res| res["phaseAfter"] == "Failed");
    let last = steps.last().unwrap();
    assert_eq!(phase(last), "Failed", "{steps:#?}");
    let reason = last["result"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("SmokeTestFailed: GET /health answered 500, expected a 2xx: {\"revision\":\"api-"),
        "{reason}"
    );
    assert!(steps.iter().all(|s| s["result"]["trafficAfter"].as_object().unwrap().len() == 1), "{steps:#?}");
}

#[test]
fn an_invalid_manifest_beside_a_valid_one_exits_2_while_the_valid_one_progresses() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2"}"#, 20.0);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    std::fs::write(
        r.manifests().join("broken.yaml"),
        "apiVersion: canary/v1alpha1\nkind: CanaryRollout\nmetadata: {name: other}\nspec: {stagse: []}\n",
    )
    .unwrap();
    let out = r.canary(&["reconcile", "--once", "-o", "json", "manifests"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("manifests/broken.yaml:4:8: error: unknown field `stagse` in `spec`"),
        "{}",
        stderr(&out)
    );
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results[0]["action"], "deploy", "the valid rollout still moved");
}

#[test]
fn a_service_owned_by_another_rollout_is_left_alone_with_a_clear_error() {
    let r = Rollout::start("", 20.0);
    let mut service = r.service();
    service["annotations"] = json!({"canary/owner": "checkout", "canary/phase": "Progressing", "canary/stage": "2"});
    assert!(
        r.http
            .patch(format!("{}/v2/{}", r.emulator.base, api()))
            .body(service.to_string())
            .send()
            .unwrap()
            .status()
            .is_success()
    );
    r.advance(15);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    let before = r.patches();
    let out = r.canary(&["reconcile", "--once", "manifests"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("error: api: NotOwned: service api is managed by rollout `checkout`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(r.patches(), before, "nothing written");
    // Neither the pass nor status passes `checkout`'s state off as this rollout's.
    let plan = r.canary(&["plan", "-o", "json", "manifests"]);
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan[0]["phaseBefore"], Value::Null, "{plan}");
    let status = r.canary(&["status", "api", "-f", "manifests", "-o", "json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["phase"], "Failed", "{status}");
    assert!(status[0]["reason"].as_str().unwrap().starts_with("NotOwned"), "{status}");
}

#[test]
fn plan_shows_the_next_step_and_writes_nothing() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2"}"#, 20.0);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    let out = r.canary(&["plan", "-o", "json", "manifests"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan[0]["action"], "deploy");
    assert_eq!(plan[0]["phaseBefore"], Value::Null);
    assert_eq!(plan[0]["phaseAfter"], "Deploying");
    assert_eq!(r.patches(), 0);
    let table = r.canary(&["plan", "manifests"]);
    assert!(stdout(&table).starts_with("ROLLOUT  PHASE"), "{}", stdout(&table));
}

#[test]
fn status_reports_the_rollout_in_the_documented_shape() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2"}"#, 20.0);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    r.run_until(60, 4, |res| res["action"] == "setTraffic");
    // Right after the write Cloud Run still serves 100% stable: status says where the
    // split is going rather than looking as if the write was lost.
    let settling = r.canary(&["status", "api", "-f", "manifests", "-o", "json"]);
    let settling: Value = serde_json::from_slice(&settling.stdout).unwrap();
    let target = settling[0]["settlingTo"].as_object().unwrap_or_else(|| panic!("{settling}"));
    let canary = settling[0]["canaryRevision"].as_str().unwrap();
    assert_eq!(target.get(canary).and_then(Value::as_u64), Some(5), "{settling}");
    assert_eq!(target.values().filter_map(Value::as_u64).sum::<u64>(), 100, "{settling}");
    r.advance(600);
    let out = r.canary(&["status", "api", "-f", "manifests", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &status[0];
    assert!(s.get("settlingTo").is_none(), "settled by now: {s}");
    assert_eq!(s["name"], "api");
    assert_eq!(s["phase"], "Progressing");
    assert_eq!((s["stage"].as_u64(), s["stages"].as_u64(), s["weight"].as_u64()), (Some(1), Some(4), Some(5)));
    assert!(s["canaryRevision"].as_str().unwrap().starts_with("api-"));
    assert!(s["holdRemainingSeconds"].as_u64().unwrap() <= 1200);
    let gates: Vec<&str> = s["gates"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(gates, ["minRequests", "errorRateIncrease", "p95Increase"]);
    for g in s["gates"].as_array().unwrap() {
        assert!(["pass", "fail", "inconclusive"].contains(&g["result"].as_str().unwrap()), "{g}");
    }
    // One rollout as text: its stages, revisions, triggers and gates.
    let text = r.canary(&["status", "api", "-f", "manifests"]);
    assert_eq!(code(&text), 0, "{}", stderr(&text));
    let text = stdout(&text);
    for part in ["api  Progressing", "stages", "revisions", "gates", "minRequests", "errorRateIncrease", "triggers"] {
        assert!(text.contains(part), "{part} missing from\n{text}");
    }
    assert!(!text.contains('\x1b'), "no colour when piped");
    let missing = r.canary(&["status", "nope", "-f", "manifests"]);
    assert_eq!(code(&missing), 2);
}

/// A crash at any API call of a pass — the process killed while the call is in flight,
/// after the server has acted on it — and a fresh run converges, with no duplicate
/// revision.
#[test]
fn a_crash_at_any_call_of_a_pass_converges_without_a_duplicate_revision() {
    // Where the reconciler dies: before any call, or in the middle of one (the emulator
    // holds that call for 3 s, and carries it out even once its caller is gone).
    for (method, path) in
        [("-", "before any call"), ("GET", "/services"), ("PATCH", "/services/api"), ("GET", "/services/api")]
    {
        let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2"}"#, 20.0);
        r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
        let held = (method != "-").then(|| {
            r.fault(json!({"kind": "slow", "method": method, "pathContains": path, "delayMs": 3000, "times": 1}));
            r.emulator.count(method, path)
        });
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"))
            .current_dir(r.dir.path())
            .env("CLOUD_RUN_EMULATOR_HOST", r.emulator.base.trim_start_matches("http://"))
            .args(["reconcile", "--once", "manifests"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if held.is_some() {
            // A fired fault leaves the list: the held call has reached the emulator.
            eventually("the held call to arrive", std::time::Duration::from_secs(20), || {
                r.emulator.get("/emulator/v1/faults")["faults"].as_array().is_some_and(Vec::is_empty).then_some(())
            });
        }
        let _ = child.kill();
        let _ = child.wait();
        if let Some(before) = held {
            // The emulator finishes the call its caller left (it is logged once answered).
            eventually("the held call to be carried out", std::time::Duration::from_secs(20), || {
                (r.emulator.count(method, path) > before).then_some(())
            });
        }
        let steps = r.run_until(300, 40, |res| res["phaseAfter"] == "Promoted");
        assert_eq!(phase(steps.last().unwrap()), "Promoted", "crash at {method} {path}: {steps:#?}");
        assert_eq!(r.revisions().len(), 2, "crash at {method} {path}: {:?}", r.revisions());
    }
}

/// 503s and 429s with Retry-After are retried (reads and refused writes); a 500 on a
/// write is not retried blindly: the pass reports it, and the next pass converges.
#[test]
fn throttling_is_retried_and_a_failed_write_is_never_blindly_repeated() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2"}"#, 20.0);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    for fault in [
        json!({"method": "GET", "pathContains": "/services", "status": 503, "times": 2, "retryAfterSeconds": 0}),
        json!({"method": "PATCH", "status": 429, "times": 1, "retryAfterSeconds": 1}),
    ] {
        r.fault(fault);
    }
    let (exit, results) = r.reconcile();
    assert_eq!((exit, results[0]["action"].as_str()), (0, Some("deploy")), "{results:?}");
    let patches: Vec<u64> =
        r.emulator.requests_where(|c| c["method"] == "PATCH").iter().map(|c| c["status"].as_u64().unwrap()).collect();
    assert_eq!(patches, [429, 200]);
    r.advance(30);
    r.fault(json!({"method": "PATCH", "status": 500, "times": 1}));
    let out = r.canary(&["reconcile", "--once", "manifests"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(
            "the write failed: PATCH /v2/projects/demo-project/locations/us-central1/services/api: 500 INTERNAL"
        ),
        "{}",
        stderr(&out)
    );
    let failed_writes = r.emulator.requests_where(|c| c["method"] == "PATCH" && c["status"] == 500).len();
    assert_eq!(failed_writes, 1, "never blindly retried");
    let (exit, results) = r.reconcile();
    assert_eq!((exit, results[0]["action"].as_str()), (0, Some("setTraffic")));
    assert_eq!(r.revisions().len(), 2);
}

fn annotation(r: &Rollout, key: &str) -> String {
    r.service()["annotations"][key].as_str().unwrap_or_default().to_owned()
}

fn run_ok(r: &Rollout, args: &[&str]) -> String {
    let out = r.canary(args);
    assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn pause_holds_the_stage_without_counting_the_time_and_resume_carries_on() {
    let r = Rollout::at_first_stage(20.0);
    r.advance(600);
    let said = run_ok(&r, &["pause", "api", "-f", "./manifests"]);
    assert!(said.starts_with("api: pause requested. The next pass"), "{said}");
    assert!(said.contains("rollback triggers still apply"), "{said}");
    // The command it suggests works as printed: it names the manifests given.
    assert!(said.contains("`canary resume api -f ./manifests` carries on"), "{said}");
    let (_, results) = r.reconcile();
    assert_eq!((results[0]["action"].as_str(), results[0]["phaseAfter"].as_str()), (Some("annotate"), Some("Paused")));
    r.advance(3600);
    let (_, results) = r.reconcile();
    assert_eq!(
        (results[0]["action"].as_str(), results[0]["phaseAfter"].as_str()),
        (Some("none"), Some("Paused")),
        "held past the hold"
    );
    run_ok(&r, &["resume", "api", "-f", "manifests"]);
    let (_, results) = r.reconcile();
    assert_eq!(results[0]["phaseAfter"], "Progressing");
    // 10 minutes of the 30-minute hold were used before the pause; 15 more is not enough.
    r.advance(900);
    let (_, results) = r.reconcile();
    assert_eq!(results[0]["action"], "none", "paused time did not count: {results:?}");
    r.advance(900);
    let (_, results) = r.reconcile();
    assert_eq!(results[0]["action"], "setTraffic", "{results:?}");
    assert_eq!(annotation(&r, "canary/stage"), "2");
}

#[test]
fn a_paused_rollout_is_still_rolled_back_by_its_triggers() {
    let r = Rollout::at_first_stage(40.0);
    run_ok(&r, &["pause", "api", "-f", "manifests"]);
    r.reconcile();
    // The incident: the canary starts failing while paused.
    r.profile(json!({"image": "gcr.io/demo/api:v2", "errorRate": 0.4}));
    r.advance(600);
    let (exit, results) = r.reconcile();
    assert_eq!((exit, results[0]["phaseAfter"].as_str()), (3, Some("RolledBack")), "{results:?}");
}

#[test]
fn promote_skips_the_rest_of_the_stage_and_full_goes_straight_to_promoted() {
    let r = Rollout::at_first_stage(20.0);
    let said = run_ok(&r, &["promote", "api", "-f", "manifests"]);
    assert!(said.contains("skipping the rest of its hold and its gates, and moves to stage 2 (25%)"), "{said}");
    let (_, results) = r.reconcile();
    assert_eq!(results[0]["action"], "setTraffic");
    assert_eq!(annotation(&r, "canary/stage"), "2");
    run_ok(&r, &["promote", "api", "--full", "-f", "manifests"]);
    let (exit, results) = r.reconcile();
    assert_eq!(
        (exit, results[0]["action"].as_str(), results[0]["phaseAfter"].as_str()),
        (0, Some("promote"), Some("Promoted"))
    );
    let refused = r.canary(&["promote", "api", "-f", "manifests"]);
    assert_eq!(code(&refused), 2);
    assert!(
        stderr(&refused).contains("api is Promoted: only a rollout in its stages can be promoted"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn abort_rolls_back_and_rejects_and_retry_deploys_again() {
    let r = Rollout::at_first_stage(20.0);
    let said = run_ok(&r, &["abort", "api", "-f", "manifests"]);
    assert!(said.contains("sends 100% back to api-00001-"), "{said}");
    let (exit, results) = r.reconcile();
    assert_eq!((exit, results[0]["action"].as_str()), (3, Some("rollback")));
    assert_eq!(results[0]["reason"], "rolled back: aborted with `canary abort`");
    let (_, results) = r.reconcile();
    assert_eq!(results[0]["action"], "none", "rejected until retry");
    let said = run_ok(&r, &["retry", "api", "-f", "manifests"]);
    assert!(said.contains("is no longer rejected"), "{said}");
    r.advance(15);
    let (exit, results) = r.reconcile();
    assert_eq!((exit, results[0]["action"].as_str()), (0, Some("deploy")), "{results:?}");
    assert_eq!(r.revisions().len(), 2, "the same template, the same revision");
}

#[test]
fn resume_cannot_override_spec_paused_and_commands_check_what_they_act_on() {
    let r = Rollout::at_first_stage(20.0);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "  paused: true\n");
    let (_, results) = r.reconcile();
    assert_eq!(results[0]["phaseAfter"], "Paused");
    let refused = r.canary(&["resume", "api", "-f", "manifests"]);
    assert_eq!(code(&refused), 2);
    assert!(
        stderr(&refused).contains("paused by `spec.paused: true` in its manifest; set it to false there"),
        "{}",
        stderr(&refused)
    );
    let unknown = r.canary(&["pause", "nope", "-f", "manifests"]);
    assert_eq!(code(&unknown), 2);
    assert!(stderr(&unknown).contains("no valid manifest named `nope`"), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("hint: a rollout is named by its manifest's metadata.name"),
        "{}",
        stderr(&unknown)
    );
    let nothing = r.canary(&["retry", "api", "-f", "manifests"]);
    assert_eq!(code(&nothing), 2);
}

#[test]
fn an_invalid_edit_freezes_the_rollout_and_its_last_valid_triggers_still_protect_it() {
    let r = Rollout::at_first_stage(40.0);
    r.advance(15);
    let split = r.service()["trafficStatuses"].clone();
    // Someone pushes a broken edit.
    std::fs::write(r.manifests().join("api.yaml"), "apiVersion: canary/v1alpha1\nkind: CanaryRollout\nmetadata: {name: api}\nspec: {project: demo-project, region: us-central1, service: api, stagse: []}\n").unwrap();
    let (exit, results) = r.reconcile();
    assert_eq!(exit, 2);
    assert_eq!(results[0]["name"], "api");
    assert_eq!(results[0]["phaseAfter"], "Paused");
    assert!(results[0]["reason"].as_str().unwrap().starts_with("frozen: the manifest is invalid"), "{results:?}");
    r.advance(3 * 3600);
    let (_, results) = r.reconcile();
    assert_eq!(results[0]["action"], "none", "held well past the hold: {results:?}");
    assert_eq!(r.service()["trafficStatuses"], split, "traffic as it was");
    // `status` still shows it, frozen, from the manifest it was last applied with.
    let out = r.canary(&["status", "-f", "manifests", "-o", "json"]);
    assert_eq!(code(&out), 2, "the invalid manifest is reported: {}", stderr(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((status[0]["name"].as_str(), status[0]["frozen"].as_bool()), (Some("api"), Some(true)), "{status}");
    assert!(status[0]["reason"].as_str().unwrap().starts_with("frozen: "), "{status}");
    assert_eq!(status[0]["stage"], 1, "{status}");
    // And so does the live view.
    let mut live = r.spawn(&["status", "--watch", "-o", "json", "--interval", "100ms", "-f", "manifests"]);
    let stdout = live.stdout.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = send.send(line);
    });
    let line = receive.recv_timeout(std::time::Duration::from_secs(30)).expect("a first view");
    let _ = live.kill();
    let _ = live.wait();
    let view: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!((view[0]["name"].as_str(), view[0]["frozen"].as_bool()), (Some("api"), Some(true)), "{view}");
    // The incident: the frozen rollout's last valid triggers still roll it back.
    r.profile(json!({"image": "gcr.io/demo/api:v2", "errorRate": 0.4}));
    r.advance(600);
    let (exit, results) = r.reconcile();
    assert_eq!((exit, results[0]["phaseAfter"].as_str()), (3, Some("RolledBack")), "{results:?}");
}

#[test]
fn fixing_an_invalid_edit_resumes_and_stage_edits_continue_from_the_current_stage() {
    let r = Rollout::at_first_stage(20.0);
    r.advance(1900);
    r.run_until(60, 3, |res| res["action"] == "setTraffic");
    assert_eq!(annotation(&r, "canary/stage"), "2");
    std::fs::write(r.manifests().join("api.yaml"), "apiVersion: canary/v1alpha1\nkind: CanaryRollout\nmetadata: {name: api}\nspec: {project: demo-project, region: us-central1, service: api, stagse: []}\n").unwrap();
    r.reconcile();
    r.advance(600);
    // The fix changes only the stages: 5 / 25 / 75 / 100.
    let fixed = std::fs::read_to_string(r.manifests().join("api.yaml")).unwrap();
    assert!(fixed.contains("stagse"));
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    let edited = std::fs::read_to_string(r.manifests().join("api.yaml"))
        .unwrap()
        .replace("{weight: 50, hold: 30m}", "{weight: 75, hold: 30m}");
    std::fs::write(r.manifests().join("api.yaml"), edited).unwrap();
    let (exit, results) = r.reconcile();
    assert_eq!((exit, results[0]["phaseAfter"].as_str()), (0, Some("Progressing")), "{results:?}");
    assert_eq!(annotation(&r, "canary/stage"), "2", "still at stage 2");
    let steps = r.run_until(300, 12, |res| res["action"] == "setTraffic");
    let last = &steps.last().unwrap()["result"];
    assert!(last["trafficAfter"].as_object().unwrap().values().any(|v| v == 75), "the edited stage 3 weight: {last}");
}

#[test]
fn a_new_image_mid_rollout_restarts_at_deploy_while_stable_keeps_serving() {
    let r = Rollout::start(
        r#"  - {image: "gcr.io/demo/api:v2"}
  - {image: "gcr.io/demo/api:v3"}"#,
        20.0,
    );
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    r.run_until(60, 5, |res| res["action"] == "setTraffic");
    let first_canary = annotation(&r, "canary/canary");
    r.advance(15);
    r.manifest("api.yaml", "gcr.io/demo/api:v3", "");
    let (exit, results) = r.reconcile();
    assert_eq!(
        (exit, results[0]["action"].as_str(), results[0]["phaseAfter"].as_str()),
        (0, Some("deploy"), Some("Deploying"))
    );
    let stable = annotation(&r, "canary/stable");
    assert_eq!(results[0]["trafficAfter"], json!({stable.as_str(): 100}), "stable serves everything while v3 starts");
    assert_ne!(annotation(&r, "canary/canary"), first_canary);
    let steps = r.run_until(300, 40, |res| res["phaseAfter"] == "Promoted");
    assert_eq!(phase(steps.last().unwrap()), "Promoted");
    assert_eq!(r.service()["template"]["containers"][0]["image"], "gcr.io/demo/api:v3");
}

/// Two reconcilers on the same manifests, passes interleaved, with etag conflicts and
/// stale reads injected: they converge on what one would reach, with no duplicate
/// revision and no lost transition.
#[test]
fn two_reconcilers_racing_converge() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2"}"#, 20.0);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    for fault in [
        json!({"kind": "etagConflict", "method": "PATCH", "probability": 0.3}),
        json!({"kind": "staleRead", "method": "GET", "pathContains": "/services/api", "probability": 0.3}),
    ] {
        r.fault(fault);
    }
    let spawn = || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"))
            .current_dir(r.dir.path())
            .env("CLOUD_RUN_EMULATOR_HOST", r.emulator.base.trim_start_matches("http://"))
            .args(["reconcile", "--once", "manifests"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    for _ in 0..40 {
        let (mut a, mut b) = (spawn(), spawn());
        let _ = (a.wait(), b.wait());
        if annotation(&r, "canary/phase") == "Promoted" {
            break;
        }
        r.advance(300);
    }
    r.http.delete(format!("{}/emulator/v1/faults", r.emulator.base)).send().unwrap();
    assert_eq!(annotation(&r, "canary/phase"), "Promoted");
    assert_eq!(r.revisions().len(), 2, "{:?}", r.revisions());
    let history: Vec<Value> = serde_json::from_str(&annotation(&r, "canary/history")).unwrap();
    let phases: Vec<&str> = history.iter().map(|h| h["phase"].as_str().unwrap()).collect();
    assert_eq!(
        phases,
        ["Deploying", "Progressing", "Progressing", "Progressing", "Progressing", "Promoted"],
        "{history:?}"
    );
}

/// With 30% of API calls failing (503, and 429 with Retry-After), rollouts still
/// complete, with no duplicate revision and every transition recorded.
#[test]
fn rollouts_complete_with_30_percent_of_calls_failing() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2"}"#, 20.0);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    for fault in [
        json!({"status": 503, "probability": 0.15}),
        json!({"status": 429, "probability": 0.18, "retryAfterSeconds": 0}),
    ] {
        r.fault(fault);
    }
    let steps = r.run_until(300, 60, |res| res["phaseAfter"] == "Promoted");
    r.http.delete(format!("{}/emulator/v1/faults", r.emulator.base)).send().unwrap();
    assert_eq!(phase(steps.last().unwrap()), "Promoted", "{steps:#?}");
    let log = r.emulator.requests();
    let failed = log.iter().filter(|c| c["status"] == 503 || c["status"] == 429).count();
    assert!(failed * 100 / log.len() >= 20, "{failed} of {} calls failed", log.len());
    assert_eq!(r.revisions().len(), 2);
    let history: Vec<Value> = serde_json::from_str(&annotation(&r, "canary/history")).unwrap();
    let phases: Vec<&str> = history.iter().map(|h| h["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["Deploying", "Progressing", "Progressing", "Progressing", "Progressing", "Promoted"]);
}

#[test]
fn shards_split_the_set_between_reconcilers() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2"}"#, 20.0);
    let body = json!({"template": {"containers": [{"image": "gcr.io/demo/api:v1"}]}});
    r.http
        .post(format!("{}/v2/projects/demo-project/locations/us-central1/services?serviceId=web", r.emulator.base))
        .body(body.to_string())
        .send()
        .unwrap();
    r.advance(15);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    let web = std::fs::read_to_string(r.manifests().join("api.yaml"))
        .unwrap()
        .replace("name: api", "name: web")
        .replace("service: api", "service: web");
    std::fs::write(r.manifests().join("web.yaml"), web).unwrap();
    let mut seen = Vec::new();
    for shard in ["0/2", "1/2"] {
        let out = r.canary(&["plan", "-o", "json", "--shard", shard, "manifests"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
        seen.extend(plan.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()));
    }
    seen.sort();
    assert_eq!(seen, ["api", "web"], "each rollout in exactly one shard");
    let bad = r.canary(&["plan", "--shard", "2/2", "manifests"]);
    assert_eq!(code(&bad), 2);
    assert!(stderr(&bad).contains("`2/2` is not a shard"), "{}", stderr(&bad));
}

#[test]
fn without_credentials_or_an_emulator_the_error_says_what_to_set() {
    let out = assert_cmd::Command::cargo_bin("canary")
        .unwrap()
        .current_dir(crate::support::repo())
        .env_remove("CLOUD_RUN_EMULATOR_HOST")
        .env("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
        .args(["plan", "manifests/minimal.yaml"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let text = stderr(&out);
    assert!(text.starts_with("error: no Application Default Credentials:"), "{text}");
    assert!(text.contains("hint: set GOOGLE_APPLICATION_CREDENTIALS"), "{text}");
    assert!(text.contains("CLOUD_RUN_EMULATOR_HOST"), "{text}");
}

#[test]
fn with_no_credential_source_at_all_it_says_so_at_once_and_never_panics() {
    // Off Google Cloud (the metadata server's name does not resolve here), with no key
    // and no gcloud login, there is nothing to try: the answer is immediate.
    let home = tempfile::tempdir().unwrap();
    let on_google = std::net::ToSocketAddrs::to_socket_addrs(&("metadata.google.internal", 80)).is_ok();
    let start = std::time::Instant::now();
    let out = assert_cmd::Command::cargo_bin("canary")
        .unwrap()
        .current_dir(crate::support::repo())
        .env_remove("CLOUD_RUN_EMULATOR_HOST")
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env_remove("CLOUDSDK_CONFIG")
        .env_remove("GCE_METADATA_HOST")
        .env("HOME", home.path())
        .args(["status", "-f", "manifests/minimal.yaml"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    if !on_google {
        assert!(stderr(&out).starts_with("error: no Application Default Credentials:"), "{}", stderr(&out));
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "took {:?}", start.elapsed());
    }
}

// ---- judgement ------------------------------------------------------------------------

/// Runs passes `step` seconds apart until the rollout leaves stage 1's traffic or
/// `max` passes; returns the steps and the moment the canary first got traffic.
fn first_traffic_then(r: &Rollout, step: u64, max: usize, done: impl Fn(&Value) -> bool) -> (u64, Vec<Value>) {
    let start = r.run_until(30, 10, |res| res["action"] == "setTraffic");
    assert_eq!(start.last().unwrap()["result"]["action"], "setTraffic", "{start:#?}");
    let traffic_from = r.now();
    r.advance(step);
    (traffic_from, r.run_until(step, max, done))
}

#[test]
fn a_slow_canary_is_rolled_back_after_its_5_minute_window_not_before() {
    // p95 3 s against a trigger "p95 > 2 s for 5 m"; plenty of traffic, so the window,
    // not the amount of data, decides when it fires.
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2", p50Ms: 600, p95Ms: 3000}"#, 200.0);
    r.manifest_judged(
        "gcr.io/demo/api:v2",
        "    warmup: 2m\n    rollback:\n      - {metric: p95Latency, above: 2s, for: 5m}\n",
    );
    let (from, steps) = first_traffic_then(&r, 30, 60, |res| res["phaseAfter"] == "RolledBack");
    let last = steps.last().unwrap();
    assert_eq!(phase(last), "RolledBack", "{steps:#?}");
    assert!(last["result"]["reason"].as_str().unwrap().contains("rollback trigger p95Latency failed"), "{last}");
    let elapsed = r.now() - from;
    // Warm-up (2 m) and then five whole published minutes: never sooner.
    assert!(elapsed >= 7 * 60, "rolled back {elapsed}s after the canary got traffic");
    assert!(elapsed <= 14 * 60, "took {elapsed}s");
    // Every pass before it saw a slow canary and held.
    for s in &steps[..steps.len() - 1] {
        assert_eq!(phase(s), "Progressing", "{s}");
    }
}

#[test]
fn a_canary_that_degrades_mid_stage_is_rolled_back() {
    let r = Rollout::start(
        r#"  - {image: "gcr.io/demo/api:v2", errorRate: 0.005, p50Ms: 80, p95Ms: 250, changes: [{after: 12m, errorRate: 0.10}]}"#,
        40.0,
    );
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    let (from, steps) = first_traffic_then(&r, 60, 60, |res| res["phaseAfter"] == "RolledBack");
    let last = steps.last().unwrap();
    assert_eq!(phase(last), "RolledBack", "{steps:#?}");
    let elapsed = r.now() - from;
    assert!(elapsed > 12 * 60, "rolled back {elapsed}s in, before it degraded");
    assert!(elapsed <= 30 * 60, "took {elapsed}s: caught within the first stage");
    let healthy = &steps[..steps.len() - 1];
    assert!(healthy.iter().all(|s| s["exit"] == 0 && phase(s) == "Progressing"), "{healthy:#?}");
}

#[test]
fn a_quiet_healthy_canary_is_promoted() {
    // 3 requests a second: the canary sees 9 a minute at 5%; it waits for data and is
    // promoted, never rolled back.
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2", errorRate: 0.005, p50Ms: 80, p95Ms: 250}"#, 3.0);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    let (_, steps) = first_traffic_then(&r, 300, 80, |res| res["phaseAfter"] == "Promoted");
    assert_eq!(phase(steps.last().unwrap()), "Promoted", "{steps:#?}");
    assert!(steps.iter().all(|s| s["exit"] == 0 && phase(s) != "RolledBack"), "{steps:#?}");
    assert!(steps.iter().any(|s| phase(s) == "Waiting"), "too little data at 5% should make it wait: {steps:#?}");
}

#[test]
fn on_gate_failure_pause_pauses_for_a_person() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2", errorRate: 0.08}"#, 40.0);
    r.manifest_judged(
        "gcr.io/demo/api:v2",
        "    warmup: 2m\n    promotion: {maxErrorRateIncrease: 0.5%}\n    onGateFailure: pause\n",
    );
    let (_, steps) = first_traffic_then(&r, 60, 40, |res| res["phaseAfter"] == "Paused");
    let last = steps.last().unwrap();
    assert_eq!(phase(last), "Paused", "{steps:#?}");
    assert!(last["result"]["reason"].as_str().unwrap().starts_with("GateFailed: errorRateIncrease failed"), "{last}");
    assert_eq!(last["exit"], 0);
    // Paused at its traffic: nothing moves until a person acts.
    let canary_weight = |v: &Value| v["result"]["trafficAfter"].as_object().unwrap().values().any(|p| p == 5);
    assert!(canary_weight(last), "{last}");
    r.advance(3600);
    let (exit, results) = r.reconcile();
    assert_eq!((exit, results[0]["phaseAfter"].as_str()), (0, Some("Paused")));
    let status = r.canary(&["status", "api", "-f", "manifests", "-o", "json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let gate = &status[0]["gates"][0];
    assert_eq!((gate["name"].as_str(), gate["result"].as_str()), (Some("errorRateIncrease"), Some("fail")), "{status}");
    assert!(gate["observed"].as_f64().unwrap() > 0.05, "{gate}");
}

#[test]
fn status_says_how_many_more_requests_an_inconclusive_gate_needs() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2"}"#, 2.0);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    first_traffic_then(&r, 60, 5, |_| false);
    let out = r.canary(&["status", "api", "-f", "manifests", "-o", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let min = &status[0]["gates"][0];
    assert_eq!((min["name"].as_str(), min["result"].as_str()), (Some("minRequests"), Some("inconclusive")));
    let (observed, needed) = (min["observed"].as_f64().unwrap(), min["requestsNeeded"].as_f64().unwrap());
    assert_eq!(observed + needed, 500.0, "{min}");
    for t in status[0]["triggers"].as_array().unwrap() {
        if t["result"] == "inconclusive" {
            assert!(t["requestsNeeded"].as_u64().unwrap() >= 1, "{t}");
        }
    }
}

/// The bug the simulation issue opened with, done as a person would: mid-stage at 5%, 100%
/// of traffic goes back to stable through Google's own Python client. canary neither
/// reverts it nor claims to hold 5%: it pauses with `ChangedOutsideCanary`, the hold stops
/// counting, and `canary resume` puts its split back and carries on.
#[test]
fn traffic_changed_by_hand_with_googles_client_pauses_and_resume_carries_on() {
    let r = Rollout::at_first_stage(20.0);
    let stable = annotation(&r, "canary/stable");
    let canary = annotation(&r, "canary/canary");
    r.advance(600);
    let out = std::process::Command::new(tool("python"))
        .arg(repo().join("tests/clients/update_traffic.py"))
        .arg(&r.emulator.base)
        .arg(api())
        .arg(format!("{stable}=100"))
        .output()
        .expect("python runs");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("{stable} 100 stable")) && said.contains(&format!("{canary} 0 canary")), "{said}");

    let patches = r.patches();
    let (exit, results) = r.reconcile();
    assert_eq!(exit, 0, "{results:?}");
    assert_eq!(phase_and_action(&results), ("Paused", Some("annotate")), "{results:?}");
    let reason = results[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("ChangedOutsideCanary: traffic is "), "{reason}");
    assert!(reason.contains(&format!("canary last set {stable} 95% (stable), {canary} 5% (canary) at ")), "{reason}");
    assert_eq!(annotation(&r, "canary/paused-for"), "changed-outside");
    assert_eq!(r.patches(), patches + 1, "one annotation write");
    let traffic = |r: &Rollout| r.service()["traffic"].clone();
    let by_hand = traffic(&r);
    // Past the 30-minute hold: still paused, the person's traffic untouched, nothing written.
    r.advance(3600);
    let (_, results) = r.reconcile();
    assert_eq!(phase_and_action(&results), ("Paused", Some("none")), "{results:?}");
    assert_eq!(traffic(&r), by_hand);
    assert_eq!(r.patches(), patches + 1);

    // Cloud Run has settled the person's split by now: status says what is served.
    let status: Value =
        serde_json::from_slice(&r.canary(&["status", "api", "-f", "manifests", "-o", "json"]).stdout).unwrap();
    assert_eq!(
        (status[0]["phase"].as_str(), status[0]["pausedFor"].as_str()),
        (Some("Paused"), Some("changed-outside")),
        "{status}"
    );
    assert_eq!(status[0]["weight"], 0, "{status}");

    run_ok(&r, &["resume", "api", "-f", "manifests"]);
    let (_, results) = r.reconcile();
    assert_eq!(phase_and_action(&results), ("Progressing", Some("setTraffic")), "{results:?}");
    assert_eq!(results[0]["trafficAfter"], json!({stable.clone(): 95, canary.clone(): 5}), "{results:?}");
    // 10 of the 30 minutes were held before the change; the paused hour did not count.
    r.advance(900);
    let (_, results) = r.reconcile();
    assert_eq!(phase_and_action(&results), ("Progressing", Some("none")), "{results:?}");
    r.advance(900);
    let (_, results) = r.reconcile();
    assert_eq!(results[0]["action"], "setTraffic", "{results:?}");
    assert_eq!(annotation(&r, "canary/stage"), "2");
}

/// The issue's scenario: a healthy canary at 5% of a 50 rps service, then a downstream
/// both revisions call fails and both return 12% errors for 20 minutes. canary takes
/// the canary's traffic away at once but keeps the image: Paused, SharedIncident; once
/// stable has been within every trigger for 15 minutes the stage starts again.
#[test]
fn a_shared_incident_pauses_without_rejecting_the_image_and_the_stage_starts_again() {
    let r = Rollout::at_first_stage(50.0);
    let canary = annotation(&r, "canary/canary");
    let stable = annotation(&r, "canary/stable");
    r.advance(600);
    let (_, results) = r.reconcile();
    assert_eq!(phase_and_action(&results), ("Progressing", Some("none")), "{results:?}");
    r.emulator.control(
        reqwest::Method::PUT,
        "conditions",
        &json!({"service": api(), "incidents": [{"lasts": "20m", "errorRate": 0.12}]}),
    );
    let steps = r.run_until(60, 15, |res| res["phaseAfter"] == "Paused");
    let last = &steps.last().unwrap()["result"];
    assert_eq!(
        (last["phaseAfter"].as_str(), last["action"].as_str()),
        (Some("Paused"), Some("setTraffic")),
        "{steps:#?}"
    );
    assert_eq!(steps.last().unwrap()["exit"], 0, "not a rollback: {steps:#?}");
    let reason = last["reason"].as_str().unwrap();
    assert!(reason.starts_with("SharedIncident: rollback trigger errorRate failed: observed "), "{reason}");
    assert!(reason.contains("stable fails it too"), "{reason}");
    assert_eq!(last["trafficAfter"], json!({stable.clone(): 100}), "{last}");
    assert_eq!(annotation(&r, "canary/paused-for"), "shared-incident");
    assert_eq!(annotation(&r, "canary/incidents"), "1");
    assert_eq!(annotation(&r, "canary/rejected"), "", "the image is not rejected");
    let status: Value =
        serde_json::from_slice(&r.canary(&["status", "api", "-f", "manifests", "-o", "json"]).stdout).unwrap();
    assert_eq!(status[0]["pausedFor"], "shared-incident", "{status}");
    // Within 20 minutes of the incident's end, plus recovery and publishing: stage 1 again.
    let steps = r.run_until(60, 45, |res| res["phaseAfter"] == "Progressing");
    let last = &steps.last().unwrap()["result"];
    assert_eq!(
        (last["phaseAfter"].as_str(), last["action"].as_str()),
        (Some("Progressing"), Some("setTraffic")),
        "{steps:#?}"
    );
    assert_eq!(last["trafficAfter"], json!({stable.clone(): 95, canary.clone(): 5}), "{last}");
    assert!(steps.len() >= 15, "stable needs 15 good minutes after the incident: {} passes", steps.len());
    assert_eq!(annotation(&r, "canary/stage"), "1");
}
