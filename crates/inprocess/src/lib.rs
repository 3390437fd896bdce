//! The emulator as canary's platform, in-process: a pass runs against the emulator's
//! world directly, with no sockets — for simulations and tests that need thousands of
//! deterministic rollouts.

use std::ops::Deref;
use std::sync::Arc;
use std::time::SystemTime;

use canary_core::analysis::wire::TimeSeries;
use canary_core::platform::{Clock, CloudRun, Monitoring, Probe, ProbeAnswer, Prober};
use canary_core::transport::ApiFailure;
use canary_emulator::Emulator;
use canary_emulator::api_error::ApiError;
use canary_emulator::monitoring::{Query, list};
use serde_json::Value;
use serde_json::value::RawValue;

/// An emulator seen as canary's platform: Cloud Run, Monitoring, the clock and the
/// smoke-test prober all answer from its world, in this process.
#[derive(Debug, Clone)]
pub struct InProcess(pub Arc<Emulator>);

impl InProcess {
    pub fn new(emulator: Emulator) -> InProcess {
        InProcess(Arc::new(emulator))
    }
}

impl Deref for InProcess {
    type Target = Emulator;

    fn deref(&self) -> &Emulator {
        &self.0
    }
}

fn failure(method: &str, path: &str, e: ApiError) -> ApiFailure {
    ApiFailure {
        method: method.to_owned(),
        path: path.to_owned(),
        status: Some(e.http),
        code: e.status.to_owned(),
        message: e.message,
        retry_after: e.retry_after.map(std::time::Duration::from_secs),
    }
}

impl CloudRun for InProcess {
    async fn list_services(&self, project: &str, region: &str) -> Result<Vec<Box<RawValue>>, ApiFailure> {
        let parent = format!("projects/{project}/locations/{region}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut page = self
                .with_world(|w, now| w.list_services(&parent, Some(1000), token.as_deref(), false, now))
                .map_err(|e| failure("GET", &parent, e))?;
            if let Value::Array(services) = page["services"].take() {
                // As Cloud Run would send them: text, not a tree.
                out.extend(services.iter().filter_map(|s| serde_json::value::to_raw_value(s).ok()));
            }
            match page.get("nextPageToken").and_then(Value::as_str) {
                Some(next) => token = Some(next.to_owned()),
                None => return Ok(out),
            }
        }
    }

    async fn get_service(&self, name: &str) -> Result<Option<Value>, ApiFailure> {
        match self.with_world(|w, now| w.get_service(name, now)) {
            Ok(service) => Ok(Some(service)),
            Err(e) if e.http == 404 => Ok(None),
            Err(e) => Err(failure("GET", name, e)),
        }
    }

    async fn patch_service(&self, service: &Value) -> Result<(), ApiFailure> {
        let name = service.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        self.with_world(|w, now| w.update_service(&name, service.clone(), None, false, false, now))
            .map(|_| ())
            .map_err(|e| failure("PATCH", &name, e))
    }
}

impl Monitoring for InProcess {
    async fn time_series_each(
        &self,
        project: &str,
        query: &[(String, String)],
        each: &mut (dyn FnMut(TimeSeries) + Send),
    ) -> Result<(), ApiFailure> {
        let path = format!("projects/{project}/timeSeries");
        let mut params = query.to_vec();
        params.push(("pageSize".into(), "100000".into()));
        let parsed = Query::parse(&params).map_err(|e| failure("GET", &path, e))?;
        let answer = self.with_world(|w, now| list(w, project, &parsed, now)).map_err(|e| failure("GET", &path, e))?;
        let mut answer = answer;
        let series: Option<Vec<TimeSeries>> =
            serde_json::from_value(answer["timeSeries"].take()).map_err(|e| ApiFailure {
                method: "GET".to_owned(),
                path: path.clone(),
                status: None,
                code: "INTERNAL".to_owned(),
                message: format!("an answer canary cannot read: {e}"),
                retry_after: None,
            })?;
        series.unwrap_or_default().into_iter().for_each(each);
        Ok(())
    }
}

impl Clock for InProcess {
    async fn now(&self) -> Result<SystemTime, ApiFailure> {
        Ok(self.0.now())
    }
}

