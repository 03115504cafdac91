//! Errors of the SQL functions written in Rust. Each says what went wrong with the SQLSTATE a program can
//! branch on (the SQL functions in `sql/` raise the same codes), and is reported once, at the function that
//! found it, as a Postgres ERROR with its DETAIL and HINT ([`ApiError::raise`]).
//!
//! | SQLSTATE | condition                          | when |
//! |----------|------------------------------------|------|
//! | 22023    | `invalid_parameter_value`          | a bad argument, bad deploy input |
//! | 42704    | `undefined_object`                 | an integration, connection, sync, action or job that does not exist |
//! | 42501    | `insufficient_privilege`           | the caller lacks a privilege the call needs |
//! | 55000    | `object_not_in_prerequisite_state` | a sync without connections, a job waited for in its own transaction |
//! | 2BP01    | `dependent_objects_still_exist`    | a deploy would drop a typed view that other views are built on |
//! | 57014    | `query_canceled`                   | a time limit ran out |
//! | 53400    | `configuration_limit_exceeded`     | no background worker slot to run the call |
//! | 38000    | `external_routine_exception`       | the script the call ran failed |
//! | XX000    | `internal_error`                   | the extension's own statement failed: a bug, or a damaged installation |

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

/// The words of an error: its message, and optionally a DETAIL and a HINT.
#[derive(Debug, Default)]
pub struct Words {
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl std::fmt::Display for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What went wrong in a call of the SQL surface, by the SQLSTATE it is reported with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A bad argument or bad deploy input (22023).
    #[error("{0}")]
    InvalidInput(Words),
    /// Something named that does not exist (42704).
    #[error("{0}")]
    Undefined(Words),
    /// The caller lacks a privilege (42501).
    #[error("{0}")]
    NotPermitted(Words),
    /// No room to run the call (53400).
    #[error("{0}")]
    NoCapacity(Words),
    /// A time limit ran out (57014).
    #[error("{0}")]
    TimedOut(Words),
    /// Other objects depend on one the call would drop (2BP01).
    #[error("{0}")]
    InUse(Words),
    /// The script the call ran failed (38000).
    #[error("{0}")]
    ScriptFailed(Words),
    /// The extension's own statement failed (XX000).
    #[error("{0}")]
    Internal(Words),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::InvalidInput(words(message))
    }

    pub fn undefined(message: impl Into<String>) -> ApiError {
        ApiError::Undefined(words(message))
    }

    pub fn not_permitted(message: impl Into<String>) -> ApiError {
        ApiError::NotPermitted(words(message))
    }

    pub fn no_capacity(message: impl Into<String>) -> ApiError {
        ApiError::NoCapacity(words(message))
    }

    pub fn timed_out(message: impl Into<String>) -> ApiError {
        ApiError::TimedOut(words(message))
    }

    pub fn in_use(message: impl Into<String>) -> ApiError {
        ApiError::InUse(words(message))
    }

    pub fn script_failed(message: impl Into<String>) -> ApiError {
        ApiError::ScriptFailed(words(message))
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::Internal(words(message))
    }

    /// The same error with a HINT on what to do.
    pub fn hint(mut self, hint: impl Into<String>) -> ApiError {
        self.words_mut().hint = Some(hint.into());
        self
    }

    /// The same error with a DETAIL.
    pub fn detail(mut self, detail: impl Into<String>) -> ApiError {
        self.words_mut().detail = Some(detail.into());
        self
    }

    /// The SQLSTATE it is reported with.
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        match self {
            ApiError::InvalidInput(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            ApiError::Undefined(_) => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            ApiError::NotPermitted(_) => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            ApiError::NoCapacity(_) => PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            ApiError::TimedOut(_) => PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
            ApiError::InUse(_) => PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            ApiError::ScriptFailed(_) => PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
            ApiError::Internal(_) => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        }
    }

    fn words_mut(&mut self) -> &mut Words {
        match self {
            ApiError::InvalidInput(w)
            | ApiError::Undefined(w)
            | ApiError::NotPermitted(w)
            | ApiError::NoCapacity(w)
            | ApiError::TimedOut(w)
            | ApiError::InUse(w)
            | ApiError::ScriptFailed(w)
            | ApiError::Internal(w) => w,
        }
    }

    /// Reports the error as a Postgres ERROR, which aborts the statement (and with it the caller's
    /// transaction, so a failed call changes nothing).
    pub fn raise(mut self) -> ! {
        let code = self.sqlstate();
        let words = std::mem::take(self.words_mut());
        let mut report = ErrorReport::new(code, words.message, "pg_nango");
        if let Some(detail) = words.detail {
            report = report.set_detail(detail);
        }
        if let Some(hint) = words.hint {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

fn words(message: impl Into<String>) -> Words {
    Words {
        message: message.into(),
        ..Words::default()
    }
}

/// The extension's own statements: their failure is an internal error (the Postgres ERRORs they raise,
/// such as a lock timeout or a cancel, pass through with their own SQLSTATE before this is reached).
impl From<pgrx::spi::SpiError> for ApiError {
    fn from(error: pgrx::spi::SpiError) -> ApiError {
        ApiError::internal(error.to_string())
    }
}

/// Keeps the Rust backtrace out of the DETAIL of every ERROR that passes through the extension's code:
/// pgrx attaches one to a Postgres ERROR raised under Rust frames whenever backtraces are enabled (a
/// developer's `RUST_BACKTRACE=1` in the server's environment), and it would reach every client. Called by
/// `_PG_init` in the postmaster (the library is preloaded), whose environment every server process
/// inherits; a `RUST_LIB_BACKTRACE` the server was started with wins. It also applies to the other Rust
/// libraries of the server, whose errors then carry no backtrace either.
pub fn keep_backtraces_out_of_errors() {
    // SAFETY: reads a flag Postgres sets before loading any library.
    let in_postmaster = unsafe { !pgrx::pg_sys::IsUnderPostmaster };
    if in_postmaster && std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the postmaster loads the preloaded libraries before it starts any process or thread of
        // its own; a library loaded before this one that started a thread could race with this write, but
        // Postgres' own libraries start none.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}
