//! The SPI side of a run: [`host::SpiHost`] (records, logs, metadata, each call its own short transaction)
//! and [`jobs`] (claiming a job, and its final transaction with the notifications), with [`deletes`] for
//! deletion detection.

pub mod deletes;
pub mod host;
pub mod jobs;
pub mod records;

use pgrx::prelude::*;

/// Runs a statement that returns one jsonb value; `None` when it is SQL NULL or there is no row.
pub fn one_json(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<serde_json::Value>, String> {
    match Spi::get_one_with_args::<pgrx::JsonB>(sql, args) {
        Ok(value) => Ok(value.map(|j| j.0)),
        Err(pgrx::spi::SpiError::InvalidPosition) => Ok(None),
        Err(error) => Err(error.to_string()),
    }
}

/// Runs a statement for its effect.
pub fn exec(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> Result<(), String> {
    Spi::run_with_args(sql, args).map_err(|e| e.to_string())
}
