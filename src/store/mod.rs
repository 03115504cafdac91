//! The SPI side of a run: [`host::SpiHost`] (records, logs, metadata, each call its own short transaction)
//! and [`jobs`] (claiming a job, and its final transaction with the notifications), with [`records`] for
//! batch writes, [`modules`] for the deployed modules a worker keeps from run to run, [`deletes`] for deletion detection and [`sdk_state`] for locks, record listing, the
//! integration and environment variables; [`pending::PendingHost`] for a script that runs before its
//! connection is stored.

pub mod deletes;
pub mod host;
pub mod jobs;
pub mod modules;
pub mod pending;
pub mod records;
pub mod sdk_state;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::pg_sys::PgOid;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;

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

/// `value`, a jsonb the extension's own statement returned, read as a `T`. A statement that returned no
/// row, or a value of another shape, is a bug (or a damaged installation) to report, not an empty value.
pub fn own_row<T: serde::de::DeserializeOwned>(
    what: &str,
    value: Option<serde_json::Value>,
) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{what}: the statement returned no row"))?;
    serde_json::from_value(value).map_err(|e| format!("{what}: unexpected shape ({e})"))
}

/// Runs a statement for its effect.
pub fn exec(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> Result<(), String> {
    Spi::run_with_args(sql, args).map_err(|e| e.to_string())
}

/// A `jsonb` value as its bytes, varlena header included (from `pg_nango_core::records::jsonb`), passed
/// to Postgres as they are.
pub struct JsonbBytes<'a>(pub &'a [u8]);

impl IntoDatum for JsonbBytes<'_> {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        // SAFETY: palloc returns a block of the asked size (or raises an ERROR), into which the bytes are
        // copied; they hold their own varlena header.
        unsafe {
            let copy = pg_sys::palloc(self.0.len()).cast::<u8>();
            std::ptr::copy_nonoverlapping(self.0.as_ptr(), copy, self.0.len());
            Some(pg_sys::Datum::from(copy))
        }
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

thread_local! {
    /// Statements run for every batch, prepared once per process.
    static PREPARED: RefCell<HashMap<&'static str, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// Runs a statement that returns one jsonb value through a plan prepared once per process, with parameter
/// types taken from `args`. A batch's records are a parameter of a generic plan: planning a custom plan
/// would read the whole batch as a constant first, and again for every batch.
pub fn batch_json(
    sql: &'static str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<serde_json::Value>, String> {
    with_prepared(sql, args, |table| {
        Ok(table.first().get_one::<pgrx::JsonB>()?.map(|j| j.0))
    })
}

/// Runs a statement for its effect through a plan prepared once per process (see [`batch_json`]): for
/// the small statements every batch runs, whose parsing and planning would otherwise be a few percent
/// of a write.
pub fn batch_exec(sql: &'static str, args: &[pgrx::datum::DatumWithOid]) -> Result<(), String> {
    with_prepared(sql, args, |_| Ok(()))
}

fn with_prepared<R>(
    sql: &'static str,
    args: &[pgrx::datum::DatumWithOid],
    read: impl FnOnce(pgrx::spi::SpiTupleTable) -> Result<R, pgrx::spi::SpiError>,
) -> Result<R, String> {
    Spi::connect_mut(|client| {
        let cached = PREPARED.with(|prepared| prepared.borrow().get(sql).cloned());
        let statement = match cached {
            Some(statement) => statement,
            None => {
                let types: Vec<PgOid> = args.iter().map(|arg| PgOid::from(arg.oid())).collect();
                let statement = Rc::new(client.prepare_mut(sql, &types)?.keep());
                PREPARED.with(|prepared| prepared.borrow_mut().insert(sql, statement.clone()));
                statement
            }
        };
        read(client.update(&*statement, None, args)?)
    })
    .map_err(|e: pgrx::spi::SpiError| e.to_string())
}
