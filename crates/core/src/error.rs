//! Errors as data. Each says what went wrong, what to do about it, and which exit code
//! it means; `cli` renders them in one place.

use crate::manifest::source::Unreadable;
use crate::transport::ApiFailure;

/// canary's exit codes, the same for every command (README, "What a rollout goes through").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Ok = 0,
    /// A runtime problem: API, auth, I/O.
    Runtime = 1,
    /// Invalid input: a manifest, a flag.
    Invalid = 2,
    /// A rollout rolled back or failed in this pass.
    RolledBack = 3,
}

impl Exit {
    /// When several apply, the most telling wins: 3, then 2, then 1.
    #[must_use]
    pub fn and(self, other: Exit) -> Exit {
        self.max(other)
    }

    pub fn code(self) -> i32 {
        self as i32
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}", .0.path)]
    Unreadable(Unreadable),
    #[error("{path} is out of date with this build's manifest types")]
    StaleSchema { path: String },
    #[error("{0}")]
    Runtime(String),
    #[error("{0}")]
    Usage(String),
    /// A command named a rollout that no valid manifest under the folder names.
    #[error("no valid manifest named `{name}` under {manifests}")]
    UnknownRollout { name: String, manifests: String },
    /// No way to reach Google's APIs: Application Default Credentials are missing.
    #[error("{0}")]
    Credentials(String),
    /// A manual command was refused (by its sense now, or by Cloud Run). Boxed, as
    /// the API failure inside is large and errors travel by value.
    #[error("{0}")]
    Refused(Box<crate::operate::Refusal>),
    /// No report was written.
    #[error("{0}")]
    Report(Box<crate::report::Failure>),
    /// A pass could not do its work for one rollout (the others went on).
    #[error("{rollout}: {error}")]
    Pass { rollout: String, error: Box<crate::reconcile::PassError> },
    /// A pass cannot act on a rollout as it stands (`NotOwned`, `ServiceNotFound`, …).
    #[error("{rollout}: {reason}")]
    Blocked { rollout: String, reason: String },
}

impl From<crate::operate::Refusal> for Error {
    fn from(refusal: crate::operate::Refusal) -> Error {
        Error::Refused(Box::new(refusal))
    }
}

impl From<crate::report::Failure> for Error {
    fn from(failure: crate::report::Failure) -> Error {
        Error::Report(Box::new(failure))
    }
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) | Error::UnknownRollout { .. } => Exit::Invalid,
            Error::Refused(refusal) if refusal.is_invalid() => Exit::Invalid,
            Error::Report(failure) if matches!(**failure, crate::report::Failure::NotStarted(_)) => Exit::Invalid,
            Error::Unreadable(_)
            | Error::StaleSchema { .. }
            | Error::Runtime(_)
            | Error::Credentials(_)
            | Error::Refused(_)
            | Error::Report(_)
            | Error::Pass { .. }
            | Error::Blocked { .. } => Exit::Runtime,
        }
    }

    /// The underlying cause, in a person's words.
    pub fn cause(&self) -> Option<String> {
        match self {
            Error::Unreadable(u) => Some(u.reason.clone()),
            Error::StaleSchema { .. }
            | Error::Runtime(_)
            | Error::Usage(_)
            | Error::UnknownRollout { .. }
            | Error::Credentials(_)
            | Error::Refused(_)
            | Error::Report(_)
            | Error::Pass { .. }
            | Error::Blocked { .. } => None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Unreadable(u) if u.reason.contains("no such file") => Some(
                "name the files or folders that hold your manifests, like `canary validate deploy/manifests/`"
                    .to_owned(),
            ),
            Error::Credentials(_) => Some(
                "set GOOGLE_APPLICATION_CREDENTIALS to a key or workload-identity file, or run `gcloud auth application-default login`; to use the emulator instead, set CLOUD_RUN_EMULATOR_HOST=host:port".to_owned(),
            ),
            Error::UnknownRollout { manifests, .. } => Some(format!(
                "a rollout is named by its manifest's metadata.name; `canary validate {manifests}` shows the \
                 manifests there and what is wrong with any that do not validate; `-f PATH` points at another folder"
            )),
            Error::Refused(refusal) => refusal.failure().and_then(ApiFailure::hint).map(str::to_owned),
            Error::Report(failure) => failure.failure().and_then(ApiFailure::hint).map(str::to_owned),
            Error::Pass { error, .. } => error.failure().and_then(ApiFailure::hint).map(str::to_owned),
            Error::Unreadable(_) | Error::Runtime(_) | Error::Usage(_) | Error::Blocked { .. } => None,
            Error::StaleSchema { .. } => Some(
                "run `make schema` (or `canary schema > schemas/canaryrollout.schema.json`) and commit the result"
                    .to_owned(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operate::Refusal;
    use crate::reconcile::PassError;

    fn failure(status: u16, code: &str) -> ApiFailure {
        ApiFailure {
            method: "PATCH".into(),
            path: "/v2/projects/p/locations/us-central1/services/api".into(),
            status: Some(status),
            code: code.into(),
            message: "no".into(),
            retry_after: None,
        }
    }

    /// A refused call says what to do wherever it surfaces: a pass, a command, a report.
    #[test]
    fn a_refused_call_carries_its_advice_to_every_command() {
        let denied = failure(403, "PERMISSION_DENIED");
        let pass = Error::Pass { rollout: "api".into(), error: Box::new(PassError::Write(denied.clone())) };
        assert!(pass.to_string().starts_with("api: the write failed: PATCH /v2/"), "{pass}");
        assert!(pass.hint().is_some_and(|h| h.contains("iam.serviceAccounts.actAs")), "{:?}", pass.hint());
        assert_eq!(pass.exit(), Exit::Runtime);
        let refused = Error::from(Refusal::Write(denied));
        assert_eq!(refused.hint(), pass.hint());
        let missing = Error::from(Refusal::Read(failure(404, "NOT_FOUND")));
        assert!(missing.hint().is_some_and(|h| h.contains("spec.service")), "{:?}", missing.hint());
        let busy = Error::from(Refusal::Write(failure(503, "UNAVAILABLE")));
        assert_eq!(busy.hint(), None, "no advice where the status gives none");
        assert_eq!(Error::from(Refusal::Invalid("api is Promoted, not paused".into())).exit(), Exit::Invalid);
    }
}
