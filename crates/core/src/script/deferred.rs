//! [`DeferredWrites`]: the host a script sees, which lets `batchSave`, `batchUpdate` and `batchDelete`
//! resolve once their records are checked and copied out of the engine, and writes them a moment later,
//! while the script waits on its next HTTP request (which runs on another thread, see `http`). A sync that
//! fetches a page, saves it and fetches the next then has the next page in flight while the last one is
//! written, instead of one after the other.
//!
//! Why a script cannot tell (beyond timing) that a write was deferred:
//! - Writes happen in call order: there is one queue, written front to back on the run's thread.
//! - Every host call other than a write or a log writes the queue first: whatever reads or changes state
//!   the writes affect (`getRecordsByIds`, `listRecords`, checkpoints, metadata, deletion windows, locks,
//!   credentials) sees every write made before it, as it would have. So does the end of the run, which
//!   writes the queue before the job ends.
//! - A log line written while writes are queued is queued behind them, so the run's logs keep their order
//!   (each write logs what it did).
//! - A write that fails fails the run with the error the write itself would have thrown, from the place of
//!   the script's call (`could not save … (at file:line:col)`). The queue after it is dropped, and every
//!   later host call returns that error without doing anything, so nothing the script did after the write
//!   (a `saveCheckpoint`, another batch) is stored. What a script loses is the chance to catch that error
//!   around its `batchSave`; as in Nango, records written before the failure stay written.
//!
//! Memory: at most one batch is queued (a second write first writes the first), so the queue holds at
//! most one batch (bounded by the run's memory limit, as the batch itself) and [`MAX_QUEUED_LOGS`] lines.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use serde_json::{Map, Value};

use super::{Host, SaveOp};
use crate::records::batch::RecordBatch;

/// Log lines queued behind a write before the write is made to let them through.
pub const MAX_QUEUED_LOGS: usize = 1000;

enum Queued {
    Write {
        op: SaveOp,
        model: String,
        batch: RecordBatch,
        /// The JavaScript stack of the script's call, for the error should the write fail.
        stack: String,
    },
    Log {
        level: String,
        message: String,
        payload: Option<String>,
    },
}

/// A write that failed: its error, and the stack of the script's call that asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedWrite {
    pub message: String,
    pub stack: String,
}

/// Defers the writes of `inner` (see the module's documentation).
pub struct DeferredWrites {
    inner: Rc<RefCell<dyn Host>>,
    queue: VecDeque<Queued>,
    /// Log lines in `queue`.
    queued_logs: usize,
    failed: Option<FailedWrite>,
}

impl DeferredWrites {
    pub fn new(inner: Rc<RefCell<dyn Host>>) -> Self {
        DeferredWrites {
            inner,
            queue: VecDeque::new(),
            queued_logs: 0,
            failed: None,
        }
    }

    /// The write that failed, if one did.
    pub fn failure(&self) -> Option<&FailedWrite> {
        self.failed.as_ref()
    }

    fn refused(&self) -> Result<(), String> {
        match &self.failed {
            Some(failed) => Err(failed.message.clone()),
            None => Ok(()),
        }
    }

    /// Runs `call` on the inner host once the queue is written.
    fn after_writes<R>(
        &mut self,
        call: impl FnOnce(&mut dyn Host) -> Result<R, String>,
    ) -> Result<R, String> {
        self.flush()?;
        call(&mut *self.inner.borrow_mut())
    }
}

impl Host for DeferredWrites {
    fn script_started(&mut self) {
        self.inner.borrow_mut().script_started();
    }

    fn save(&mut self, op: SaveOp, model: &str, batch: RecordBatch) -> Result<(), String> {
        self.defer_save(op, model, batch, String::new())
    }

