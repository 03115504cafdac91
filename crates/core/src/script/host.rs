//! The script's window on Postgres: [`Host`], the calls a run makes on its caller's thread (record writes,
//! logs, metadata, credentials, checkpoints, locks), and [`dispatch`], which turns the synchronous
//! `host.call(op, argsJson)` of `sdk.js` into those calls. Hosts (the extension's, the tests') depend on
//! this interface only, not on the engine.

use serde_json::json;

use super::sdk_calls;
use crate::providers::ConnectionInfo;
use crate::records::batch::RecordBatch;

/// What a script's record call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOp {
    Save,
    Update,
    Delete,
}

impl SaveOp {
    /// The SDK method of the write, as logs and errors name it.
    pub fn method(self) -> &'static str {
        match self {
            SaveOp::Save => "batchSave",
            SaveOp::Update => "batchUpdate",
            SaveOp::Delete => "batchDelete",
        }
    }
}

/// The script's window on Postgres. Every call is made on the run's thread, in the order the script made it.
///
/// The calls only a sync makes (checkpoints, deletion windows, stored records) default to an error, so a
/// host for actions leaves them out. A new call must also be forwarded by
/// [`deferred::DeferredWrites`](super::deferred::DeferredWrites) to the run's thread, or scripts get its
/// default.
pub trait Host {
    /// Called once the engine is ready and the entry module loaded, right before the script's function is
    /// called: the end of a run's fixed start-up cost (see `nango.jobs.phases`).
    fn script_started(&mut self) {}
    /// Writes one validated batch of `model` (ids unique).
    fn save(&mut self, op: SaveOp, model: &str, batch: RecordBatch) -> Result<(), String>;
    /// Writes the batch now or later ([`deferred::DeferredWrites`](super::deferred::DeferredWrites));
    /// `stack` is the script's stack at the call, for the error of a later write.
    fn defer_save(
        &mut self,
        op: SaveOp,
        model: &str,
        batch: RecordBatch,
        _stack: String,
    ) -> Result<(), String> {
        self.save(op, model, batch)
    }
    /// Waits for the writes [`Host::defer_save`] deferred; the error of the first that failed.
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// The error of a deferred write known to have failed by now, without waiting for the one in flight.
    fn failed_write(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Whether the next batchSave of `model` will send its records' contents to the database (most of
    /// its last batch was written), so that their `jsonb` is worth building with the batch
    /// ([`crate::records::jsonb`]). A batch whose records mostly are stored unchanged is sent as ids and
    /// hashes first, and building it would be wasted.
    fn builds_jsonb(&mut self, _model: &str) -> bool {
        false
    }
    /// Appends a line to the run's log.
    fn log(&mut self, level: &str, message: &str, payload_json: Option<&str>);
    /// The script sent a request through the proxy (counted in the run's progress).
    fn request_made(&mut self) {}
    /// The connection's metadata as JSON.
    fn metadata(&mut self) -> Result<String, String>;
    /// Replaces (`merge = false`) or shallow-merges the connection's metadata.
    fn set_metadata(&mut self, metadata_json: &str, merge: bool) -> Result<(), String>;
    /// Starts an OAuth2 refresh of the connection: takes a lock that serialises refreshes (held until
    /// [`Host::store_credentials`] or [`Host::release_credentials`]) and returns the credentials as they are
    /// now, since another run may have refreshed them while this one waited.
    fn lock_credentials(&mut self) -> Result<serde_json::Value, String>;
    /// Stores refreshed credentials and releases the lock.
    fn store_credentials(&mut self, credentials: &serde_json::Value) -> Result<(), String>;
    /// Releases the lock without storing anything.
    fn release_credentials(&mut self);
    /// The sync's checkpoint for this connection (JSON `null` when there is none).
    fn checkpoint(&mut self) -> Result<serde_json::Value, String> {
        Err(SYNC_ONLY.into())
    }
    /// Stores the checkpoint (`Some`) or clears it (`None`).
    fn set_checkpoint(&mut self, _checkpoint: Option<&serde_json::Value>) -> Result<(), String> {
        Err(SYNC_ONLY.into())
    }
    /// Opens a deletion window for `model` unless one is open (it may come from an earlier run).
    fn track_deletes_start(&mut self, _model: &str) -> Result<(), String> {
        Err(SYNC_ONLY.into())
    }
    /// Closes the window of `model`: its records not saved since the window opened are marked deleted.
    /// Returns their ids.
    fn track_deletes_end(&mut self, _model: &str) -> Result<Vec<String>, String> {
        Err(SYNC_ONLY.into())
    }
    /// The stored records of `model` among `ids`, as id → record (with `_nango_metadata`).
    fn records_by_ids(
        &mut self,
        _model: &str,
        _ids: &[String],
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        Err(SYNC_ONLY.into())
    }
    /// A page of at most `limit` stored records of `model` (deleted ones included) after `cursor`, in cursor
    /// order, as `{records, next_cursor}` (`next_cursor` null on the last page).
    fn list_records(
        &mut self,
        _model: &str,
        _cursor: Option<&str>,
        _limit: usize,
    ) -> Result<serde_json::Value, String> {
        Err(SYNC_ONLY.into())
    }
    /// Takes the connection's lock `key` for this run for `ttl_ms` (or extends it when this run holds it);
    /// false when another run holds it unexpired.
    fn try_acquire_lock(&mut self, _key: &str, _ttl_ms: u64) -> Result<bool, String> {
        Err(NOT_HERE.into())
    }
    /// Releases the connection's lock `key` if this run holds it; false otherwise.
    fn release_lock(&mut self, _key: &str) -> Result<bool, String> {
        Err(NOT_HERE.into())
    }
    /// The run's integration: `unique_key`, `provider`, `display_name`, `auth_mode`, `client_id`,
    /// `created_at`.
    fn integration(&mut self) -> Result<serde_json::Value, String> {
        Err(NOT_HERE.into())
    }
    /// The environment variables, as `[{name, value}]`.
    fn environment_variables(&mut self) -> Result<serde_json::Value, String> {
        Err(NOT_HERE.into())
    }
    /// Sets how the run's later writes of `model` merge: `override` (the default), or
    /// `ignore_if_modified_after`, which leaves alone every stored record modified after this call by
    /// anything but this run.
    fn set_merging_strategy(&mut self, _model: &str, _strategy: &str) -> Result<(), String> {
        Err(SYNC_ONLY.into())
    }
    /// The entry module of action `name` of the run's integration, `None` when there is no such action.
    fn action_entry(&mut self, _name: &str) -> Result<Option<String>, String> {
        Err(NOT_HERE.into())
    }
}

const NOT_HERE: &str = "this call is not available in this run";
const SYNC_ONLY: &str = "this call is only available in a sync";

/// The synchronous host calls `sdk.js` makes through `host.call(op, argsJson)`: the arguments come as a JSON
/// array and the result goes back as JSON text.
pub(super) fn dispatch(
    host: &mut dyn Host,
    connection: &ConnectionInfo,
    op: &str,
    args: &str,
) -> Result<String, String> {
    let args: Vec<serde_json::Value> =
        serde_json::from_str(args).map_err(|e| format!("invalid arguments to {op}: {e}"))?;
    let text = |i: usize| args.get(i).and_then(|v| v.as_str()).unwrap_or_default();
    let result = match op {
        "getMetadata" => serde_json::from_str(&host.metadata()?).unwrap_or_default(),
        "setMetadata" | "updateMetadata" => {
            let metadata = args.first().cloned().unwrap_or_default();
            host.set_metadata(&metadata.to_string(), op == "updateMetadata")?;
            serde_json::Value::Null
        }
        "getConnection" => {
            let seen = crate::providers::auth::as_seen(connection.clone());
            json!({
                "connection_id": seen.connection_id,
                "provider_config_key": seen.provider_config_key,
                "connection_config": seen.connection_config,
                "credentials": seen.credentials,
                "metadata": serde_json::from_str::<serde_json::Value>(&host.metadata()?).unwrap_or_default(),
            })
        }
        "getCheckpoint" => host.checkpoint()?,
        "saveCheckpoint" => {
            host.set_checkpoint(args.first())?;
            serde_json::Value::Null
        }
        "clearCheckpoint" => {
            host.set_checkpoint(None)?;
            serde_json::Value::Null
        }
        "trackDeletesStart" => {
            host.track_deletes_start(text(0))?;
            serde_json::Value::Null
        }
        "trackDeletesEnd" => json!(host.track_deletes_end(text(0))?),
        "getRecordsByIds" => {
            let ids: Vec<String> = args
                .get(1)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .map(|id| id.as_str().map_or_else(|| id.to_string(), str::to_string))
                .collect();
            serde_json::Value::Object(host.records_by_ids(text(0), &ids)?)
        }
        _ => match sdk_calls::dispatch(host, op, &args) {
            Some(result) => result?,
            None => return Err(format!("unknown host call {op}")),
        },
    };
    Ok(result.to_string())
}
