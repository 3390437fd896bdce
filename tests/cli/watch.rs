//! `canary watch` as a process against `canary emulator` on a stepped clock: file
//! events, the resync, signals, /metrics and notifications. Waiting is always polling
//! a condition with a timeout; the schedule is driven by stepping the emulator's clock.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{EmulatorProcess, Manifest, Scenario, eventually, service_path};

/// An emulator on a stepped clock with `services`, and a manifest folder.
struct World {
    emulator: EmulatorProcess,
    dir: tempfile::TempDir,
}

impl World {
    fn start(services: &[&str], rps: f64) -> World {
        World::start_at_scale(services, rps, 0.0)
    }

    /// `scale` simulated seconds a real second; 0 is stepped.
    fn start_at_scale(services: &[&str], rps: f64, scale: f64) -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut scenario = Scenario::new(5)
            .time_scale(scale)
            .profile(r#"{image: "gcr.io/demo/app:v1", errorRate: 0.005, p50Ms: 80, p95Ms: 250}"#)
            .profile(r#"{image: "gcr.io/demo/app:v2", errorRate: 0.005, p50Ms: 80, p95Ms: 250}"#);
        for s in services {
            scenario = scenario.service(s, "gcr.io/demo/app:v1", "", rps);
        }
        std::fs::create_dir(dir.path().join("manifests")).unwrap();
        // Writes settle at once, so a manifest change shows as a write with no clock step.
        let emulator = scenario.start(dir.path(), &["--settle-seconds", "0"]);
        World { emulator, dir }
    }

    fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    fn manifest_text(name: &str, image: &str, extra: &str) -> String {
        let analysis = format!(
            "    warmup: 1m\n    maxWait: 2h\n    promotion: {{maxErrorRateIncrease: 1%, maxP95Increase: 20%, minRequests: 100}}\n    rollback:\n      - {{metric: errorRate, above: 5%}}\n{extra}"
        );
        Manifest::new(name, image).stages(&[(5, "10m"), (50, "10m"), (100, "5m")]).analysis(&analysis).text()
    }

    fn write(&self, file: &str, name: &str, image: &str, extra: &str) {
        std::fs::write(self.manifests().join(file), World::manifest_text(name, image, extra)).unwrap();
    }

    fn service(&self, name: &str) -> Value {
        self.emulator.get(&format!("/v2/{}", service_path(name)))
    }

    fn annotation(&self, name: &str, key: &str) -> Option<String> {
        self.service(name)["annotations"][key].as_str().map(str::to_owned)
    }

    fn image(&self, name: &str) -> String {
        self.service(name)["template"]["containers"][0]["image"].as_str().unwrap_or_default().to_owned()
    }

    fn requests(&self, method: &str, path_contains: &str) -> usize {
        self.emulator.count(method, path_contains)
    }

    /// `services.list` calls so far.
    fn lists(&self) -> usize {
        self.emulator.requests_where(|r| r["path"].as_str().unwrap_or_default().ends_with("/services")).len()
    }

    fn advance(&self, seconds: u64) {
        self.emulator.advance(seconds);
    }

    fn fault(&self, fault: Value) {
        self.emulator.fault(&fault);
    }

    fn watch(&self, args: &[&str], env: &[(&str, &str)]) -> WatchProcess {
        WatchProcess::start(self, args, env)
    }

    /// Steps the clock a minute at a time, each step once the watch has decided on the
    /// last, until `done` or `max` steps.
    /// Returns the longest real time a step took to be acted on.
    fn drive(&self, watch: &WatchProcess, max: usize, done: impl Fn(&World) -> bool) -> Duration {
        let mut slowest = Duration::ZERO;
        for _ in 0..max {
            if done(self) {
                return slowest;
            }
            let start = Instant::now();
            self.step(watch, 60);
            slowest = slowest.max(start.elapsed());
        }
        assert!(done(self), "not done after {max} steps; watch log:\n{}", watch.log().join("\n"));
        slowest
    }

    /// Advances the clock and waits for the watch to decide on something due by then.
    fn step(&self, watch: &WatchProcess, seconds: u64) {
        let before = watch.decisions();
        self.advance(seconds);
        eventually("a decision after a clock step", Duration::from_secs(10), || {
            (watch.decisions() > before).then_some(())
        });
    }
}

/// `canary watch --log-format json --listen 127.0.0.1:0 …`, its stderr collected.
struct WatchProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    base: String,
}

