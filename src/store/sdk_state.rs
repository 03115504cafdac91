//! What the newer SDK calls read and write: a page of a model's stored records (`listRecords`), the
//! connection's locks (`tryAcquireLock`, `releaseLock`), the run's integration (`getIntegration`) and the
//! environment variables (`getEnvironmentVariables`), and the merging strategy's marks (`setMergingStrategy`). Each function runs in the caller's transaction.

use std::collections::HashSet;
use std::sync::OnceLock;

use pg_nango_core::records::batch::RecordBatch;

use serde_json::Value;

use super::{exec, one_json};

/// A page of at most `limit` records of `model` of the connection after `cursor` (a record's
/// `_nango_metadata.cursor`), deleted ones included, as `{records, next_cursor}`.
pub fn list_records(
    connection: i64,
    model: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Value, String> {
    let after: i64 = match cursor {
        None => 0,
        Some(text) => text.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
            format!(
                "nango.listRecords: invalid cursor \"{}\"",
                text.chars().take(40).collect::<String>()
            )
        })?,
    };
    let page = one_json(
        "SELECT jsonb_build_object(
                    'records', coalesce(jsonb_agg(r.data || jsonb_build_object('_nango_metadata', nango._record_metadata(r))
                                                  ORDER BY r.cursor), '[]'),
                    'next_cursor', CASE WHEN count(*) = $4 THEN max(r.cursor)::text END)
         FROM (SELECT * FROM nango.stored_records s
               WHERE s.model = $1 AND s.connection = $2 AND s.cursor > $3
               ORDER BY s.cursor LIMIT $4) r",
        &[
            model.into(),
            connection.into(),
            after.into(),
            (limit as i64).into(),
        ],
    )?;
    Ok(page.unwrap_or_else(|| serde_json::json!({"records": [], "next_cursor": null})))
}

/// Who holds the locks a run takes: its job, or for a run without one (an action) this process at its start.
pub fn lock_owner(job: Option<i64>) -> String {
    static PROCESS: OnceLock<String> = OnceLock::new();
    match job {
        Some(job) => format!("job {job}"),
        None => PROCESS
            .get_or_init(|| {
                let started = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                format!("process {} {started}", std::process::id())
            })
            .clone(),
    }
}

/// Takes lock `key` of the connection for `owner` for `ttl_ms`: free, expired or already `owner`'s (whose
/// expiry is then pushed back). False when another owner holds it unexpired.
pub fn try_acquire_lock(
    connection: i64,
    key: &str,
    ttl_ms: u64,
    owner: &str,
) -> Result<bool, String> {
    let acquired = one_json(
        "INSERT INTO nango.locks AS l (connection, key, owner, expires_at)
         VALUES ($1, $2, $3, clock_timestamp() + $4 * interval '1 millisecond')
         ON CONFLICT (connection, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
         WHERE l.owner = excluded.owner OR l.expires_at <= clock_timestamp()
         RETURNING to_jsonb(true)",
        &[
            connection.into(),
            key.into(),
            owner.into(),
            (ttl_ms.min(i64::MAX as u64) as i64).into(),
        ],
    )?;
    Ok(acquired.is_some())
}

/// Releases lock `key` of the connection if `owner` holds it; whether it did.
pub fn release_lock(connection: i64, key: &str, owner: &str) -> Result<bool, String> {
    let released = one_json(
        "DELETE FROM nango.locks WHERE connection = $1 AND key = $2 AND owner = $3 RETURNING to_jsonb(true)",
        &[connection.into(), key.into(), owner.into()],
    )?;
    Ok(released.is_some())
}

/// Releases every lock `owner` holds (at the end of its run).
pub fn release_locks(owner: &str) -> Result<(), String> {
    exec("DELETE FROM nango.locks WHERE owner = $1", &[owner.into()])
}

/// The connection's integration as `getIntegration` starts from it (no client secret).
pub fn integration(connection: i64) -> Result<Value, String> {
    one_json(
        "SELECT jsonb_build_object('unique_key', i.unique_key, 'provider', i.provider,
                                   'display_name', p.definition ->> 'display_name',
                                   'auth_mode', p.definition ->> 'auth_mode',
                                   'client_id', i.client_id, 'created_at', i.created_at)
         FROM nango.connections c
         JOIN nango.integrations i ON i.unique_key = c.provider_config_key
         JOIN nango.providers p ON p.name = i.provider
         WHERE c.id = $1",
        &[connection.into()],
    )?
    .ok_or_else(|| "the connection no longer exists".to_string())
}

/// The environment variables as `[{name, value}]`, by name.
pub fn environment_variables() -> Result<Value, String> {
    Ok(one_json(
        "SELECT coalesce(jsonb_agg(jsonb_build_object('name', v.name, 'value', v.value) ORDER BY v.name), '[]')
         FROM nango.environment_variables v",
        &[],
    )?
    .unwrap_or_else(|| serde_json::json!([])))
}

/// The entry module of action `name` of the connection's integration.
pub fn action_entry(connection: i64, name: &str) -> Result<Option<String>, String> {
    Ok(one_json(
        "SELECT to_jsonb(ac.entry_file) FROM nango.action_configs ac
         JOIN nango.connections c ON c.provider_config_key = ac.provider_config_key
         WHERE c.id = $1 AND ac.name = $2",
        &[connection.into(), name.into()],
    )?
    .and_then(|entry| entry.as_str().map(str::to_string)))
}

/// The mark of `ignore_if_modified_after` for `model` of the connection: the cursor of its last change.
pub fn merging_mark(connection: i64, model: &str) -> Result<i64, String> {
    Ok(one_json(
        "SELECT to_jsonb(coalesce(max(cursor), 0)) FROM nango.stored_records WHERE model = $1 AND connection = $2",
        &[model.into(), connection.into()],
    )?
    .and_then(|mark| mark.as_i64())
    .unwrap_or(0))
}

/// `batch` without the records whose stored version was changed after `mark` by anything but job `job`
/// (`None` when there are none), and the ids of those records.
pub fn unmodified(
    connection: i64,
    model: &str,
    batch: &RecordBatch,
    mark: i64,
    job: i64,
) -> Result<(Option<RecordBatch>, Vec<String>), String> {
    let ids: Vec<&str> = batch.records.iter().map(|r| r.id.as_str()).collect();
    let modified = one_json(
        "SELECT coalesce(jsonb_agg(s.external_id), '[]') FROM nango.stored_records s
         WHERE s.model = $1 AND s.connection = $2 AND s.external_id = ANY ($3::text[])
           AND s.cursor > $4 AND s.last_job IS DISTINCT FROM $5",
        &[
            model.into(),
            connection.into(),
            ids.as_slice().into(),
            mark.into(),
            job.into(),
        ],
    )?;
    let modified: HashSet<String> = modified
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_string))
        .collect();
    if modified.is_empty() {
        return Ok((None, Vec::new()));
    }
    let kept = batch
        .records
        .iter()
        .filter(|r| !modified.contains(&r.id))
        .cloned()
        .collect();
    let mut skipped: Vec<String> = modified.into_iter().collect();
    skipped.sort();
    Ok((Some(RecordBatch { records: kept }), skipped))
}
