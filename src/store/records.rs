//! Writing records: `batchSave`, `batchUpdate` and `batchDelete` of one model, one transaction per call.
//!
//! A record comes with its content hash, md5 of its JSON text, taken by the script runtime. A save looks
//! the batch's ids up by primary key and leaves alone every record stored with the same hash, without
//! parsing it; only the others become jsonb, most often built already on the script's side
//! (`pg_nango_core::records::jsonb`), so that Postgres parses none of them. One of those whose content
//! equals what is stored (its keys in another order, or last written by batchUpdate) is unchanged too. An
//! unchanged record is not touched at all (no new row version, no lock, same cursor). Every write takes
//! the model's cursor lock first ([`lock_model`]), so cursors follow commit order, and the read of what is
//! stored and the write that follows see the same rows.
//!
//! While a run alone has written a model's records for its connection since the connection had none,
//! a batchSave of ids it has not saved is inserted without the lookup ([`INSERT_NEW_SQL`]; why that is
//! safe: `pg_nango_core::records::fresh`).
//!
//! The job's counts are kept per record, by the record's state at the end of the run: a record changed twice
//! in one run counts once, under its final `last_action`. So a run's counts are exactly what
//! `nango.records(model, delta => <the run's start>)` returns for the connection, by `last_action`.

use std::time::Instant;

use pg_nango_core::records::batch::{OutgoingRecord, RecordBatch};
use pg_nango_core::records::fresh::Freshness;
use pg_nango_core::script::SaveOp;
use serde_json::Value;

use pgrx::pg_sys;

use super::{JsonbBytes, batch_exec, batch_json, exec, own_row};

/// Records per statement: a larger batch is written in chunks of this size, still in one transaction.
const CHUNK: usize = 1000;

fn statement(op: SaveOp) -> &'static str {
    match op {
        SaveOp::Save => SAVE_SQL,
        SaveOp::Update => UPDATE_SQL,
        SaveOp::Delete => DELETE_SQL,
    }
}

/// What one batch did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub records: usize,
    /// Changes to the job's `[added, updated, deleted]` (a record already counted in this run moves).
    pub counts: [i64; 3],
    /// Records written (the others were unchanged, or for batchUpdate/batchDelete not stored).
    pub written: i64,
    /// batchUpdate: ids that are not stored (or deleted), so nothing was written for them.
    pub missing: Vec<String>,
    /// Records sent as `jsonb` built on the script's side (the others went as text).
    pub prebuilt: usize,
    /// Whether the batch looked its records up (a batchSave of records known to be new does not).
    pub looked_up: bool,
    pub elapsed_ms: f64,
}

