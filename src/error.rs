//! The shared shape of user-facing errors: every typed error can name a fix.
//!
//! Core modules define their own `thiserror` enums and implement [`Hint`]; the CLI prints
//! `error: <message>` and then `hint: <fix>` lines, like cargo and uv do.

/// A fix the user can apply, printed after the error as `hint: …`.
pub trait Hint {
    /// The fix, if there is one worth printing.
    fn hint(&self) -> Option<String> {
        None
    }
}
