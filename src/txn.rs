//! Transactions for background workers, which have none of their own: [`run_txn`] runs a closure in one
//! transaction and turns a Postgres ERROR or a Rust panic inside it into `Err`, rolling back, so that one
//! failing step never takes the worker down.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// Runs `body` in its own transaction: commit on `Ok`, roll back on `Err`, ERROR or panic. An ERROR
/// raised by the commit itself (a deferred constraint, a full notification queue) rolls back and
/// becomes `Err` too.
pub fn run_txn<R>(body: impl FnOnce() -> Result<R, String>) -> Result<R, String> {
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let outcome = PgTryBuilder::new(std::panic::AssertUnwindSafe(body))
        .catch_others(|caught| Err(describe(caught)))
        .execute()
        .and_then(|value| {
            PgTryBuilder::new(|| unsafe {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
                Ok(())
            })
            .catch_others(|caught| Err(format!("commit failed: {}", describe(caught))))
            .execute()
            .map(|()| value)
        });
    unsafe {
        if outcome.is_err() {
            pg_sys::AbortCurrentTransaction();
        }
        pg_sys::pgstat_report_stat(false);
    }
    outcome
}

/// The message of a caught ERROR or panic.
pub fn describe(caught: pg_sys::panic::CaughtError) -> String {
    match caught {
        pg_sys::panic::CaughtError::PostgresError(report)
        | pg_sys::panic::CaughtError::ErrorReport(report)
        | pg_sys::panic::CaughtError::RustPanic {
            ereport: report, ..
        } => report.message().to_string(),
    }
}