    fn defer_save(
        &mut self,
        op: SaveOp,
        model: &str,
        batch: RecordBatch,
        stack: String,
    ) -> Result<(), String> {
        // One batch at most waits: the one before is written first.
        self.flush()?;
        self.queue.push_back(Queued::Write {
            op,
            model: model.to_string(),
            batch,
            stack,
        });
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.refused()?;
        while let Some(queued) = self.queue.pop_front() {
            match queued {
                Queued::Write {
                    op,
                    model,
                    batch,
                    stack,
                } => {
                    if let Err(message) = self.inner.borrow_mut().save(op, &model, batch) {
                        // What the script did after this call is not stored, its log lines included: the
                        // call would have thrown before them.
                        self.queue.clear();
                        self.queued_logs = 0;
                        self.failed = Some(FailedWrite {
                            message: message.clone(),
                            stack,
                        });
                        return Err(message);
                    }
                }
                Queued::Log {
                    level,
                    message,
                    payload,
                } => {
                    self.queued_logs -= 1;
                    self.inner
                        .borrow_mut()
                        .log(&level, &message, payload.as_deref());
                }
            }
        }
        Ok(())
    }

    fn log(&mut self, level: &str, message: &str, payload_json: Option<&str>) {
        if self.queue.is_empty() {
            self.inner.borrow_mut().log(level, message, payload_json);
            return;
        }
        self.queue.push_back(Queued::Log {
            level: level.to_string(),
            message: message.to_string(),
            payload: payload_json.map(str::to_string),
        });
        self.queued_logs += 1;
        if self.queued_logs >= MAX_QUEUED_LOGS {
            // A failure is kept and reported by the next call and at the end of the run.
            let _ = self.flush();
        }
    }

    fn metadata(&mut self) -> Result<String, String> {
        self.after_writes(|host| host.metadata())
    }

    fn set_metadata(&mut self, metadata_json: &str, merge: bool) -> Result<(), String> {
        self.after_writes(|host| host.set_metadata(metadata_json, merge))
    }

    fn lock_credentials(&mut self) -> Result<Value, String> {
        self.after_writes(|host| host.lock_credentials())
    }

    fn store_credentials(&mut self, credentials: &Value) -> Result<(), String> {
        self.after_writes(|host| host.store_credentials(credentials))
    }

    fn release_credentials(&mut self) {
        // Only ever after a lock_credentials, which wrote the queue.
        self.inner.borrow_mut().release_credentials();
    }

    fn checkpoint(&mut self) -> Result<Value, String> {
        self.after_writes(|host| host.checkpoint())
    }

    fn set_checkpoint(&mut self, checkpoint: Option<&Value>) -> Result<(), String> {
        self.after_writes(|host| host.set_checkpoint(checkpoint))
    }

    fn track_deletes_start(&mut self, model: &str) -> Result<(), String> {
        self.after_writes(|host| host.track_deletes_start(model))
    }

    fn track_deletes_end(&mut self, model: &str) -> Result<Vec<String>, String> {
        self.after_writes(|host| host.track_deletes_end(model))
    }

    fn records_by_ids(
        &mut self,
        model: &str,
        ids: &[String],
    ) -> Result<Map<String, Value>, String> {
        self.after_writes(|host| host.records_by_ids(model, ids))
    }

