//! The SDK's error type, shaped like the `ops` exception families.
//!
//! Pebble failures keep the `ops.pebble` split (connection, API, change, timeout) so charm
//! code can react to them the same way; the SDK adds config, stored-state and model
//! families, and [`Error::Other`] carries any other error. Many foreign errors convert with
//! `?` (serde, I/O, number parsing, strings, boxed errors); anything else converts with
//! [`ResultExt::context`] or [`Error::other`].

use std::error::Error as StdError;
use std::fmt;

/// Result of SDK calls and charm handlers; the error defaults to [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// A boxed error that can cross threads, as `?` produces from any error type.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in a charm, mirroring the `ops` exception families.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The container's supervisor cannot be reached (`ops.pebble.ConnectionError`).
    Connection(String),
    /// The Pebble API refused a request (`ops.pebble.APIError`).
    Api(ApiError),
    /// A Pebble change ended in error (`ops.pebble.ChangeError`).
    Change(ChangeError),
    /// Waiting for a Pebble change timed out (`ops.pebble.TimeoutError`).
    Timeout(String),
    /// A file operation failed on its path (`ops.pebble.PathError`).
    Path(PathError),
    /// A command exited with a non-zero code (`ops.pebble.ExecError`).
    Exec(ExecError),
    /// Some paths of a recursive copy failed (`ops.pebble.MultiPushPullError`); the others
    /// were copied.
    PushPull {
        /// How many paths failed.
        message: String,
        /// Each failed path with its error.
        errors: Vec<(String, Error)>,
    },
    /// A config option is missing or has another type than the charm expects.
    Config(String),
    /// Stored state could not be encoded or decoded.
    State(String),
    /// The host refused a model operation, such as setting app status when not leader
    /// (`ops.model.ModelError`).
    Model(String),
    /// Any other error, such as one from a library the charm uses.
    Other(BoxError),
    /// An error with a message saying what was being done when it happened.
    Context {
        /// What was being done.
        context: String,
        /// What went wrong.
        source: BoxError,
    },
}

/// An error from the Pebble API, shaped like Pebble's error envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code, such as 400.
    pub code: u16,
    /// HTTP reason phrase, such as `Bad Request`.
    pub status: String,
    /// Pebble's error kind (such as `permission-denied`), empty when there is none.
    pub kind: String,
    /// The error message.
    pub message: String,
}

/// A command that exited with a non-zero code, with its output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecError {
    /// The command.
    pub command: Vec<String>,
    /// Its exit code (128 + signal when a signal killed it).
    pub exit_code: i32,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error (empty when it went into stdout, with `combine_stderr`).
    pub stderr: Vec<u8>,
}

/// A file operation that failed on its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathError {
    /// `not-found`, `permission-denied` or `generic-file-error`.
    pub kind: String,
    /// Pebble's message, such as `stat /x: no such file or directory`.
    pub message: String,
}

/// A Pebble change that ended in error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeError {
    /// The change's id.
    pub change_id: String,
    /// The change's error text.
    pub err: String,
}

impl Error {
    /// An error with just a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error::Other(message.to_string().into())
    }

    /// Wraps any error.
    pub fn other(err: impl Into<BoxError>) -> Self {
        Error::Other(err.into())
    }

    /// Wraps this error with a message saying what was being done.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error::Context {
            context: context.to_string(),
            source: Box::new(self),
        }
    }

    /// The API error, if this is one.
    pub fn as_api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// Whether this is a connection error (the container's supervisor is unreachable).
    pub fn is_connection(&self) -> bool {
        matches!(self, Error::Connection(_))
    }

    /// The message of this error and every error under it, joined by `": "`.
    ///
    /// This is also what `{:#}` prints, and what the host shows when a handler fails.
    pub fn chain_message(&self) -> String {
        format!("{self:#}")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connection(m)
            | Error::Timeout(m)
            | Error::Config(m)
            | Error::State(m)
            | Error::Model(m) => f.write_str(m)?,
            Error::Api(e) => fmt::Display::fmt(e, f)?,
            Error::Path(e) => f.write_str(&e.message)?,
            Error::PushPull { message, errors } => {
                f.write_str(message)?;
                for (i, (path, e)) in errors.iter().enumerate() {
                    write!(f, "{}{path}: {e}", if i == 0 { ": " } else { "; " })?;
                }
            }
            Error::Exec(e) => write!(
                f,
                "non-zero exit code {} executing {:?}, stdout={:?}, stderr={:?}",
                e.exit_code,
                e.command,
                String::from_utf8_lossy(&e.stdout),
                String::from_utf8_lossy(&e.stderr)
            )?,
            Error::Change(e) => fmt::Display::fmt(e, f)?,
            Error::Other(e) => fmt::Display::fmt(e, f)?,
            Error::Context { context, .. } => f.write_str(context)?,
        }
        if f.alternate() {
            let mut next = self.source();
            while let Some(e) = next {
                write!(f, ": {e}")?;
                next = e.source();
            }
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Other(e) => e.source(),
            Error::Context { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ApiError {}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "change {} failed: {}", self.change_id, self.err)
    }
}

