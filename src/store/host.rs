//! [`SpiHost`]: what a running script's `batchSave`, `log` and metadata calls do in Postgres. Each call is one
//! short transaction, so HTTP waits never hold a transaction open and what a run saved stays saved if it
//! later fails (as in Nango).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use pg_nango_core::records::batch::RecordBatch;
use pg_nango_core::records::fresh::Freshness;
use pg_nango_core::script::{Host, SaveOp};
use serde_json::Value;

use super::{batch_json, deletes, exec, one_json, records, sdk_state};
use crate::txn::run_txn;

/// Largest log message kept, in characters.
const MAX_LOG_MESSAGE: usize = 10_000;

/// How many log rows a run has written and dropped under `nango.max_logs_per_run`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogBudget {
    pub written: usize,
    pub dropped: usize,
    /// The row that says the limit was reached; it gets the final count at the end of the run.
    notice: Option<i64>,
}

pub struct SpiHost {
    /// The sync run's job; `None` for an action or a dry run.
    pub job_id: Option<i64>,
    /// What the logs of a run without a job belong to (`action github/write-file acme`).
    pub run_label: Option<String>,
    /// The sync's schedule row (0 for an action).
    pub sync_id: i64,
    pub connection: i64,
    /// Models with an open deletion window: their saved ids are remembered.
    pub open_windows: HashSet<String>,
    /// Models whose last batchSave in this run wrote more than half of its records: their next batchSave
    /// sends every record at once. The others (and a model's first batch) first look up which records
    /// differ, as in a re-sync most do not (see `records::write`).
    pub changing: HashSet<String>,
    /// A dry run collects what would be written here, by model, and stores nothing.
    pub dry_run: Option<BTreeMap<String, Vec<Value>>>,
    /// Log rows written and dropped so far.
    pub logs: LogBudget,
    /// What the run knows of each model's stored records: while it alone wrote them, a batch of new ids
    /// is inserted without looking them up (see `pg_nango_core::records::fresh`).
    pub fresh: HashMap<String, Freshness>,
    /// Models set to `ignore_if_modified_after`, with the cursor their last change had then.
    pub merging: HashMap<String, i64>,
    /// When the engine was ready and the script's function was called.
    pub script_started_at: Option<Instant>,
    /// Requests the script made through the proxy so far.
    pub requests: i64,
}

impl SpiHost {
    /// A host for a sync run's job.
    pub fn for_job(
        job_id: i64,
        sync_id: i64,
        connection: i64,
        open_windows: Vec<String>,
    ) -> SpiHost {
        SpiHost {
            job_id: Some(job_id),
            run_label: None,
            sync_id,
            connection,
            open_windows: open_windows.into_iter().collect(),
            changing: HashSet::new(),
            dry_run: None,
            logs: LogBudget::default(),
            fresh: HashMap::new(),
            merging: HashMap::new(),
            script_started_at: None,
            requests: 0,
        }
    }

    /// Appends a row to the run's logs in the current transaction; returns its id.
    fn append_log(
        &self,
        level: &str,
        message: &str,
        payload_json: Option<&str>,
    ) -> Result<Option<i64>, String> {
        let id = batch_json(
            "INSERT INTO nango.logs (job, run, level, message, payload) VALUES ($1, $2, $3, $4, $5::jsonb)
             RETURNING to_jsonb(id)",
            &[
                self.job_id.into(),
                self.run_label.as_deref().into(),
                level.into(),
                message.into(),
                payload_json.into(),
            ],
        )?;
        Ok(id.and_then(|id| id.as_i64()))
    }

    /// Appends a row to the run's logs, in the current transaction when `in_txn`, else in its own; returns
    /// its id (`None` if it could not be written). In the current transaction the row stands or falls
    /// with what that transaction writes, and a Postgres ERROR of its INSERT fails the transaction too.
    fn insert_log(
        &self,
        (level, message, payload_json): (&str, &str, Option<&str>),
        in_txn: bool,
    ) -> Option<i64> {
        // SPI without a transaction would crash the process: a line logged outside one gets its own.
        // SAFETY: reads the state of the backend's transaction.
        if in_txn && unsafe { pgrx::pg_sys::IsTransactionState() } {
            return self.append_log(level, message, payload_json).ok().flatten();
        }
        run_txn(|| self.append_log(level, message, payload_json))
            .ok()
            .flatten()
    }