/// The statements below end with this: the job's count changes from `written (action, previous)`, where
/// `previous` is the action under which this job already counted the record (NULL when it did not).
macro_rules! counted {
    ($ctes:literal) => {
        counted!($ctes, "")
    };
    ($ctes:literal, $extra:literal) => {
        concat!(
            $ctes,
            "
SELECT jsonb_build_object(
    'written', count(*),
    'counts', jsonb_build_array(
        count(*) FILTER (WHERE action = 'ADDED') - count(*) FILTER (WHERE previous = 'ADDED'),
        count(*) FILTER (WHERE action = 'UPDATED') - count(*) FILTER (WHERE previous = 'UPDATED'),
        count(*) FILTER (WHERE action = 'DELETED') - count(*) FILTER (WHERE previous = 'DELETED'))",
            $extra,
            ")
FROM written"
        )
    };
}
pub(crate) use counted;

// The three statements take the same parameters: `$1` the records' JSON texts (text[]), `$2` model,
// `$3` connection, `$4` job, `$5` the records' ids (text[]), `$6` their hashes (uuid[]), `$7` for
// batchSave the records' `jsonb` values as the script's side built them (jsonb[]; a record with one there
// has a NULL text, see `pg_nango_core::records::jsonb`). The stored rows of a batch are looked up one by
// one (LATERAL … LIMIT 1 keeps the planner from reading all of the connection's records for a thousand
// ids).

/// batchSave. New, changed and deleted records are written (a deleted one saved again is ADDED, with a new
/// first_seen_at); unchanged ones are left alone. New records are inserted and stored ones updated, each by
/// the plain statement: the model lock keeps every other writer of these ids out until commit, so an
/// `INSERT … ON CONFLICT`, which costs a speculative insertion per record, has no race to settle.
const SAVE_SQL: &str = counted!(
    "
WITH candidates AS MATERIALIZED (
    SELECT i.id, i.txt, i.js, i.hash, i.n, r.external_id IS NOT NULL AS stored,
           r.deleted_at, r.data, r.last_job, r.last_action
    FROM unnest($5::text[], $1::text[], $7::jsonb[], $6::uuid[]) WITH ORDINALITY AS i(id, txt, js, hash, n)
    LEFT JOIN LATERAL (SELECT s.external_id, s.deleted_at, s.data_hash, s.data, s.last_job, s.last_action
                       FROM nango.stored_records s
                       WHERE s.model = $2 AND s.connection = $3 AND s.external_id = i.id LIMIT 1) r ON true
    WHERE r.external_id IS NULL OR r.deleted_at IS NOT NULL OR r.data_hash <> i.hash),
inserted AS (
    INSERT INTO nango.stored_records
        (model, connection, external_id, data, data_hash, first_seen_at, last_modified_at, deleted_at,
         last_action, cursor, last_job)
    SELECT $2, $3, c.id, coalesce(c.js, c.txt::jsonb), c.hash, now(), now(), NULL, 'ADDED',
           nextval('nango.record_cursor'), $4
    FROM candidates c WHERE NOT c.stored ORDER BY c.n
    RETURNING 'ADDED'::text AS action, NULL::text AS previous),
changed AS MATERIALIZED (
    SELECT c.id, c.rec, c.hash, c.n, c.deleted_at, CASE WHEN c.last_job = $4 THEN c.last_action END AS previous,
           CASE WHEN c.deleted_at IS NOT NULL THEN 'ADDED' ELSE 'UPDATED' END AS action
    FROM (SELECT c.*, coalesce(c.js, c.txt::jsonb) AS rec FROM candidates c WHERE c.stored) c
    WHERE c.deleted_at IS NOT NULL OR c.data <> c.rec),
updated AS (
    UPDATE nango.stored_records r
    SET data = c.rec, data_hash = c.hash,
        first_seen_at = CASE WHEN c.deleted_at IS NULL THEN r.first_seen_at ELSE now() END,
        last_action = c.action, last_modified_at = now(), deleted_at = NULL,
        cursor = nextval('nango.record_cursor'), last_job = $4
    FROM (SELECT * FROM changed ORDER BY n) c
    WHERE r.model = $2 AND r.connection = $3 AND r.external_id = c.id
    RETURNING c.action, c.previous),
written AS (SELECT action, previous FROM inserted UNION ALL SELECT action, previous FROM updated)"
);

/// batchSave of records known not to be stored (`pg_nango_core::records::fresh`): inserted without
/// looking them up. Should one be stored after all, the primary key fails the batch. Also returns the
/// highest cursor drawn.
const INSERT_NEW_SQL: &str = counted!(
    "
WITH written AS (
    INSERT INTO nango.stored_records
        (model, connection, external_id, data, data_hash, first_seen_at, last_modified_at, deleted_at,
         last_action, cursor, last_job)
    SELECT $2, $3, i.id, coalesce(i.js, i.txt::jsonb), i.hash, now(), now(), NULL, 'ADDED',
           nextval('nango.record_cursor'), $4
    FROM unnest($5::text[], $1::text[], $7::jsonb[], $6::uuid[]) WITH ORDINALITY AS i(id, txt, js, hash, n)
    ORDER BY i.n
    RETURNING 'ADDED'::text AS action, NULL::text AS previous, cursor)",
    ",
    'last_cursor', max(cursor)"
);

/// The highest cursor of a model's stored records for a connection (`$1` connection, `$2` model), deleted
/// ones included; NULL when there is none. One step down the connection's cursor index: the bounds are
/// row comparisons, which only that index serves. With `connection = $1 AND model = $2` the planner walks
/// the model's cursor index backward instead, through every other connection's records of the model,
/// all of them for a connection that has none.
pub(crate) const LAST_CURSOR_SQL: &str = "
SELECT (SELECT to_jsonb(s.cursor) FROM nango.stored_records s
        WHERE (s.connection, s.model, s.cursor) >= ($1, $2, -9223372036854775808)
          AND (s.connection, s.model, s.cursor) <= ($1, $2, 9223372036854775807)
        ORDER BY s.connection DESC, s.model DESC, s.cursor DESC LIMIT 1)";

/// Before a batchSave, when most records of the run's last batch were unchanged: the positions (1-based) of
/// the records not stored under their hash, found from the ids and hashes alone. Only those are then sent
/// with their JSON texts, so a batch that changes nothing never passes its texts to the server. `$1` ids
/// (text[]), `$2` hashes (uuid[]), `$3` model, `$4` connection.
const PROBE_SQL: &str = "
SELECT coalesce(jsonb_agg(i.n ORDER BY i.n), '[]')
FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS i(id, hash, n)
LEFT JOIN LATERAL (SELECT s.data_hash, s.deleted_at FROM nango.stored_records s
                   WHERE s.model = $3 AND s.connection = $4 AND s.external_id = i.id LIMIT 1) r ON true
WHERE r.data_hash IS NULL OR r.deleted_at IS NOT NULL OR r.data_hash <> i.hash";

/// batchUpdate: merges into stored, live records (objects key by key, arrays replaced); a merge that
/// changes nothing writes nothing; ids not stored are reported as missing. The merged record's hash is
/// md5 of its jsonb text (there is no JSON.stringify text of it).
const UPDATE_SQL: &str = counted!(
    "
WITH incoming AS MATERIALIZED (
    SELECT i.id, i.txt::jsonb AS rec, i.n FROM unnest($5::text[], $1::text[]) WITH ORDINALITY AS i(id, txt, n)),
stored AS MATERIALIZED (
    SELECT i.id, i.n, m.data, r.data AS old_data, CASE WHEN r.last_job = $4 THEN r.last_action END AS previous
    FROM incoming i
    JOIN LATERAL (SELECT s.data, s.last_job, s.last_action FROM nango.stored_records s
                  WHERE s.model = $2 AND s.connection = $3 AND s.external_id = i.id AND s.deleted_at IS NULL
                  LIMIT 1) r ON true
    CROSS JOIN LATERAL (SELECT nango._jsonb_merge(r.data, i.rec) AS data) m),
written AS (
    UPDATE nango.stored_records r
    SET data = c.data, data_hash = md5(c.data::text)::uuid, last_action = 'UPDATED', last_modified_at = now(),
        cursor = nextval('nango.record_cursor'), last_job = $4
    FROM (SELECT * FROM stored WHERE data <> old_data ORDER BY n) c
    WHERE r.model = $2 AND r.connection = $3 AND r.external_id = c.id
    RETURNING r.last_action AS action, c.previous)",
    ",
    'missing', (SELECT coalesce(jsonb_agg(i.id ORDER BY i.n), '[]') FROM incoming i
                WHERE NOT EXISTS (SELECT 1 FROM stored s WHERE s.id = i.id))"
);

/// batchDelete: soft-deletes live records, keeping their last payload; deleting a deleted or unknown
/// record changes nothing.
const DELETE_SQL: &str = counted!(
    "
WITH incoming AS (SELECT DISTINCT i.id FROM unnest($5::text[]) AS i(id)),
written AS (
    UPDATE nango.stored_records r
    SET deleted_at = now(), last_modified_at = now(), last_action = 'DELETED',
        cursor = nextval('nango.record_cursor'), last_job = $4
    FROM (SELECT i.id, CASE WHEN s.last_job = $4 THEN s.last_action END AS previous
          FROM incoming i
          JOIN LATERAL (SELECT t.last_job, t.last_action FROM nango.stored_records t
                        WHERE t.model = $2 AND t.connection = $3 AND t.external_id = i.id AND t.deleted_at IS NULL
                        LIMIT 1) s ON true
          ORDER BY i.id) d
    WHERE r.model = $2 AND r.connection = $3 AND r.external_id = d.id
    RETURNING r.last_action AS action, d.previous)"
);

/// Takes the per-model lock that keeps a model's cursors in commit order (held to commit) and marks where the
/// transaction's writes begin in cursor order.
pub fn lock_model(model: &str) -> Result<(), String> {
    batch_exec(
        "SELECT pg_advisory_xact_lock(hashtext('pg_nango records'), hashtext($1))",
        &[model.into()],
    )?;
    // Under the lock, every cursor this transaction draws for the model comes after the sequence's last
    // value: mark it for the delta reads (see nango.record_marks). Most writes of a minute find the mark
    // as low already and leave it.
    batch_exec(MARK_SQL, &[model.into()])
}

/// Marks where a transaction's writes of model `$1` begin in cursor order, in the mark of its minute.
const MARK_SQL: &str = "
INSERT INTO nango.record_marks AS m (model, until, after_cursor)
SELECT $1, date_trunc('minute', now()) + interval '1 minute',
       CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END
FROM nango.record_cursor s
ON CONFLICT (model, until) DO UPDATE SET after_cursor = excluded.after_cursor
WHERE m.after_cursor > excluded.after_cursor";

/// Adds one batch's count changes to the job's per-model result and, for a batch, its progress: `$6`
/// records of the model passed to the batch calls so far, `$7` requests the script made so far.
const COUNT_SQL: &str = "
UPDATE nango.jobs SET result = result || jsonb_build_object($2::text, jsonb_build_object(
    'added', coalesce((result -> $2 ->> 'added')::bigint, 0) + $3,
    'updated', coalesce((result -> $2 ->> 'updated')::bigint, 0) + $4,
    'deleted', coalesce((result -> $2 ->> 'deleted')::bigint, 0) + $5)),
    progress = CASE WHEN $6::bigint IS NULL THEN progress ELSE jsonb_build_object(
        'records', coalesce(progress -> 'records', '{}') || jsonb_build_object($2::text,
                   coalesce((progress -> 'records' ->> $2)::bigint, 0) + $6),
        'requests', $7::bigint,
        'last_batch_at', now()) END
WHERE id = $1";

/// Where a run stands when it writes a batch (`nango.jobs.progress`).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Records the script passed in the batch call.
    pub records: i64,
    /// Requests the script made through the proxy so far.
    pub requests: i64,
}

