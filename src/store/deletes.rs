//! Deletion detection: windows opened by `trackDeletesStart` (explicit, kept across runs until
//! `trackDeletesEnd`) or by a run of a `track_deletes: true` sync (implicit, applied only when that run
//! succeeds). While a window is open, the ids a run saves are remembered in `nango.seen_records`; closing it
//! marks the model's other live records of the connection as deleted, under the model's cursor lock
//! ([`super::records::lock_model`]).

use serde_json::Value;

use super::records::{add_counts, counted, counts_of, lock_model};
use super::{exec, one_json, own_row};

/// Opens an explicit window unless one is open; an implicit one becomes explicit (it then outlives the run).
pub fn open_window(sync: i64, connection: i64, model: &str, job: i64) -> Result<(), String> {
    exec(
        "INSERT INTO nango.delete_windows (sync, connection, model, opened_by_job, implicit)
         VALUES ($1, $2, $3, $4, false)
         ON CONFLICT (sync, model, connection) DO UPDATE SET implicit = false",
        &[sync.into(), connection.into(), model.into(), job.into()],
    )
}

/// At the start of a run of a `track_deletes: true` sync: drops implicit windows a failed run left and opens
/// one per model that has no window.
pub fn open_implicit_windows(sync: i64, models: &[String], job: i64) -> Result<(), String> {
    exec(
        "DELETE FROM nango.delete_windows WHERE sync = $1 AND implicit",
        &[sync.into()],
    )?;
    // The window takes the schedule row's connection (none is opened for a schedule row deleted meanwhile).
    exec(
        "INSERT INTO nango.delete_windows (sync, connection, model, opened_by_job, implicit)
         SELECT s.id, s.connection, m, $3, true FROM nango.syncs s, jsonb_array_elements_text($2) AS m
         WHERE s.id = $1
         ON CONFLICT (sync, model, connection) DO NOTHING",
        &[
            sync.into(),
            pgrx::JsonB(serde_json::json!(models)).into(),
            job.into(),
        ],
    )
}

/// The models with an open window.
pub fn open_windows(sync: i64) -> Result<Vec<String>, String> {
    let models = one_json(
        "SELECT coalesce(jsonb_agg(model), '[]') FROM nango.delete_windows WHERE sync = $1",
        &[sync.into()],
    )?;
    own_row("the models with an open deletion window", models)
}

/// Remembers the ids of a batch as seen in the model's window.
pub fn mark_seen(sync: i64, connection: i64, model: &str, ids: &[&str]) -> Result<(), String> {
    exec(
        "INSERT INTO nango.seen_records (sync, connection, model, external_id)
         SELECT $1, $2, $3, unnest($4::text[])
         ON CONFLICT DO NOTHING",
        &[sync.into(), connection.into(), model.into(), ids.into()],
    )
}

/// Marks the model's live records of the connection that the open window did not see as deleted.
const CLOSE_SQL: &str = counted!(
    "
WITH written AS (
    UPDATE nango.stored_records r
    SET deleted_at = now(), last_modified_at = now(), last_action = 'DELETED',
        cursor = nextval('nango.record_cursor'), last_job = $4
    FROM (SELECT s.external_id, CASE WHEN s.last_job = $4 THEN s.last_action END AS previous
          FROM nango.stored_records s
          WHERE s.model = $2 AND s.connection = $3 AND s.deleted_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM nango.seen_records seen
                            WHERE seen.sync = $1 AND seen.model = $2 AND seen.external_id = s.external_id
                              AND seen.connection = $3)
          ORDER BY s.external_id) d
    WHERE r.model = $2 AND r.connection = $3 AND r.external_id = d.external_id
    RETURNING r.external_id, r.last_action AS action, d.previous)",
    ",
    'ids', coalesce(jsonb_agg(external_id ORDER BY external_id), '[]')"
);

/// Closes the model's window: marks the live records of the connection not seen in it as deleted, adds
/// them to the job's counts and returns their ids. `None` when no window is open.
pub fn close_window(
    sync: i64,
    model: &str,
    connection: i64,
    job: i64,
) -> Result<Option<Vec<String>>, String> {
    lock_model(model)?;
    let open = one_json(
        "SELECT to_jsonb(EXISTS (SELECT 1 FROM nango.delete_windows WHERE sync = $1 AND model = $2 AND connection = $3))",
        &[sync.into(), model.into(), connection.into()],
    )?;
    if open != Some(Value::Bool(true)) {
        return Ok(None);
    }
    let closed: Value = own_row(
        "the records a deletion window marked deleted",
        one_json(
            CLOSE_SQL,
            &[sync.into(), model.into(), connection.into(), job.into()],
        )?,
    )?;
    exec(
        "DELETE FROM nango.delete_windows WHERE sync = $1 AND model = $2 AND connection = $3",
        &[sync.into(), model.into(), connection.into()],
    )?;
    add_counts(job, model, counts_of(&closed["counts"]), None)?;
    Ok(Some(own_row(
        "the ids a deletion window marked deleted",
        Some(closed["ids"].clone()),
    )?))
}

/// At the success of a run: closes its implicit windows (legacy `track_deletes`).
pub fn close_implicit_windows(sync: i64, connection: i64, job: i64) -> Result<(), String> {
    let models = one_json(
        "SELECT coalesce(jsonb_agg(model ORDER BY model), '[]') FROM nango.delete_windows WHERE sync = $1 AND implicit",
        &[sync.into()],
    )?;
    let models: Vec<String> = own_row("the models with an implicit deletion window", models)?;
    for model in models {
        close_window(sync, &model, connection, job)?;
    }
    Ok(())
}
