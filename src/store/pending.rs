//! [`PendingHost`]: the host of a `validate-connection` script, which runs before its connection is stored.
//! The connection's metadata and credentials live in the run: what the script sets (`setMetadata`, a
//! refreshed OAuth2 token) is handed back to `nango.create_connection`, which stores it with the
//! connection. Logs go to the run's job as any run's do.

use pg_nango_core::records::batch::RecordBatch;
use pg_nango_core::script::{Host, SaveOp};
use serde_json::Value;

use super::host::SpiHost;

pub struct PendingHost {
    /// Logs and environment variables, which need no connection.
    pub inner: SpiHost,
    pub credentials: Value,
    pub metadata: Value,
}

impl Host for PendingHost {
    fn save(&mut self, _op: SaveOp, _model: &str, _batch: RecordBatch) -> Result<(), String> {
        Err("records can only be written by a sync run".into())
    }

    fn log(&mut self, level: &str, message: &str, payload_json: Option<&str>) {
        self.inner.log(level, message, payload_json);
    }

    fn metadata(&mut self) -> Result<String, String> {
        Ok(self.metadata.to_string())
    }

    fn set_metadata(&mut self, metadata_json: &str, merge: bool) -> Result<(), String> {
        let value: Value = serde_json::from_str(metadata_json).map_err(|e| e.to_string())?;
        let Value::Object(fields) = value else {
            return Err("metadata must be an object".into());
        };
        match (&mut self.metadata, merge) {
            (Value::Object(stored), true) => stored.extend(fields),
            (stored, _) => *stored = Value::Object(fields),
        }
        Ok(())
    }

    fn lock_credentials(&mut self) -> Result<Value, String> {
        // Nothing else can refresh a connection that is not stored yet.
        Ok(self.credentials.clone())
    }

    fn store_credentials(&mut self, credentials: &Value) -> Result<(), String> {
        self.credentials = credentials.clone();
        Ok(())
    }

    fn release_credentials(&mut self) {}

    fn environment_variables(&mut self) -> Result<Value, String> {
        self.inner.environment_variables()
    }
}
