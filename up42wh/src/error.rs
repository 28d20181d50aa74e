//! The program's one error type: a line for the user and an exit code.

use std::fmt;

/// An error for the user: one line; configuration mistakes exit 2, failures while running 1.
#[derive(Debug)]
pub struct Error {
    msg: String,
    code: u8,
}

impl Error {
    pub fn config(msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            code: 2,
        }
    }
    pub fn run(msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            code: 1,
        }
    }
    /// A failure with an exit code of its own (`up42wh up42 test` tells its outcomes apart).
    pub fn code(code: u8, msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            code,
        }
    }
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}
