//! The binary's errors: the core's, and the emulator's when `canary emulator` or the
//! demo starts one. Each stays a typed value until `cli` renders it, once.

use canary_core::error::Error as CoreError;
pub use canary_core::error::Exit;
use canary_emulator::ServeError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{0}")]
    Emulator(#[from] ServeError),
}

impl Error {
    pub fn usage(why: impl Into<String>) -> Error {
        Error::Core(CoreError::Usage(why.into()))
    }

    pub fn runtime(why: impl Into<String>) -> Error {
        Error::Core(CoreError::Runtime(why.into()))
    }

    pub fn exit(&self) -> Exit {
        match self {
            Error::Core(e) => e.exit(),
            Error::Emulator(ServeError::NotLoopback { .. } | ServeError::Scenario(_)) => Exit::Invalid,
            Error::Emulator(_) => Exit::Runtime,
        }
    }

    /// The underlying cause, in a person's words.
    pub fn cause(&self) -> Option<String> {
        match self {
            Error::Core(e) => e.cause(),
            Error::Emulator(_) => None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Core(e) => e.hint(),
            Error::Emulator(ServeError::NotLoopback { .. }) => Some(
                "the emulator has no authentication; listen on 127.0.0.1, or pass --allow-remote if you really mean to expose it".to_owned(),
            ),
            Error::Emulator(_) => None,
        }
    }
}
