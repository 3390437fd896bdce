//! Image profiles: how a revision of a given image behaves — whether it becomes Ready,
//! how long that takes, and what its health endpoint answers. Set per image through the
//! control API (`PUT /emulator/v1/profiles`) or a scenario file.

use serde::{Deserialize, Serialize};

/// What a revision of `image` does. Unknown images get [`Profile::healthy`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub image: String,
    /// Whether revisions of this image ever become Ready.
    #[serde(default = "yes")]
    pub ready: bool,
    /// How long (simulated) a revision takes to start, on top of the service's settle delay.
    #[serde(default)]
    pub ready_delay_seconds: f64,
    /// What the app answers on its URLs while Ready (a broken image answers 503).
    #[serde(default = "ok_status")]
    pub health_status: u16,
    /// The Cloud Run condition reason when the revision fails to become Ready.
    #[serde(default = "default_fail_reason")]
    pub fail_reason: String,
    /// The Cloud Run condition message when the revision fails to become Ready.
    #[serde(default = "default_fail_message")]
    pub fail_message: String,
    /// Fraction of requests answered 5xx.
    #[serde(default)]
    pub error_rate: f64,
    /// Fraction of requests answered 4xx (the client's fault).
    #[serde(default)]
    pub client_error_rate: f64,
    /// Median latency in milliseconds (latencies are log-normal).
    #[serde(default = "default_p50")]
    pub p50_ms: f64,
    /// 95th-percentile latency in milliseconds.
    #[serde(default = "default_p95")]
    pub p95_ms: f64,
    /// Timed changes, relative to when a revision of this image first serves traffic:
    /// `[{"after": "20m", "errorRate": 0.2}]` degrades it 20 minutes in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ProfileChange>,
}

/// A timed change of behaviour; fields left out keep their value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileChange {
    /// How long after the revision first serves traffic (`20m`, `1h 30m`).
    pub(crate) after: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) health_status: Option<u16>,
}

/// How a revision behaves at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    pub error_rate: f64,
    pub client_error_rate: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub health_status: u16,
}

impl Behaviour {
    /// What an image with no profile does.
    pub(crate) const HEALTHY: Behaviour =
        Behaviour { error_rate: 0.0, client_error_rate: 0.0, p50_ms: 80.0, p95_ms: 250.0, health_status: 200 };
}

fn default_p50() -> f64 {
    80.0
}

fn default_p95() -> f64 {
    250.0
}

fn yes() -> bool {
    true
}

fn ok_status() -> u16 {
    200
}

fn default_fail_reason() -> String {
    "HEALTH_CHECK_CONTAINER_ERROR".to_owned()
}

fn default_fail_message() -> String {
    "The user-provided container failed to start and listen on the port defined provided by the PORT=8080 \
     environment variable within the allocated timeout. This can happen when the container port is misconfigured \
     or if the timeout is too short."
        .to_owned()
}

impl Profile {
    pub fn healthy(image: &str) -> Profile {
        Profile {
            image: image.to_owned(),
            ready: true,
            ready_delay_seconds: 0.0,
            health_status: 200,
            fail_reason: default_fail_reason(),
            fail_message: default_fail_message(),
            error_rate: 0.0,
            client_error_rate: 0.0,
            p50_ms: default_p50(),
            p95_ms: default_p95(),
            changes: Vec::new(),
        }
    }

    /// The behaviour `elapsed` after the revision first served (before it served at all,
    /// `None`): the base profile with every change that has come due applied in order.
    pub(crate) fn behaviour(&self, elapsed: Option<std::time::Duration>) -> Behaviour {
        let mut b = Behaviour {
            error_rate: self.error_rate,
            client_error_rate: self.client_error_rate,
            p50_ms: self.p50_ms,
            p95_ms: self.p95_ms,
            health_status: self.health_status,
        };
        let Some(elapsed) = elapsed else { return b };
        let mut due: Vec<(std::time::Duration, &ProfileChange)> =
            self.changes.iter().filter_map(|c| Some((humantime::parse_duration(&c.after).ok()?, c))).collect();
        due.sort_by_key(|(after, _)| *after);
        for (_, change) in due.into_iter().take_while(|(after, _)| *after <= elapsed) {
            b.error_rate = change.error_rate.unwrap_or(b.error_rate);
            b.client_error_rate = change.client_error_rate.unwrap_or(b.client_error_rate);
            b.p50_ms = change.p50_ms.unwrap_or(b.p50_ms);
            b.p95_ms = change.p95_ms.unwrap_or(b.p95_ms);
            b.health_status = change.health_status.unwrap_or(b.health_status);
        }
        b
    }

    /// Checks values a client could get wrong, with a message naming the field.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.image.trim().is_empty() {
            return Err("image: must not be empty".to_owned());
        }
        if !(100..=599).contains(&self.health_status) {
            return Err(format!("healthStatus: {} is not an HTTP status (100-599)", self.health_status));
        }
        if !self.ready_delay_seconds.is_finite() || self.ready_delay_seconds < 0.0 {
            return Err("readyDelaySeconds: must be a number of seconds, 0 or more".to_owned());
        }
        let rates = |what: &str, rate: f64, client: f64| {
            if !(0.0..=1.0).contains(&rate) || !(0.0..=1.0).contains(&client) || rate + client > 1.0 {
                return Err(format!(
                    "{what}errorRate and clientErrorRate must be fractions from 0 to 1 that add up to at most 1"
                ));
            }
            Ok(())
        };
        let latency = |what: &str, p50: f64, p95: f64| {
            if !(p50.is_finite() && p95.is_finite() && p50 > 0.0 && p95 > p50) {
                return Err(format!("{what}p50Ms and p95Ms must be positive with p95Ms > p50Ms"));
            }
            Ok(())
        };
        rates("", self.error_rate, self.client_error_rate)?;
        latency("", self.p50_ms, self.p95_ms)?;
        for (i, change) in self.changes.iter().enumerate() {
            let at = format!("changes[{i}].");
            if humantime::parse_duration(&change.after).is_err() {
                return Err(format!("{at}after: `{}` is not a duration like `20m`", change.after));
            }
            let b = self.behaviour(Some(humantime::parse_duration(&change.after).unwrap_or_default()));
            rates(&at, b.error_rate, b.client_error_rate)?;
            latency(&at, b.p50_ms, b.p95_ms)?;
        }
        Ok(())
    }
}
