//! [`SpiHost`]: what a running script's `batchSave`, `log` and metadata calls do in Postgres. Each call is one
//! short transaction, so HTTP waits never hold a transaction open and what a run saved stays saved if it
//! later fails (as in Nango).

use pg_nango_core::script::{Host, SaveOp};

use super::{exec, one_json};
use crate::txn::run_txn;

/// Largest log message kept, in characters.
const MAX_LOG_MESSAGE: usize = 10_000;

pub struct SpiHost {
    pub job_id: i64,
    pub connection: i64,
}

/// One batch write. `$1` records (jsonb array), `$2` model, `$3` connection, `$4` job. Returns
/// `[added, updated, deleted]`. An unchanged record is not rewritten; a deleted one saved again is ADDED.
const SAVE_SQL: &str = "
WITH incoming AS (SELECT e.rec ->> 'id' AS id, e.rec FROM jsonb_array_elements($1::jsonb) AS e(rec)),
written AS (
    INSERT INTO nango.stored_records AS r
        (model, connection, external_id, data, first_seen_at, last_modified_at, deleted_at, last_action, cursor, last_job)
    SELECT $2, $3, i.id, i.rec, now(), now(), NULL, 'ADDED', nextval('nango.record_cursor'), $4 FROM incoming i
    ON CONFLICT (model, connection, external_id) DO UPDATE SET
        data = excluded.data,
        first_seen_at = CASE WHEN r.deleted_at IS NULL THEN r.first_seen_at ELSE excluded.first_seen_at END,
        last_action = CASE WHEN r.deleted_at IS NULL THEN 'UPDATED' ELSE 'ADDED' END,
        last_modified_at = excluded.last_modified_at,
        deleted_at = NULL,
        cursor = excluded.cursor,
        last_job = excluded.last_job
    WHERE r.data IS DISTINCT FROM excluded.data OR r.deleted_at IS NOT NULL
    RETURNING r.last_action)
SELECT jsonb_build_array(count(*) FILTER (WHERE last_action = 'ADDED'), count(*) FILTER (WHERE last_action = 'UPDATED'), 0)
FROM written";

/// batchUpdate: merges into stored, not deleted records; ids not stored are ignored.
const UPDATE_SQL: &str = "
WITH incoming AS (SELECT e.rec ->> 'id' AS id, e.rec FROM jsonb_array_elements($1::jsonb) AS e(rec)),
written AS (
    UPDATE nango.stored_records r
    SET data = nango._jsonb_merge(r.data, i.rec), last_action = 'UPDATED', last_modified_at = now(),
        cursor = nextval('nango.record_cursor'), last_job = $4
    FROM incoming i
    WHERE r.model = $2 AND r.connection = $3 AND r.external_id = i.id AND r.deleted_at IS NULL
      AND r.data IS DISTINCT FROM nango._jsonb_merge(r.data, i.rec)
    RETURNING 1)
SELECT jsonb_build_array(0, count(*), 0) FROM written";

/// batchDelete: soft-deletes, keeping the last payload; deleting a deleted record again changes nothing.
const DELETE_SQL: &str = "
WITH incoming AS (SELECT e.rec ->> 'id' AS id FROM jsonb_array_elements($1::jsonb) AS e(rec)),
written AS (
    UPDATE nango.stored_records r
    SET deleted_at = now(), last_modified_at = now(), last_action = 'DELETED',
        cursor = nextval('nango.record_cursor'), last_job = $4
    FROM incoming i
    WHERE r.model = $2 AND r.connection = $3 AND r.external_id = i.id AND r.deleted_at IS NULL
    RETURNING 1)
SELECT jsonb_build_array(0, 0, count(*)) FROM written";

/// Adds one batch's counts to the job's per-model result.
const COUNT_SQL: &str = "
UPDATE nango.jobs SET result = result || jsonb_build_object($2::text, jsonb_build_object(
    'added', coalesce((result -> $2 ->> 'added')::bigint, 0) + $3,
    'updated', coalesce((result -> $2 ->> 'updated')::bigint, 0) + $4,
    'deleted', coalesce((result -> $2 ->> 'deleted')::bigint, 0) + $5))
WHERE id = $1";

impl Host for SpiHost {
    fn save(&mut self, op: SaveOp, model: &str, records_json: String) -> Result<(), String> {
        let sql = match op {
            SaveOp::Save => SAVE_SQL,
            SaveOp::Update => UPDATE_SQL,
            SaveOp::Delete => DELETE_SQL,
        };
        let (job, connection) = (self.job_id, self.connection);
        run_txn(|| {
            // Held to commit: cursors of a model are handed out in commit order.
            exec(
                "SELECT pg_advisory_xact_lock(hashtext('pg_nango records'), hashtext($1))",
                &[model.into()],
            )?;
            let counts = one_json(
                sql,
                &[
                    records_json.as_str().into(),
                    model.into(),
                    connection.into(),
                    job.into(),
                ],
            )?
            .unwrap_or_default();
            let n = |i: usize| {
                counts
                    .get(i)
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0)
            };
            exec(
                COUNT_SQL,
                &[
                    job.into(),
                    model.into(),
                    n(0).into(),
                    n(1).into(),
                    n(2).into(),
                ],
            )
        })
        .map_err(|e| format!("could not save {model} records: {e}"))
    }

    fn log(&mut self, level: &str, message: &str, payload_json: Option<&str>) {
        let message: String = message.chars().take(MAX_LOG_MESSAGE).collect();
        let job = self.job_id;
        let _ = run_txn(|| {
            exec(
                "INSERT INTO nango.logs (job, level, message, payload) VALUES ($1, $2, $3, $4::jsonb)",
                &[
                    job.into(),
                    level.into(),
                    message.as_str().into(),
                    payload_json.into(),
                ],
            )
        });
    }

    fn metadata(&mut self) -> Result<String, String> {
        let connection = self.connection;
        run_txn(|| {
            one_json(
                "SELECT metadata FROM nango.connections WHERE id = $1",
                &[connection.into()],
            )
        })
        .map(|m| m.unwrap_or_default().to_string())
    }

    fn set_metadata(&mut self, metadata_json: &str, merge: bool) -> Result<(), String> {
        let value: serde_json::Value =
            serde_json::from_str(metadata_json).map_err(|e| e.to_string())?;
        if !value.is_object() {
            return Err("metadata must be an object".into());
        }
        let connection = self.connection;
        let sql = if merge {
            "UPDATE nango.connections SET metadata = metadata || $2, updated_at = now() WHERE id = $1"
        } else {
            "UPDATE nango.connections SET metadata = $2, updated_at = now() WHERE id = $1"
        };
        run_txn(|| exec(sql, &[connection.into(), pgrx::JsonB(value.clone()).into()]))
    }
}
