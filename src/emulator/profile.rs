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
        }
    }

    /// Checks values a client could get wrong, with a message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.image.trim().is_empty() {
            return Err("image: must not be empty".to_owned());
        }
        if !(100..=599).contains(&self.health_status) {
            return Err(format!("healthStatus: {} is not an HTTP status (100-599)", self.health_status));
        }
        if !self.ready_delay_seconds.is_finite() || self.ready_delay_seconds < 0.0 {
            return Err("readyDelaySeconds: must be a number of seconds, 0 or more".to_owned());
        }
        Ok(())
    }
}