impl WatchProcess {
    fn start(world: &World, args: &[&str], env: &[(&str, &str)]) -> WatchProcess {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("canary"))
            .current_dir(world.dir.path())
            .env("CLOUD_RUN_EMULATOR_HOST", world.emulator.base.trim_start_matches("http://"))
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .args(["watch", "--log-format", "json", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("canary watch starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let base = first.trim().strip_prefix("canary watch listening on ").unwrap_or_else(|| {
            let _ = child.kill();
            panic!("unexpected first line: {first:?}; log: {:?}", lines.lock().unwrap())
        });
        let watch = WatchProcess { child, lines, base: base.to_owned() };
        eventually("the first pass", Duration::from_secs(20), || watch.get("/readyz").0.eq(&200).then_some(()));
        watch
    }

    fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn events(&self) -> Vec<Value> {
        self.log().iter().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect()
    }

    fn wait_log(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(what, Duration::from_secs(10), || self.events().into_iter().find(|e| check(e)))
    }

    fn get(&self, path: &str) -> (u16, String) {
        match reqwest::blocking::get(format!("{}{path}", self.base)) {
            Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    /// Rollout decisions carried out so far (the decision histogram's count).
    fn decisions(&self) -> u64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix("canary_decision_duration_seconds_count "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end; its exit code and how long that took.
    fn wait_exit(&mut self, timeout: Duration) -> (i32, Duration) {
        let start = Instant::now();
        let status = eventually("the watch to exit", timeout, || self.child.try_wait().unwrap());
        (status.code().expect("exited, not killed"), start.elapsed())
    }
}

impl Drop for WatchProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is(event: &Value, rollout: &str, message: &str) -> bool {
    event["rollout"] == rollout && event["message"].as_str().unwrap_or_default().contains(message)
}

#[test]
fn created_modified_atomically_renamed_and_deleted_manifests_are_each_picked_up() {
    let world = World::start(&["api", "web"], 5.0);
    // `web` runs what it already runs: a rollout with nothing to do, passed every 5 min.
    world.write("web.yaml", "web", "gcr.io/demo/app:v1", "");
    let watch = world.watch(&["manifests"], &[]);
    // Created.
    world.write("api.yaml", "api", "gcr.io/demo/app:v2", "");
    eventually("the deploy of v2", Duration::from_secs(10), || {
        (world.image("api") == "gcr.io/demo/app:v2").then_some(())
    });
    assert_eq!(world.annotation("api", "canary/owner").as_deref(), Some("api"));
    let deploy = watch.wait_log("the decision logged", |e| e["rollout"] == "api" && e["action"] == "Deploy");
    assert_eq!(deploy["severity"], "INFO");
    assert_eq!(deploy["service"], "api");
    // Modified in place.
    world.write("api.yaml", "api", "gcr.io/demo/app:v3", "");
    eventually("the deploy of v3", Duration::from_secs(10), || {
        (world.image("api") == "gcr.io/demo/app:v3").then_some(())
    });
    // An editor's atomic save: a temporary file renamed over the manifest.
    let temp = world.manifests().join(".api.yaml.swp");
    std::fs::write(&temp, World::manifest_text("api", "gcr.io/demo/app:v4", "")).unwrap();
    std::fs::rename(&temp, world.manifests().join("api.yaml")).unwrap();
    eventually("the deploy of v4", Duration::from_secs(10), || {
        (world.image("api") == "gcr.io/demo/app:v4").then_some(())
    });
    // Deleted: management stops, traffic stays as it is.
    let traffic = world.service("api")["traffic"].clone();
    let patches = world.requests("PATCH", "/services/api");
    std::fs::remove_file(world.manifests().join("api.yaml")).unwrap();
    let removed = watch.wait_log("the removal logged", |e| is(e, "api", "no longer managed"));
    assert_eq!(removed["severity"], "INFO");
    // Past when `api` was due again (10 s) and `web` too (5 min): `web`'s pass shows the
    // watch got there, and `api` was not passed.
    world.step(&watch, 600);
    assert_eq!(world.requests("PATCH", "/services/api"), patches, "no write after the manifest was deleted");
    assert_eq!(world.service("api")["traffic"], traffic);
    assert!(!watch.get("/metrics").1.contains(r#"rollout="api""#), "its series are gone");
    // Each decision is logged once: three deploys, whatever the passes in between.
    let deploys = watch.events().iter().filter(|e| e["rollout"] == "api" && e["action"] == "Deploy").count();
    assert_eq!(deploys, 3, "{:#?}", watch.log());
}

#[test]
fn many_manifests_written_at_once_are_all_picked_up_in_few_passes() {
    let names: Vec<String> = (0..25).map(|i| format!("svc-{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let world = World::start(&refs, 1.0);
    let watch = world.watch(&["manifests"], &[]);
    let lists_before = world.lists();
    // Like `git checkout`: many files replaced in a burst.
    for name in &names {
        world.write(&format!("{name}.yaml"), name, "gcr.io/demo/app:v2", "");
    }
    eventually("every service deployed", Duration::from_secs(15), || {
        names.iter().all(|n| world.image(n) == "gcr.io/demo/app:v2").then_some(())
    });
    let lists = world.lists() - lists_before;
    assert!(lists <= 5, "{lists} list calls for one burst: passes should share them");
    drop(watch);
}

#[test]
fn a_missed_file_event_is_recovered_by_the_resync() {
    let world = World::start(&["api"], 5.0);
    let watch = world.watch(&["--no-file-events", "--resync", "1s", "manifests"], &[]);
    world.write("api.yaml", "api", "gcr.io/demo/app:v2", "");
    eventually("the resync to deploy it", Duration::from_secs(10), || {
        (world.image("api") == "gcr.io/demo/app:v2").then_some(())
    });
    watch.wait_log("the change logged", |e| e["rollout"] == "api" && e["action"] == "Deploy");
}

#[test]
fn sigterm_during_a_write_lets_it_finish_and_a_restarted_watch_carries_on() {
    let world = World::start(&["api"], 5.0);
    // The deploy's PATCH takes a second, so the signal comes while it is under way.
    world.fault(
        json!({"kind": "slow", "method": "PATCH", "pathContains": "/services/api", "delayMs": 1000, "times": 1}),
    );
    let mut watch = world.watch(&["manifests"], &[]);
    world.write("api.yaml", "api", "gcr.io/demo/app:v2", "");
    let lists = world.lists();
    eventually("the pass to start", Duration::from_secs(10), || (world.lists() > lists).then_some(()));
    watch.signal("TERM");
    let (code, took) = watch.wait_exit(Duration::from_secs(5));
    assert_eq!(code, 0, "{:#?}", watch.log());
    let stopping =
        watch.wait_log("the stop logged", |e| e["message"].as_str().unwrap_or_default().starts_with("stopping"));
    assert_eq!(stopping["in_flight"], 1, "the signal came during the write");
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
    // The write under way finished, whole: template, traffic and state in one PATCH.
    assert_eq!(world.image("api"), "gcr.io/demo/app:v2", "{:#?}", watch.log());
    assert_eq!(world.annotation("api", "canary/phase").as_deref(), Some("Deploying"));
    assert_eq!(world.annotation("api", "canary/image").as_deref(), Some("gcr.io/demo/app:v2"));
    let canary = world.annotation("api", "canary/canary").unwrap();
    let traffic = world.service("api")["traffic"].to_string();
    assert!(traffic.contains(&canary), "{traffic}");
    drop(watch);
    // A new watch picks the rollout up from the service and takes it on.
    let again = world.watch(&["manifests"], &[]);
    world.drive(&again, 10, |w| w.annotation("api", "canary/phase").as_deref() == Some("Progressing"));
    assert_eq!(world.annotation("api", "canary/canary").unwrap(), canary, "the same canary, not a second deploy");
    assert_eq!(world.requests("PATCH", "/services/api"), 2, "deploy, then 5%");
}

#[test]
fn a_second_signal_exits_at_once() {
    let world = World::start(&["api"], 5.0);
    world.fault(
        json!({"kind": "slow", "method": "PATCH", "pathContains": "/services/api", "delayMs": 20000, "times": 1}),
    );
    let mut watch = world.watch(&["manifests"], &[]);
    world.write("api.yaml", "api", "gcr.io/demo/app:v2", "");
    let lists = world.lists();
    eventually("the pass to start", Duration::from_secs(10), || (world.lists() > lists).then_some(()));
    watch.signal("INT");
    watch.wait_log("the stop logged", |e| e["message"].as_str().unwrap_or_default().starts_with("stopping"));
    watch.signal("INT");
    let (code, took) = watch.wait_exit(Duration::from_secs(5));
    assert_eq!(code, 0);
    assert!(took < Duration::from_millis(800), "the second signal took {took:?}");
}

#[test]
fn no_usable_manifest_path_exits_2() {
    let world = World::start(&["api"], 1.0);
    let out = Command::new(assert_cmd::cargo::cargo_bin("canary"))
        .current_dir(world.dir.path())
        .env("CLOUD_RUN_EMULATOR_HOST", world.emulator.base.trim_start_matches("http://"))
        .args(["watch", "no-such-folder"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: no manifests to watch: no-such-folder not found\n");
}

/// Where `promtool` is: `$PROMTOOL`, or on the PATH.
fn promtool() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PROMTOOL") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join("promtool")).find(|p| p.exists())
}

#[test]
fn metrics_health_and_readiness_are_served_and_pass_promtool() {
    let world = World::start(&["api"], 5.0);
    world.write("api.yaml", "api", "gcr.io/demo/app:v2", "");
    let watch = world.watch(&["manifests"], &[]);
    assert_eq!(watch.get("/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(watch.get("/readyz"), (200, "ready\n".to_owned()));
    let text = watch.get("/metrics").1;
    for expected in [
        "canary_passes_total 1",
        r#"canary_api_calls_total{method="run.services.list",status="200"} 1"#,
        r#"canary_api_calls_total{method="run.services.patch",status="200"} 1"#,
        r#"canary_rollout_phase{rollout="api",phase="Deploying"} 1"#,
        r#"canary_rollout_phase{rollout="api",phase="Promoted"} 0"#,
        r#"canary_rollout_canary_weight_percent{rollout="api"} 0"#,
        "canary_decision_duration_seconds_count 1",
        "canary_rollouts 1",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
    // An invalid edit counts as a manifest error.
    std::fs::write(world.manifests().join("broken.yaml"), "kind: [").unwrap();
    eventually("the manifest error counted", Duration::from_secs(10), || {
        watch.get("/metrics").1.contains(r#"canary_errors_total{kind="manifest"} 1"#).then_some(())
    });
    let text = watch.get("/metrics").1;
    match promtool() {
        Some(promtool) => {
            let mut child = Command::new(&promtool)
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{} runs: {e}", promtool.display()));
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n{text}");
        }
        // CI installs it (.ci/run); elsewhere it is optional.
        None if std::env::var_os("CI").is_some() => {
            panic!("promtool is missing: .ci/run installs Debian's `prometheus`")
        }
        None => eprintln!("promtool not found (install Debian's `prometheus`, or set PROMTOOL): skipped that check"),
    }
}

/// A local webhook receiver: what it was sent, answering `status` every time.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    /// Answers `status` after `delay`.
    fn start(status: u16, delay: Duration) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = got.clone();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    tokio::time::sleep(delay).await;
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        Receiver { url, got, _runtime: runtime }
    }

    fn got(&self) -> Vec<Value> {
        self.got.lock().unwrap().clone()
    }
}

#[test]
fn notifications_arrive_in_order_once_each_and_a_failing_receiver_slows_nothing() {
    let world = World::start(&["api"], 20.0);
    let (slack, hook) = (Receiver::start(200, Duration::ZERO), Receiver::start(200, Duration::ZERO));
    // Takes 3 s to refuse each attempt: a pass waiting on it would show.
    let broken = Receiver::start(500, Duration::from_secs(3));
    let env = [("SLACK_URL", slack.url.as_str()), ("HOOK_URL", hook.url.as_str()), ("BROKEN_URL", broken.url.as_str())];
    let notify = "  notify:\n    - {slack: {urlFromEnv: SLACK_URL}}\n    - {webhook: {urlFromEnv: HOOK_URL}}\n    - {webhook: {urlFromEnv: BROKEN_URL}}\n";
    world.write("api.yaml", "api", "gcr.io/demo/app:v2", notify);
    let watch = world.watch(&["manifests"], &env);
    let slowest = world.drive(&watch, 60, |w| w.annotation("api", "canary/phase").as_deref() == Some("Promoted"));
    assert!(slowest < Duration::from_secs(2), "a clock step took {slowest:?} to be acted on");
    let expected = 5; // deploying, stage 1, stage 2, stage 3, promoted
    eventually("every notification", Duration::from_secs(10), || (hook.got().len() >= expected).then_some(()));
    let got = hook.got();
    let seen: Vec<(String, u64)> =
        got.iter().map(|e| (e["phase"].as_str().unwrap().to_owned(), e["stage"].as_u64().unwrap())).collect();
    assert_eq!(
        seen,
        [
            ("Deploying".to_owned(), 0),
            ("Progressing".to_owned(), 1),
            ("Progressing".to_owned(), 2),
            ("Progressing".to_owned(), 3),
            ("Promoted".to_owned(), 3)
        ],
        "{got:#?}"
    );
    assert_eq!(got[2]["event"], "stageAdvanced");
    assert_eq!(got[2]["weight"], 50);
    assert!(got[2]["checks"].as_array().is_some_and(|c| !c.is_empty()), "the gates that let it advance: {got:#?}");
    assert!(got.iter().all(|e| e["rollout"] == "api" && e["service"] == "api"));
    // Slack got the same, as readable text.
    eventually("every Slack message", Duration::from_secs(10), || (slack.got().len() >= expected).then_some(()));
    let texts: Vec<String> = slack.got().iter().map(|m| m["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(texts.len(), expected, "{texts:#?}");
    assert!(texts[2].contains("*api*") && texts[2].contains("advanced to stage 2 of 3 (50% of traffic)"), "{texts:#?}");
    assert!(texts[4].contains("promoted"), "{texts:#?}");
    // The broken receiver was tried (and retried) without holding up the rollout.
    assert!(!broken.got().is_empty());
    // No URL, not even the broken one, in the log.
    let log = watch.log().join("\n");
    assert!(!log.contains(&broken.url) && !log.contains(&hook.url) && !log.contains(&slack.url), "{log}");
    drop(watch);
    // A restarted watch does not announce what was already announced.
    let again = world.watch(&["manifests"], &env);
    world.step(&again, 600);
    assert_eq!(hook.got().len(), expected, "{:#?}", hook.got());
}

#[test]
fn a_slow_rollout_does_not_delay_the_others() {
    let world = World::start(&["fast", "slow"], 5.0);
    // `slow`'s deploy takes 6 s to write; `fast`, in the same pass, must not wait for it.
    world.fault(
        json!({"kind": "slow", "method": "PATCH", "pathContains": "/services/slow", "delayMs": 6000, "times": 1}),
    );
    let watch = world.watch(&["manifests"], &[]);
    world.write("slow.yaml", "slow", "gcr.io/demo/app:v2", "");
    world.write("fast.yaml", "fast", "gcr.io/demo/app:v2", "");
    let start = Instant::now();
    eventually("fast's deploy", Duration::from_secs(3), || (world.image("fast") == "gcr.io/demo/app:v2").then_some(()));
    // And its next step, on its own schedule, while `slow` is still being written.
    world.step(&watch, 60);
    eventually("fast at its first stage", Duration::from_secs(3), || {
        (world.annotation("fast", "canary/phase").as_deref() == Some("Progressing")).then_some(())
    });
    assert_eq!(world.image("slow"), "gcr.io/demo/app:v1", "slow's write is still under way");
    assert!(start.elapsed() < Duration::from_secs(5), "fast took {:?}", start.elapsed());
    eventually("slow's deploy", Duration::from_secs(10), || {
        (world.image("slow") == "gcr.io/demo/app:v2").then_some(())
    });
}

#[test]
fn on_an_accelerated_emulator_clock_holds_take_their_simulated_time_in_real_seconds() {
    // 600×: the 25 simulated minutes of holds are 2.5 real seconds.
    let world = World::start_at_scale(&["api"], 20.0, 600.0);
    world.write("api.yaml", "api", "gcr.io/demo/app:v2", "");
    let start = Instant::now();
    let _watch = world.watch(&["manifests"], &[]);
    eventually("the promotion", Duration::from_secs(20), || {
        (world.annotation("api", "canary/phase").as_deref() == Some("Promoted")).then_some(())
    });
    let took = start.elapsed();
    let history: Vec<Value> = serde_json::from_str(&world.annotation("api", "canary/history").unwrap()).unwrap();
    let at = |phase: &str| {
        let t = history.iter().find(|t| t["phase"] == phase).unwrap()["at"].as_str().unwrap().to_owned();
        humantime::parse_rfc3339(&t).unwrap()
    };
    let simulated = at("Promoted").duration_since(at("Progressing")).unwrap();
    assert!(simulated >= Duration::from_secs(25 * 60), "holds were cut short: {simulated:?}");
    assert!(simulated < Duration::from_secs(45 * 60), "the schedule lagged: {simulated:?}");
    assert!(took < Duration::from_secs(15), "took {took:?} of real time");
}