/// Adds `[added, updated, deleted]` to the job's counts for `model`, and a batch's progress.
pub fn add_counts(
    job: i64,
    model: &str,
    counts: [i64; 3],
    progress: Option<Progress>,
) -> Result<(), String> {
    batch_exec(
        COUNT_SQL,
        &[
            job.into(),
            model.into(),
            counts[0].into(),
            counts[1].into(),
            counts[2].into(),
            progress.map(|p| p.records).into(),
            progress.map(|p| p.requests).into(),
        ],
    )
}

/// Reads `[added, updated, deleted]` from a `counts` JSON array.
pub fn counts_of(value: &Value) -> [i64; 3] {
    let n = |i: usize| value.get(i).and_then(Value::as_i64).unwrap_or(0);
    [n(0), n(1), n(2)]
}

/// Whether nango.stored_records has no statistics: never analyzed since it was created or emptied by
/// `TRUNCATE` (`reltuples` is then -1). The table is looked up when the statement runs, so the plan kept
/// for it outlives a re-created extension.
const NO_STATISTICS_SQL: &str = "
SELECT to_jsonb(c.reltuples < 0) FROM pg_catalog.pg_class c
WHERE c.oid = pg_catalog.to_regclass('nango.stored_records')";

/// Gives nango.stored_records statistics when it has none (checked after every batch, through a plan kept
/// by the process). Without them the planner cannot tell a primary-key lookup from a scan of all of a
/// connection's records by another index (on a table it knows nothing of they look alike), and an ingest
/// slows down batch after batch until autovacuum analyzes the table: a first sync, or the first after a
/// `TRUNCATE` of the store, took fifteen times as long.
fn analyze_if_unknown() -> Result<(), String> {
    if batch_json(NO_STATISTICS_SQL, &[])? == Some(Value::Bool(true)) {
        exec("ANALYZE nango.stored_records", &[])?;
    }
    Ok(())
}

