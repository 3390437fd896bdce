//! Colour for what a person reads: on a terminal only, and never when `NO_COLOR` is set
//! (<https://no-color.org>). Every coloured word canary prints is painted here.

use std::io::IsTerminal as _;

/// Whether to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Never,
    Always,
}

impl Colour {
    /// For text written to stderr (errors, diagnostics).
    pub fn for_stderr() -> Colour {
        Colour::when(std::io::stderr().is_terminal())
    }

    /// For text written to stdout (the status view).
    pub fn for_stdout() -> Colour {
        Colour::when(std::io::stdout().is_terminal())
    }

    fn when(terminal: bool) -> Colour {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        if terminal && !no_color { Colour::Always } else { Colour::Never }
    }

    /// `text` in the SGR style `code` (`1;31` bold red, `2` dim, …), or as it is.
    pub fn paint(self, code: &str, text: &str) -> String {
        match self {
            Colour::Never => text.to_owned(),
            Colour::Always => format!("\x1b[{code}m{text}\x1b[0m"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_leaves_text_alone_and_always_resets_after_it() {
        assert_eq!(Colour::Never.paint("1;31", "error:"), "error:");
        assert_eq!(Colour::Always.paint("1;31", "error:"), "\x1b[1;31merror:\x1b[0m");
        assert_eq!(Colour::when(false), Colour::Never);
    }
}
