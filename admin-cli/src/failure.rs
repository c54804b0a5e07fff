//! How a command fails: a message that says what to do next, and an exit code scripts can act on.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done |
//! | 1 | failed (the server refused the change, could not be reached, or failed) |
//! | 2 | bad usage (unknown flag, malformed value) |
//! | 3 | permission denied (not signed in, session ended, or your roles do not allow it) |
//! | 4 | not found |

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Failed = 1,
    Usage = 2,
    Denied = 3,
    NotFound = 4,
}

#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self { exit, message: message.into() }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Exit::Failed, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(Exit::Denied, message)
    }

    pub fn code(&self) -> u8 {
        self.exit as u8
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::failed(format!("writing the output: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, Failure>;