/// Whether the database is UTF-8: the jsonb built on the script's side holds its strings in UTF-8, which
/// only a UTF-8 database reads as they are.
pub fn database_is_utf8() -> bool {
    // SAFETY: reads the database's encoding, set once the backend connected to it.
    unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32 }
}

/// How a batch finds what is stored before it writes.
#[derive(Debug)]
pub struct Lookup<'a> {
    /// A batchSave first finds which records differ from the stored ones ([`PROBE_SQL`]) and sends only
    /// those.
    pub probe_first: bool,
    /// What the run knows of the model's stored records: a batchSave of records it shows to be new is
    /// inserted without looking them up ([`INSERT_NEW_SQL`]).
    pub fresh: &'a mut Freshness,
}

/// Writes one batch for a job, inside the caller's transaction, and adds its counts and `progress` to the
/// job.
pub fn write(
    op: SaveOp,
    model: &str,
    (connection, job, progress): (i64, i64, Progress),
    batch: &RecordBatch,
    lookup: Lookup,
) -> Result<Outcome, String> {
    let started = Instant::now();
    lock_model(model)?;
    // A batch looks up at most CHUNK stored rows by primary key. The planner, whose statistics lag behind
    // a table that grows during an ingest, would otherwise scan all of the connection's records per batch.
    batch_exec(
        "SELECT set_config('enable_seqscan', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true)",
        &[],
    )?;
    // Instead of a foreign key checked for every record: the connection is locked against deletion until
    // commit (its deletion removes its records, see nango._forget_connection_records).
    let alive = batch_json(
        "SELECT to_jsonb(count(*) = 1) FROM (SELECT 1 FROM nango.connections WHERE id = $1 FOR KEY SHARE) c",
        &[connection.into()],
    )?;
    if alive != Some(Value::Bool(true)) {
        return Err("the connection was deleted".into());
    }
    let insert_new = match op {
        SaveOp::Save if !batch.is_empty() && lookup.fresh.worth_checking() => {
            // Under the model's lock: no other writer can add a record before this batch commits.
            let stored_last = batch_json(LAST_CURSOR_SQL, &[connection.into(), model.into()])?;
            let ids = batch.records.iter().map(|r| r.id.as_str());
            lookup
                .fresh
                .admits(ids, stored_last.as_ref().and_then(Value::as_i64))
        }
        SaveOp::Save => false,
        SaveOp::Update | SaveOp::Delete => {
            lookup.fresh.written_otherwise();
            false
        }
    };
    let mut last_cursor = None;
    let utf8 = database_is_utf8();
    let mut outcome = Outcome {
        records: batch.len(),
        looked_up: !insert_new,
        ..Outcome::default()
    };
    fn ids<'a>(records: &[&'a OutgoingRecord]) -> Vec<&'a str> {
        records.iter().map(|r| r.id.as_str()).collect()
    }
    let write_sql = if insert_new {
        INSERT_NEW_SQL
    } else {
        statement(op)
    };
    for chunk in batch.records.chunks(CHUNK) {
        let hashes = |records: &[&OutgoingRecord]| {
            records
                .iter()
                .map(|r| pgrx::datum::Uuid::from_bytes(r.hash))
                .collect::<Vec<_>>()
        };
        let mut records: Vec<&OutgoingRecord> = chunk.iter().collect();
        if lookup.probe_first && op == SaveOp::Save && !insert_new {
            let differing: Value = own_row(
                "the records whose hash differs",
                batch_json(
                    PROBE_SQL,
                    &[
                        ids(&records).as_slice().into(),
                        hashes(&records).into(),
                        model.into(),
                        connection.into(),
                    ],
                )?,
            )?;
            records = differing
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| chunk.get(usize::try_from(n.as_u64()?).ok()?.checked_sub(1)?))
                .collect();
            if records.is_empty() {
                continue;
            }
        }
        // A record whose jsonb was built goes without its text.
        fn built(record: &OutgoingRecord, use_built: bool) -> Option<&[u8]> {
            record.jsonb.as_deref().filter(|_| use_built)
        }
        let use_built = op == SaveOp::Save && utf8;
        let texts: Vec<Option<&str>> = records
            .iter()
            .map(|r| built(r, use_built).is_none().then_some(r.json.as_str()))
            .collect();
        let values: Vec<Option<JsonbBytes>> = records
            .iter()
            .map(|r| built(r, use_built).map(JsonbBytes))
            .collect();
        outcome.prebuilt += values.iter().filter(|v| v.is_some()).count();
        let result: Value = own_row(
            "a batch's counts",
            batch_json(
                write_sql,
                &[
                    texts.into(),
                    model.into(),
                    connection.into(),
                    job.into(),
                    ids(&records).as_slice().into(),
                    hashes(&records).into(),
                    values.into(),
                ],
            )?,
        )?;
        let counts = counts_of(&result["counts"]);
        for (total, delta) in outcome.counts.iter_mut().zip(counts) {
            *total += delta;
        }
        outcome.written += result["written"].as_i64().unwrap_or(0);
        last_cursor = last_cursor.max(result["last_cursor"].as_i64());
        if let Some(missing) = result["missing"].as_array() {
            outcome
                .missing
                .extend(missing.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }
    if let (true, Some(last_cursor)) = (insert_new, last_cursor) {
        let ids = batch.records.iter().map(|r| r.id.as_str());
        lookup.fresh.inserted(ids, last_cursor);
    }
    add_counts(job, model, outcome.counts, Some(progress))?;
    analyze_if_unknown()?;
    outcome.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(outcome)
}