impl Prober for InProcess {
    /// Routes `…/run/PROJECT/REGION/HOST/PATH` to the app the world simulates.
    async fn probe(&self, probe: &Probe) -> ProbeAnswer {
        let Some((_, rest)) = probe.url.split_once("/run/") else {
            return ProbeAnswer::NoAnswer(format!("{} is not an emulator URL", probe.url));
        };
        let mut parts = rest.splitn(4, '/');
        let (Some(project), Some(location), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
            return ProbeAnswer::NoAnswer(format!("{} is not an emulator URL", probe.url));
        };
        let path = format!("/{}", parts.next().unwrap_or_default());
        let reply = self.with_world(|w, now| Ok::<_, ApiError>(w.route(project, location, host, &path, now)));
        match reply {
            Ok(reply) => ProbeAnswer::Status(reply.status, reply.body.trim().to_owned()),
            Err(e) => ProbeAnswer::NoAnswer(e.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use canary_core::reconcile::{Mode, pass};
    use canary_core::state::Phase;
    use canary_emulator::clock::VirtualClock;
    use canary_emulator::traffic::Load;
    use canary_emulator::world::{ServiceName, WorldConfig};

    /// A pass is a step function: called in-process against the world, it walks a healthy
    /// canary through every stage to promotion.
    #[tokio::test]
    async fn a_pass_runs_in_process_against_the_emulator_world() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let emulator = InProcess::new(Emulator::new(
            WorldConfig { seed: 4, ..WorldConfig::default() },
            VirtualClock::new(start, 0.0),
        ));
        let name = ServiceName::parse("projects/your-project-id/locations/us-central1/services/api").unwrap();
        emulator
            .with_world(|w, now| {
                w.seed_service(&name, json!({"template": {"containers": [{"image": "gcr.io/p/api:v1"}]}}), now)
            })
            .unwrap();
        emulator.set_load(&name.full(), Load { rps: 20.0, daily: false }).unwrap();
        let text = r#"
apiVersion: canary/v1alpha1
kind: CanaryRollout
metadata: {name: api}
spec:
  project: your-project-id
  region: us-central1
  service: api
  adopt: true
  template: {image: "gcr.io/p/api:v2"}
  smokeTests: [{path: /health}]
  stages: [{weight: 10, hold: 20m}, {weight: 100, hold: 10m}]
  analysis:
    promotion: {minRequests: 200, maxErrorRateIncrease: 1%}
    rollback: [{metric: errorRate, above: 5%}]
"#;
        let docs = canary_core::manifest::document::parse(text).unwrap();
        let rollout = canary_core::manifest::load::validate(&docs[0].value).unwrap();
        let mut phases = Vec::new();
        for _ in 0..30 {
            let outcome = pass(&emulator, std::slice::from_ref(&rollout), Mode::Apply).await.remove(0);
            assert!(outcome.error.is_none(), "{:?}", outcome.error);
            let plan = outcome.plan.unwrap();
            phases.push(plan.phase_after);
            if plan.phase_after == Phase::Promoted {
                break;
            }
            emulator.advance(Duration::from_secs(300));
        }
        assert_eq!(phases.last(), Some(&Phase::Promoted), "{phases:?}");
        assert!(phases.contains(&Phase::Progressing));
    }

    /// A pass moves each listed service to the rollout that names it rather than copying
    /// it; two rollouts naming one service must still both see it (not "missing").
    #[tokio::test]
    async fn two_rollouts_naming_one_service_both_see_it() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let emulator = InProcess::new(Emulator::new(
            WorldConfig { seed: 5, ..WorldConfig::default() },
            VirtualClock::new(start, 0.0),
        ));
        let name = ServiceName::parse("projects/demo-project/locations/us-central1/services/api").unwrap();
        emulator
            .with_world(|w, now| {
                w.seed_service(&name, json!({"template": {"containers": [{"image": "gcr.io/p/api:v1"}]}}), now)
            })
            .unwrap();
        let rollout = |id: &str| {
            let text = format!(
                "apiVersion: canary/v1alpha1\nkind: CanaryRollout\nmetadata: {{name: {id}}}\nspec:\n  project: demo-project\n  region: us-central1\n  service: api\n  adopt: true\n  template: {{image: \"gcr.io/p/api:v2\"}}\n  stages: [{{weight: 10, hold: 20m}}, {{weight: 100}}]\n"
            );
            canary_core::manifest::load::validate(&canary_core::manifest::document::parse(&text).unwrap()[0].value)
                .unwrap()
        };
        let outcomes = pass(&emulator, &[rollout("first"), rollout("second")], Mode::Plan).await;
        assert_eq!(outcomes.len(), 2);
        for outcome in &outcomes {
            let service = outcome.service.as_ref().unwrap_or_else(|| panic!("{} saw no service", outcome.name));
            assert_eq!(service.name, name.full());
        }
    }
}
