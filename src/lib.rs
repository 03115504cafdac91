//! # pg_nango
//!
//! Nango-style API syncs inside PostgreSQL. This crate is the Postgres shell around `pg_nango_core`:
//!
//! - [`guc`]: the `nango.*` settings;
//! - [`api`]: the SQL functions written in Rust (`nango.deploy`, `nango.upsert_providers`); the rest of the
//!   SQL surface is plain SQL in `sql/` (connections, sync commands, `nango.records`, views);
//! - [`error`]: the errors of the SQL surface and their SQLSTATEs;
//! - [`worker`]: the scheduler (one static background worker) and the run worker (one dynamic background
//!   worker per run);
//! - [`store`]: the SPI side of a run: records, logs, job state and notifications.
//!
//! The library must be in `shared_preload_libraries`: `_PG_init` registers the scheduler there, and
//! `CREATE EXTENSION` refuses to run otherwise.

use pgrx::prelude::*;

pub mod api;
pub mod error;
pub mod guc;
pub mod store;
pub mod txn;
pub mod worker;

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

::pgrx::pg_module_magic!();

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!("../sql/api.sql", name = "api", requires = ["bootstrap"]);
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    error::keep_backtraces_out_of_errors();
    guc::define();
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        worker::scheduler::register();
    }
}

/// The settings `cargo pgrx test`'s cluster starts with: the library preloaded, as `CREATE EXTENSION`
/// requires. The scheduler's database (`postgres`) has no extension there, so no worker runs anything.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'pg_nango'"]
    }
}