impl StdError for ChangeError {}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(e)
    }
}

impl From<ChangeError> for Error {
    fn from(e: ChangeError) -> Self {
        Error::Change(e)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::Other(message.into())
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::Other(message.into())
    }
}

impl From<BoxError> for Error {
    fn from(e: BoxError) -> Self {
        match e.downcast::<Error>() {
            Ok(e) => *e,
            Err(e) => Error::Other(e),
        }
    }
}

impl From<Box<dyn StdError + 'static>> for Error {
    fn from(e: Box<dyn StdError + 'static>) -> Self {
        // Not `Send`, so it cannot be kept: keep its whole message instead.
        let mut message = e.to_string();
        let mut next = e.source();
        while let Some(s) = next {
            message.push_str(": ");
            message.push_str(&s.to_string());
            next = s.source();
        }
        Error::msg(message)
    }
}

macro_rules! from_foreign {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::Other(Box::new(e))
            }
        }
    )*};
}

from_foreign!(
    serde_json::Error,
    serde_yaml::Error,
    std::io::Error,
    std::fmt::Error,
    std::num::ParseIntError,
    std::num::ParseFloatError,
    std::num::TryFromIntError,
    std::str::ParseBoolError,
    std::str::Utf8Error,
    std::string::FromUtf8Error,
);

/// Adds a message saying what was being done to any error or to a missing value.
///
/// ```
/// use cairn_sdk::{Result, ResultExt};
///
/// fn port(text: &str) -> Result<u16> {
///     text.parse::<u16>().context("cannot parse the port")
/// }
/// assert_eq!(
///     format!("{:#}", port("x").unwrap_err()),
///     "cannot parse the port: invalid digit found in string"
/// );
/// ```
pub trait ResultExt<T> {
    /// Turns the error (or `None`) into an [`Error`] led by `context`.
    fn context(self, context: impl fmt::Display) -> Result<T>;

    /// Like [`context`](ResultExt::context), building the message only on failure.
    fn with_context<D: fmt::Display>(self, f: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<BoxError>> ResultExt<T> for core::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context.to_string(),
            source: e.into(),
        })
    }

    fn with_context<D: fmt::Display>(self, f: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: f().to_string(),
            source: e.into(),
        })
    }
}

impl<T> ResultExt<T> for Option<T> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| Error::msg(context))
    }

    fn with_context<D: fmt::Display>(self, f: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| Error::msg(f()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_is_joined_in_alternate_display() {
        let inner: Result<u8> = "300".parse::<u8>().map_err(Error::from);
        let e = inner
            .context("reading port")
            .unwrap_err()
            .context("configuring");
        assert_eq!(e.to_string(), "configuring");
        assert_eq!(
            format!("{e:#}"),
            "configuring: reading port: number too large to fit in target type"
        );
    }

    #[test]
    fn boxed_sdk_errors_come_back_unchanged() {
        let boxed: BoxError = Box::new(Error::Timeout("late".into()));
        assert!(matches!(Error::from(boxed), Error::Timeout(m) if m == "late"));
    }

    #[test]
    fn api_and_change_errors_display() {
        let e = Error::from(ApiError {
            code: 400,
            status: "Bad Request".into(),
            kind: String::new(),
            message: "cannot parse layer".into(),
        });
        assert_eq!(e.to_string(), "cannot parse layer");
        assert_eq!(e.as_api().unwrap().code, 400);
        let e = Error::from(ChangeError {
            change_id: "7".into(),
            err: "boom".into(),
        });
        assert_eq!(e.to_string(), "change 7 failed: boom");
    }
}
