//! The binary's errors: the core's, and the emulator's when `canary emulator` or the
//! demo starts one. Each stays a typed value until `cli` renders it, once.

use canary_core::error::Error as CoreError;
pub use canary_core::error::Exit;
use canary_core::style::Colour;
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

/// An error the one way canary writes errors: `error: …`, then its cause and a hint.
pub fn render(e: &Error, colour: Colour) -> String {
    let mut text = format!("{} {e}", colour.paint("1;31", "error:"));
    if let Some(cause) = e.cause() {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    if let Some(hint) = e.hint() {
        text.push_str(&format!("\n  = hint: {hint}"));
    }
    text
}

/// Prints an error on stderr, in colour on a terminal.
pub fn print(e: &Error) {
    eprintln!("{}", render(e, Colour::for_stderr()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_says_what_then_why_then_what_to_do() {
        let e = Error::Core(CoreError::Unreadable(canary_core::manifest::source::Unreadable {
            path: "ops/api.yaml".into(),
            reason: "no such file or directory".into(),
        }));
        let text = render(&e, Colour::Never);
        assert!(
            text.starts_with("error: cannot read ops/api.yaml\n  caused by: no such file or directory\n  = hint: ")
        );
        assert_eq!(render(&Error::usage("bad flag"), Colour::Never), "error: bad flag");
        assert!(render(&Error::usage("x"), Colour::Always).starts_with("\x1b[1;31merror:\x1b[0m x"));
    }
}