    /// Logs a line unless the run has written `nango.max_logs_per_run` already (see [`Self::insert_log`]
    /// for `in_txn`).
    fn log_line(&mut self, level: &str, message: &str, payload_json: Option<&str>, in_txn: bool) {
        let limit = crate::guc::max_logs_per_run();
        if self.logs.written >= limit {
            self.logs.dropped += 1;
            if self.logs.notice.is_none() {
                let notice = format!(
                    "nango.max_logs_per_run ({limit}) reached: later log lines of this run are dropped"
                );
                self.logs.notice = self.insert_log(("warn", &notice, None), in_txn);
            }
            return;
        }
        self.logs.written += 1;
        let message: String = message.chars().take(MAX_LOG_MESSAGE).collect();
        self.insert_log((level, &message, payload_json), in_txn);
    }

    /// Writes the number of log lines the run dropped into the row that announced the limit; called once
    /// the script has ended.
    pub fn finish_logs(&mut self) {
        let (Some(notice), dropped) = (self.logs.notice, self.logs.dropped) else {
            return;
        };
        let message = format!(
            "{dropped} log lines of this run were dropped (nango.max_logs_per_run = {})",
            crate::guc::max_logs_per_run()
        );
        let _ = run_txn(|| {
            exec(
                "UPDATE nango.logs SET message = $2, payload = jsonb_build_object('dropped', $3::bigint) WHERE id = $1",
                &[
                    notice.into(),
                    message.as_str().into(),
                    (dropped as i64).into(),
                ],
            )
        });
    }

    /// Ends the run's side of the SDK: releases the locks it still holds and writes the count of dropped
    /// log lines. Called once the script has ended.
    pub fn finish(&mut self) {
        let owner = sdk_state::lock_owner(self.job_id);
        let _ = run_txn(|| sdk_state::release_locks(&owner));
        self.finish_logs();
    }

    /// What a dry run collected, by model: one record per id, the last written, in the order of those last
    /// writes. Deduplicated once here rather than on every write.
    pub fn take_dry_run(&mut self) -> BTreeMap<String, Vec<Value>> {
        let mut collected = self.dry_run.take().unwrap_or_default();
        for records in collected.values_mut() {
            let mut seen = HashSet::new();
            let mut kept: Vec<Value> = records
                .drain(..)
                .rev()
                .filter(|record| seen.insert(record.get("id").map(Value::to_string)))
                .collect();
            kept.reverse();
            *records = kept;
        }
        collected
    }

    /// Logs what a write did, as Nango's "batch saved" lines, in the write's transaction; batchUpdate warns
    /// about ids not stored.
    fn log_outcome(&mut self, op: SaveOp, model: &str, outcome: &records::Outcome) {
        let [added, updated, deleted] = outcome.counts;
        let unchanged = outcome.records as i64 - outcome.written - outcome.missing.len() as i64;
        let payload = serde_json::json!({
            "model": model, "records": outcome.records, "written": outcome.written,
            "unchanged": unchanged, "added": added, "updated": updated, "deleted": deleted,
            "prebuilt": outcome.prebuilt, "looked_up": outcome.looked_up, "ms": (outcome.elapsed_ms * 100.0).round() / 100.0,
        });
        let message = format!(
            "{} {model}: {} records, {} written, {unchanged} unchanged",
            op.method(),
            outcome.records,
            outcome.written
        );
        self.log_line("info", &message, Some(&payload.to_string()), true);
        if !outcome.missing.is_empty() {
            let shown: Vec<&str> = outcome
                .missing
                .iter()
                .take(10)
                .map(String::as_str)
                .collect();
            let message = format!(
                "batchUpdate {model}: {} records are not stored (or are deleted) and were not updated: {}{}",
                outcome.missing.len(),
                shown.join(", "),
                if outcome.missing.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            );
            self.log_line("warn", &message, None, true);
        }
    }

    fn job(&self) -> Result<i64, String> {
        self.job_id
            .ok_or_else(|| "records can only be written by a sync run".to_string())
    }
}