    fn list_records(
        &mut self,
        model: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Value, String> {
        self.after_writes(|host| host.list_records(model, cursor, limit))
    }

    fn try_acquire_lock(&mut self, key: &str, ttl_ms: u64) -> Result<bool, String> {
        self.after_writes(|host| host.try_acquire_lock(key, ttl_ms))
    }

    fn release_lock(&mut self, key: &str) -> Result<bool, String> {
        self.after_writes(|host| host.release_lock(key))
    }

    fn integration(&mut self) -> Result<Value, String> {
        self.after_writes(|host| host.integration())
    }

    fn environment_variables(&mut self) -> Result<Value, String> {
        self.after_writes(|host| host.environment_variables())
    }

    fn set_merging_strategy(&mut self, model: &str, strategy: &str) -> Result<(), String> {
        self.after_writes(|host| host.set_merging_strategy(model, strategy))
    }

    fn action_entry(&mut self, name: &str) -> Result<Option<String>, String> {
        self.after_writes(|host| host.action_entry(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::OutgoingRecord;

    /// Records what reaches it, in order; refuses a batch with a record whose id is `bad`.
    #[derive(Default)]
    struct Recorder {
        events: Vec<String>,
    }

    impl Host for Recorder {
        fn save(&mut self, op: SaveOp, model: &str, batch: RecordBatch) -> Result<(), String> {
            if batch.records.iter().any(|r| r.id == "bad") {
                return Err(format!("could not save {model} records: refused"));
            }
            self.events
                .push(format!("{} {model} {}", op.method(), batch.len()));
            Ok(())
        }
        fn log(&mut self, _level: &str, message: &str, _payload: Option<&str>) {
            self.events.push(format!("log {message}"));
        }
        fn metadata(&mut self) -> Result<String, String> {
            self.events.push("metadata".into());
            Ok("{}".into())
        }
        fn set_metadata(&mut self, _json: &str, _merge: bool) -> Result<(), String> {
            Ok(())
        }
        fn lock_credentials(&mut self) -> Result<Value, String> {
            Ok(Value::Null)
        }
        fn store_credentials(&mut self, _credentials: &Value) -> Result<(), String> {
            Ok(())
        }
        fn release_credentials(&mut self) {}
        fn set_checkpoint(&mut self, _checkpoint: Option<&Value>) -> Result<(), String> {
            self.events.push("checkpoint".into());
            Ok(())
        }
    }

    fn batch(ids: &[&str]) -> RecordBatch {
        RecordBatch {
            records: ids
                .iter()
                .map(|id| OutgoingRecord::new(id.to_string(), format!(r#"{{"id":"{id}"}}"#)))
                .collect(),
        }
    }

    fn hosts() -> (Rc<RefCell<Recorder>>, DeferredWrites) {
        let recorder = Rc::new(RefCell::new(Recorder::default()));
        let deferred = DeferredWrites::new(recorder.clone());
        (recorder, deferred)
    }

    #[test]
    fn writes_wait_for_the_next_call_and_keep_their_order_with_logs() {
        let (recorder, mut host) = hosts();
        host.defer_save(SaveOp::Save, "M", batch(&["a", "b"]), String::new())
            .unwrap();
        host.log("info", "after the first", None);
        assert!(recorder.borrow().events.is_empty(), "nothing written yet");
        // A second write lets the first through: never more than one batch waits.
        host.defer_save(SaveOp::Delete, "M", batch(&["a"]), String::new())
            .unwrap();
        assert_eq!(
            recorder.borrow().events,
            ["batchSave M 2", "log after the first"]
        );
        host.metadata().unwrap();
        assert_eq!(
            recorder.borrow().events[2..],
            ["batchDelete M 1", "metadata"]
        );
        host.log("info", "direct", None);
        assert_eq!(recorder.borrow().events[4], "log direct");
    }

    #[test]
    fn a_failed_write_fails_every_later_call_and_drops_what_came_after_it() {
        let (recorder, mut host) = hosts();
        host.defer_save(SaveOp::Save, "M", batch(&["bad"]), "at fetchData".into())
            .unwrap();
        host.log("info", "after the bad batch", None);
        let error = host.set_checkpoint(Some(&Value::Null)).unwrap_err();
        assert_eq!(error, "could not save M records: refused");
        assert_eq!(
            host.failure(),
            Some(&FailedWrite {
                message: error.clone(),
                stack: "at fetchData".into()
            })
        );
        assert_eq!(
            host.defer_save(SaveOp::Save, "M", batch(&["c"]), String::new()),
            Err(error.clone())
        );
        assert_eq!(host.flush(), Err(error));
        assert!(
            recorder.borrow().events.is_empty(),
            "{:?}",
            recorder.borrow().events
        );
    }

    #[test]
    fn queued_logs_are_bounded() {
        let (recorder, mut host) = hosts();
        host.defer_save(SaveOp::Save, "M", batch(&["a"]), String::new())
            .unwrap();
        for n in 0..MAX_QUEUED_LOGS {
            host.log("info", &n.to_string(), None);
        }
        assert_eq!(recorder.borrow().events.len(), MAX_QUEUED_LOGS + 1);
        assert!(host.queue.is_empty());
    }
}
