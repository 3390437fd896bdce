//! What the apps answer: a request to a service's URL (or a tag's) goes to the revision
//! the settled traffic split picks, which answers as its image's profile says.

use super::*;

impl World {
    /// What `{uri}` of a service or `{tag uri}` answers: the revision the (settled) traffic
    /// split picks, answering as its image's profile says.
    pub fn route(&mut self, project: &str, location: &str, host: &str, path: &str, now: SystemTime) -> AppResponse {
        let (tag, service) = match host.split_once("---") {
            Some((tag, service)) => (Some(tag), service),
            None => (None, host),
        };
        let name = format!("projects/{project}/locations/{location}/services/{service}");
        self.settle(&name, now);
        let not_found = AppResponse { status: 404, body: "Page not found\n".to_owned(), revision: None };
        let Some(record) = self.services.get(&name) else { return not_found };
        let targets: Vec<(String, u64)> = record
            .status
            .traffic
            .iter()
            .filter(|t| tag.is_none_or(|tag| t.get("tag").and_then(Value::as_str) == Some(tag)))
            .filter_map(|t| {
                let revision = t.get("revision").and_then(Value::as_str)?.to_owned();
                let weight = if tag.is_some() { 1 } else { t.get("percent").and_then(Value::as_u64).unwrap_or(0) };
                Some((revision, weight))
            })
            .filter(|(_, w)| *w > 0)
            .collect();
        let total: u64 = targets.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return not_found;
        }
        // A deterministic weighted round robin: exact splits, no randomness to seed.
        self.route_counter = self.route_counter.wrapping_add(1);
        let mut pick = (self.route_counter.wrapping_mul(37)) % total;
        let mut chosen = &targets[0].0;
        for (revision, weight) in &targets {
            if pick < *weight {
                chosen = revision;
                break;
            }
            pick -= weight;
        }
        let full = format!("{name}/revisions/{chosen}");
        let Some(revision) = self.revisions.get(&full) else { return not_found };
        if !revision.ready(now) {
            return AppResponse {
                status: 503,
                body: "Service Unavailable\n".to_owned(),
                revision: Some(chosen.clone()),
            };
        }
        let chosen = chosen.clone();
        let minute = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() / 60 * 60;
        let behaviour = self.behaviour(revision, minute);
        // Health endpoints answer with the health status; anything else is a real request,
        // failing as often as the profile says.
        let status = if is_health_path(path) {
            behaviour.health_status
        } else {
            let draw = self.rng.unit();
            if draw < behaviour.error_rate {
                500
            } else if draw < behaviour.error_rate + behaviour.client_error_rate {
                404
            } else {
                behaviour.health_status
            }
        };
        AppResponse {
            status,
            body: format!("{{\"revision\":\"{chosen}\",\"status\":{status}}}\n"),
            revision: Some(chosen),
        }
    }
}

/// Paths an app's health checks use.
fn is_health_path(path: &str) -> bool {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    matches!(last, "health" | "healthz" | "ready" | "readyz" | "livez" | "ping" | "status")
}