impl Host for SpiHost {
    fn save(&mut self, op: SaveOp, model: &str, batch: RecordBatch) -> Result<(), String> {
        if let Some(collected) = &mut self.dry_run {
            let action = match op {
                SaveOp::Save => None,
                SaveOp::Update => Some("UPDATED"),
                SaveOp::Delete => Some("DELETED"),
            };
            let list = collected.entry(model.to_string()).or_default();
            for record in &batch.records {
                let mut record: Value =
                    serde_json::from_str(&record.json).map_err(|e| e.to_string())?;
                if let (Some(action), Value::Object(fields)) = (action, &mut record) {
                    fields.insert(
                        "_nango_metadata".into(),
                        serde_json::json!({"last_action": action}),
                    );
                }
                list.push(record);
            }
            return Ok(());
        }
        let (job, sync, connection) = (self.job()?, self.sync_id, self.connection);
        let requests = self.requests;
        let remember = self.open_windows.contains(model) && op != SaveOp::Delete;
        let probe_first = !self.changing.contains(model);
        let mut fresh = self.fresh.remove(model).unwrap_or_default();
        let mark = self.merging.get(model).copied();
        let mark = mark.filter(|_| op != SaveOp::Delete);
        // The lines saying what the write did are written in its transaction: one commit less per batch.
        let budget = self.logs;
        let outcome = run_txn(|| {
            let (kept, skipped) = match mark {
                Some(mark) => sdk_state::unmodified(connection, model, &batch, mark, job)?,
                None => (None, Vec::new()),
            };
            let written = kept.as_ref().unwrap_or(&batch);
            let progress = records::Progress {
                records: batch.len() as i64,
                requests,
            };
            let lookup = records::Lookup {
                probe_first,
                fresh: &mut fresh,
            };
            let outcome = records::write(op, model, (connection, job, progress), written, lookup)?;
            if remember {
                let ids: Vec<&str> = batch.records.iter().map(|r| r.id.as_str()).collect();
                deletes::mark_seen(sync, connection, model, &ids)?;
            }
            if !skipped.is_empty() {
                let message = format!(
                    "{} {model}: {} records were changed after the merging strategy was set and were not overwritten: {}",
                    op.method(),
                    skipped.len(),
                    skipped
                        .iter()
                        .take(10)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                self.log_line("warn", &message, None, true);
            }
            self.log_outcome(op, model, &outcome);
            Ok(outcome)
        });
        let outcome = match outcome {
            Ok(outcome) => {
                self.fresh.insert(model.to_string(), fresh);
                outcome
            }
            Err(e) => {
                // Its lines were rolled back with it, and what it may have inserted.
                self.logs = budget;
                self.fresh.insert(model.to_string(), Freshness::Shared);
                return Err(format!("could not save {model} records: {e}"));
            }
        };
        if op == SaveOp::Save {
            if outcome.written * 2 > outcome.records as i64 {
                self.changing.insert(model.to_string());
            } else {
                self.changing.remove(model);
            }
        }
        Ok(())
    }

    fn request_made(&mut self) {
        self.requests += 1;
    }

    fn script_started(&mut self) {
        self.script_started_at = Some(Instant::now());
    }

    fn builds_jsonb(&mut self, model: &str) -> bool {
        // A batch sent whole (see `changing`); a dry run stores nothing.
        self.dry_run.is_none() && self.changing.contains(model) && records::database_is_utf8()
    }

    fn log(&mut self, level: &str, message: &str, payload_json: Option<&str>) {
        self.log_line(level, message, payload_json, false);
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

    fn lock_credentials(&mut self) -> Result<Value, String> {
        let connection = self.connection;
        run_txn(|| {
            exec(
                "SELECT pg_advisory_lock(hashtext('pg_nango credentials'), $1::int)",
                &[connection.into()],
            )
        })?;
        // A new transaction, so a refresh committed while this one waited is seen.
        let credentials = run_txn(|| {
            one_json(
                "SELECT (SELECT credentials FROM nango.credentials WHERE connection = $1)",
                &[connection.into()],
            )
        });
        match credentials {
            Ok(credentials) => Ok(credentials.unwrap_or_default()),
            Err(error) => {
                self.release_credentials();
                Err(error)
            }
        }
    }

    fn store_credentials(&mut self, credentials: &Value) -> Result<(), String> {
        let connection = self.connection;
        let stored = run_txn(|| {
            exec(
                "UPDATE nango.credentials SET credentials = $2, updated_at = now() WHERE connection = $1",
                &[connection.into(), pgrx::JsonB(credentials.clone()).into()],
            )
        })
        .map_err(|e| format!("could not store the refreshed OAuth2 token: {e}"));
        self.release_credentials();
        stored
    }

    fn release_credentials(&mut self) {
        let connection = self.connection;
        let _ = run_txn(|| {
            exec(
                "SELECT pg_advisory_unlock(hashtext('pg_nango credentials'), $1::int)",
                &[connection.into()],
            )
        });
    }

    fn checkpoint(&mut self) -> Result<Value, String> {
        let sync = self.sync_id;
        run_txn(|| {
            one_json(
                "SELECT (SELECT checkpoint FROM nango.checkpoints WHERE sync = $1)",
                &[sync.into()],
            )
        })
        .map(Option::unwrap_or_default)
    }

    fn set_checkpoint(&mut self, checkpoint: Option<&Value>) -> Result<(), String> {
        if self.dry_run.is_some() {
            return Ok(());
        }
        let sync = self.sync_id;
        run_txn(|| {
            match checkpoint {
            Some(checkpoint) => exec(
                "INSERT INTO nango.checkpoints AS c (sync, checkpoint) VALUES ($1, $2)
                 ON CONFLICT (sync) DO UPDATE SET checkpoint = excluded.checkpoint, version = c.version + 1, updated_at = now()",
                &[sync.into(), pgrx::JsonB(checkpoint.clone()).into()],
            ),
            None => exec("DELETE FROM nango.checkpoints WHERE sync = $1", &[sync.into()]),
        }
        })
    }

    fn track_deletes_start(&mut self, model: &str) -> Result<(), String> {
        if self.dry_run.is_some() {
            self.open_windows.insert(model.to_string());
            return Ok(());
        }
        let (sync, connection, job) = (self.sync_id, self.connection, self.job()?);
        run_txn(|| deletes::open_window(sync, connection, model, job))?;
        self.open_windows.insert(model.to_string());
        Ok(())
    }

    fn track_deletes_end(&mut self, model: &str) -> Result<Vec<String>, String> {
        if self.dry_run.is_some() {
            // A dry run reports nothing as deleted: it does not compare with what is stored.
            return if self.open_windows.remove(model) {
                Ok(Vec::new())
            } else {
                Err(format!(
                    "No track deletes starting point found for model '{model}'"
                ))
            };
        }
        let (sync, connection, job) = (self.sync_id, self.connection, self.job()?);
        let deleted = run_txn(|| deletes::close_window(sync, model, connection, job))?;
        self.open_windows.remove(model);
        deleted.ok_or_else(|| {
            format!("No track deletes starting point found for model '{model}'; call nango.trackDeletesStart('{model}') first")
        })
    }

    fn list_records(
        &mut self,
        model: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Value, String> {
        let connection = self.connection;
        run_txn(|| sdk_state::list_records(connection, model, cursor, limit))
    }

    fn try_acquire_lock(&mut self, key: &str, ttl_ms: u64) -> Result<bool, String> {
        let (connection, owner) = (self.connection, sdk_state::lock_owner(self.job_id));
        run_txn(|| sdk_state::try_acquire_lock(connection, key, ttl_ms, &owner))
    }

    fn release_lock(&mut self, key: &str) -> Result<bool, String> {
        let (connection, owner) = (self.connection, sdk_state::lock_owner(self.job_id));
        run_txn(|| sdk_state::release_lock(connection, key, &owner))
    }

    fn integration(&mut self) -> Result<Value, String> {
        let connection = self.connection;
        run_txn(|| sdk_state::integration(connection))
    }

    fn environment_variables(&mut self) -> Result<Value, String> {
        run_txn(sdk_state::environment_variables)
    }

    fn set_merging_strategy(&mut self, model: &str, strategy: &str) -> Result<(), String> {
        if strategy == "override" || self.dry_run.is_some() {
            self.merging.remove(model);
            return Ok(());
        }
        let connection = self.connection;
        let mark = run_txn(|| sdk_state::merging_mark(connection, model))?;
        self.merging.insert(model.to_string(), mark);
        Ok(())
    }

    fn action_entry(&mut self, name: &str) -> Result<Option<String>, String> {
        let connection = self.connection;
        run_txn(|| sdk_state::action_entry(connection, name))
    }

    fn records_by_ids(
        &mut self,
        model: &str,
        ids: &[String],
    ) -> Result<serde_json::Map<String, Value>, String> {
        let connection = self.connection;
        let found = run_txn(|| {
            one_json(
                "SELECT coalesce(jsonb_object_agg(r.external_id,
                            r.data || jsonb_build_object('_nango_metadata', nango._record_metadata(r))), '{}')
                 FROM nango.stored_records r
                 WHERE r.model = $1 AND r.connection = $2
                   AND r.external_id IN (SELECT jsonb_array_elements_text($3))",
                &[
                    model.into(),
                    connection.into(),
                    pgrx::JsonB(serde_json::json!(ids)).into(),
                ],
            )
        })?;
        match found {
            Some(Value::Object(map)) => Ok(map),
            _ => Ok(serde_json::Map::new()),
        }
    }
}
