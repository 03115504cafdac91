//! The script's engine runs on a thread of its own (`engine_thread`); the run's thread (a Postgres backend's,
//! the only one that may use the database) serves the engine's host calls ([`serve`]). [`DeferredWrites`] is
//! the host a script sees on the engine's thread: it sends each call over to the run's thread, and lets
//! `batchSave`, `batchUpdate` and `batchDelete` resolve once their records are checked and copied out of the
//! engine, without waiting for the write. While a batch is written, the script goes on: its next HTTP
//! request, parsing the page, checking and hashing the next batch. A sync that fetches a page, saves it and
//! fetches the next uses two cores, one writing and one running the script, instead of one after the other.
//!
//! Why a script cannot tell (beyond timing) that a write was deferred:
//! - Calls are served in the order they were made, on one channel: writes in call order, and every call
//!   after a write sees it. Whatever reads or changes state the writes affect (`getRecordsByIds`,
//!   `listRecords`, checkpoints, metadata, deletion windows, locks, credentials) waits for its answer, so
//!   it sees every write made before it, as it would have. So does the end of the run, which waits for the
//!   last write before the job ends.
//! - A log line is sent without waiting, behind the writes before it, so the run's logs keep their order
//!   (each write logs what it did).
//! - A write that fails fails the run with the error the write itself would have thrown, from the place of
//!   the script's call (`could not save … (at file:line:col)`). The run's thread then drops every later
//!   write, and every log line written before the script learned of the failure, and answers every later
//!   call with that error, so nothing the script did after the write (a `saveCheckpoint`, another batch) is
//!   stored. The script learns of it at its next call, or at an HTTP request made once the write failed. What a script loses is the chance to catch that error around its
//!   `batchSave`; as in Nango, records written before the failure stay written.
//!
//! Memory: one write at a time is in flight (the next `batchSave` waits for the one before), so at most
//! one batch waits besides the one the script is making, and at most [`MAX_QUEUED_REQUESTS`] calls wait
//! to be served before a log line waits for room.

use std::collections::HashSet;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Host, SaveOp};
use crate::records::batch::RecordBatch;

/// Calls that may wait to be served before the script's next one waits for room.
pub const MAX_QUEUED_REQUESTS: usize = 1000;

/// One call, made on the run's thread with its host and the error of the write that failed, if one did.
/// It answers its caller itself; it returns the error of the write it made, if that failed.
pub type Request = Box<dyn FnOnce(&mut dyn Host, Option<&str>) -> Option<String> + Send>;

/// What a call gets once the run's thread has stopped serving (it failed, and the run is ending).
const NOT_SERVED: &str = "the run is ending: its database calls are no longer served";

/// Serves `requests` with `host` until every sender is gone or `engine_finished` says the engine's thread
/// ended (a sender it leaked must not keep the run waiting). Runs on the run's thread.
pub fn serve(host: &mut dyn Host, requests: Receiver<Request>, engine_finished: impl Fn() -> bool) {
    let mut failed: Option<String> = None;
    let mut handle = |request: Request, failed: &mut Option<String>| {
        if let Some(error) = request(host, failed.as_deref()) {
            failed.get_or_insert(error);
        }
    };
    loop {
        match requests.recv_timeout(Duration::from_millis(100)) {
            Ok(request) => handle(request, &mut failed),
            Err(RecvTimeoutError::Timeout) if engine_finished() => {
                for request in requests.try_iter() {
                    handle(request, &mut failed);
                }
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// A write that failed: its error, and the stack of the script's call that asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedWrite {
    pub message: String,
    pub stack: String,
}

/// The answer to a write: its outcome, and [`Host::builds_jsonb`] for its model after it.
type WriteAnswer = (Result<(), String>, bool);

/// A write sent to the run's thread and not yet answered.
struct InFlight {
    answered: Receiver<WriteAnswer>,
    /// The script's stack at the call.
    stack: String,
    model: String,
}

/// The host on the engine's thread (see the module's documentation).
pub struct DeferredWrites {
    requests: SyncSender<Request>,
    in_flight: Option<InFlight>,
    failed: Option<FailedWrite>,
    /// The models whose next batchSave the run's thread sends whole, as its last answer said.
    builds_jsonb: HashSet<String>,
}

impl DeferredWrites {
    pub fn new(requests: SyncSender<Request>) -> Self {
        DeferredWrites {
            requests,
            in_flight: None,
            failed: None,
            builds_jsonb: HashSet::new(),
        }
    }

    /// The write that failed, if one did (and is known to have: see [`Host::flush`]).
    pub fn failure(&self) -> Option<&FailedWrite> {
        self.failed.as_ref()
    }

    fn refused(&self) -> Result<(), String> {
        match &self.failed {
            Some(failed) => Err(failed.message.clone()),
            None => Ok(()),
        }
    }

    /// Sends a request that answers no one.
    fn post(&self, request: impl FnOnce(&mut dyn Host, Option<&str>) + Send + 'static) {
        // Once the run's thread stops serving, nothing is left to do with it.
        let _ = self.requests.send(Box::new(move |host, failed| {
            request(host, failed);
            None
        }));
    }

    /// Makes `call` on the run's thread, after the writes before it, and waits for its answer.
    fn ask<R: Send + 'static>(
        &mut self,
        call: impl FnOnce(&mut dyn Host) -> Result<R, String> + Send + 'static,
    ) -> Result<R, String> {
        self.flush()?;
        let (answer, answered) = mpsc::sync_channel(1);
        self.requests
            .send(Box::new(move |host, failed| {
                let _ = answer.send(match failed {
                    Some(error) => Err(error.to_string()),
                    None => call(host),
                });
                None
            }))
            .map_err(|_| NOT_SERVED.to_string())?;
        answered.recv().map_err(|_| NOT_SERVED.to_string())?
    }

    /// Records the answer of the write in flight.
    fn settle(&mut self, answer: Result<WriteAnswer, String>, write: InFlight) {
        let written = answer.and_then(|(written, builds_jsonb)| {
            if builds_jsonb {
                self.builds_jsonb.insert(write.model);
            } else {
                self.builds_jsonb.remove(&write.model);
            }
            written
        });
        if let Err(message) = written {
            self.failed.get_or_insert(FailedWrite {
                message,
                stack: write.stack,
            });
        }
    }

    /// Settles the write in flight if it has been answered, without waiting.
    fn poll(&mut self) {
        if let Some(write) = self.in_flight.take() {
            match write.answered.try_recv() {
                Ok(answer) => self.settle(Ok(answer), write),
                Err(TryRecvError::Empty) => self.in_flight = Some(write),
                Err(TryRecvError::Disconnected) => self.settle(Err(NOT_SERVED.into()), write),
            }
        }
    }
}

impl Host for DeferredWrites {
    fn script_started(&mut self) {
        self.post(|host, _| host.script_started());
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
        // One write at a time: the one before is waited for first.
        self.flush()?;
        let (answer, answered) = mpsc::sync_channel(1);
        let for_model = model.to_string();
        self.requests
            .send(Box::new(move |host, failed| {
                let written = match failed {
                    Some(error) => Err(error.to_string()),
                    None => host.save(op, &for_model, batch),
                };
                let error = written.as_ref().err().cloned();
                let _ = answer.send((written, host.builds_jsonb(&for_model)));
                // Only this write's own failure stops what follows (one before it already did).
                error.filter(|_| failed.is_none())
            }))
            .map_err(|_| NOT_SERVED.to_string())?;
        self.in_flight = Some(InFlight {
            answered,
            stack,
            model: model.to_string(),
        });
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if let Some(write) = self.in_flight.take() {
            let answer = write.answered.recv().map_err(|_| NOT_SERVED.to_string());
            self.settle(answer, write);
        }
        self.refused()
    }

    fn failed_write(&mut self) -> Result<(), String> {
        self.poll();
        self.refused()
    }

    fn builds_jsonb(&mut self, model: &str) -> bool {
        // The word of the last write settled (by `flush`, or by `failed_write` at an HTTP request). Not
        // polled here: a poll could settle a failed write that the script is not told of until its next
        // call, and a log line written meanwhile would then be kept.
        self.builds_jsonb.contains(model)
    }

    fn log(&mut self, level: &str, message: &str, payload_json: Option<&str>) {
        let (level, message) = (level.to_string(), message.to_string());
        let payload = payload_json.map(str::to_string);
        // A line written once the script has seen the failure (it caught the error) is kept.
        let failure_seen = self.failed.is_some();
        self.post(move |host, failed| {
            // A line written after a write that failed, before the script could know: the write's call
            // would have thrown before it.
            if failed.is_none() || failure_seen {
                host.log(&level, &message, payload.as_deref());
            }
        });
    }

    fn request_made(&mut self) {
        self.post(|host, _| host.request_made());
    }

    fn metadata(&mut self) -> Result<String, String> {
        self.ask(|host| host.metadata())
    }

    fn set_metadata(&mut self, metadata_json: &str, merge: bool) -> Result<(), String> {
        let metadata_json = metadata_json.to_string();
        self.ask(move |host| host.set_metadata(&metadata_json, merge))
    }

    fn lock_credentials(&mut self) -> Result<Value, String> {
        self.ask(|host| host.lock_credentials())
    }

    fn store_credentials(&mut self, credentials: &Value) -> Result<(), String> {
        let credentials = credentials.clone();
        self.ask(move |host| host.store_credentials(&credentials))
    }

    fn release_credentials(&mut self) {
        // Released whatever happened to the writes.
        self.post(|host, _| host.release_credentials());
    }

    fn checkpoint(&mut self) -> Result<Value, String> {
        self.ask(|host| host.checkpoint())
    }

    fn set_checkpoint(&mut self, checkpoint: Option<&Value>) -> Result<(), String> {
        let checkpoint = checkpoint.cloned();
        self.ask(move |host| host.set_checkpoint(checkpoint.as_ref()))
    }

    fn track_deletes_start(&mut self, model: &str) -> Result<(), String> {
        let model = model.to_string();
        self.ask(move |host| host.track_deletes_start(&model))
    }

    fn track_deletes_end(&mut self, model: &str) -> Result<Vec<String>, String> {
        let model = model.to_string();
        self.ask(move |host| host.track_deletes_end(&model))
    }

    fn records_by_ids(
        &mut self,
        model: &str,
        ids: &[String],
    ) -> Result<Map<String, Value>, String> {
        let (model, ids) = (model.to_string(), ids.to_vec());
        self.ask(move |host| host.records_by_ids(&model, &ids))
    }

    fn list_records(
        &mut self,
        model: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Value, String> {
        let (model, cursor) = (model.to_string(), cursor.map(str::to_string));
        self.ask(move |host| host.list_records(&model, cursor.as_deref(), limit))
    }

    fn try_acquire_lock(&mut self, key: &str, ttl_ms: u64) -> Result<bool, String> {
        let key = key.to_string();
        self.ask(move |host| host.try_acquire_lock(&key, ttl_ms))
    }

    fn release_lock(&mut self, key: &str) -> Result<bool, String> {
        let key = key.to_string();
        self.ask(move |host| host.release_lock(&key))
    }

    fn integration(&mut self) -> Result<Value, String> {
        self.ask(|host| host.integration())
    }

    fn environment_variables(&mut self) -> Result<Value, String> {
        self.ask(|host| host.environment_variables())
    }

    fn set_merging_strategy(&mut self, model: &str, strategy: &str) -> Result<(), String> {
        let (model, strategy) = (model.to_string(), strategy.to_string());
        self.ask(move |host| host.set_merging_strategy(&model, &strategy))
    }

    fn action_entry(&mut self, name: &str) -> Result<Option<String>, String> {
        let name = name.to_string();
        self.ask(move |host| host.action_entry(&name))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::records::batch::OutgoingRecord;

    /// Records what reaches it, in order; refuses a batch with a record whose id is `bad`, and holds a
    /// batch with a record whose id is `held` until the test opens `gate`.
    struct Recorder {
        events: Arc<Mutex<Vec<String>>>,
        gate: Receiver<()>,
        /// Models whose last batch had more than one record.
        larger: HashSet<String>,
    }

    impl Host for Recorder {
        fn save(&mut self, op: SaveOp, model: &str, batch: RecordBatch) -> Result<(), String> {
            if batch.records.iter().any(|r| r.id == "held") {
                self.gate.recv().unwrap();
            }
            if batch.records.iter().any(|r| r.id.starts_with("bad")) {
                return Err(format!("could not save {model} records: refused"));
            }
            self.events
                .lock()
                .unwrap()
                .push(format!("{} {model} {}", op.method(), batch.len()));
            if batch.len() > 1 {
                self.larger.insert(model.to_string());
            } else {
                self.larger.remove(model);
            }
            Ok(())
        }
        fn builds_jsonb(&mut self, model: &str) -> bool {
            self.larger.contains(model)
        }
        fn log(&mut self, _level: &str, message: &str, _payload: Option<&str>) {
            self.events.lock().unwrap().push(format!("log {message}"));
        }
        fn request_made(&mut self) {
            self.events.lock().unwrap().push("request".into());
        }
        fn metadata(&mut self) -> Result<String, String> {
            self.events.lock().unwrap().push("metadata".into());
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
            self.events.lock().unwrap().push("checkpoint".into());
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

    /// A recorder served on a thread of its own, as the run's thread serves the engine's.
    struct Served {
        events: Arc<Mutex<Vec<String>>>,
        /// The host the script would see.
        host: DeferredWrites,
        /// Opens the recorder's gate.
        open: SyncSender<()>,
        server: std::thread::JoinHandle<()>,
    }

    fn hosts() -> Served {
        let events = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = mpsc::sync_channel(1);
        let (requests, served) = mpsc::sync_channel(MAX_QUEUED_REQUESTS);
        let mut recorder = Recorder {
            events: events.clone(),
            gate,
            larger: HashSet::new(),
        };
        let server = std::thread::spawn(move || serve(&mut recorder, served, || false));
        Served {
            events,
            host: DeferredWrites::new(requests),
            open,
            server,
        }
    }

    #[test]
    fn a_request_is_counted_behind_the_writes_before_it_without_waiting() {
        let Served {
            events,
            mut host,
            open,
            ..
        } = hosts();
        host.defer_save(SaveOp::Save, "M", batch(&["held"]), String::new())
            .unwrap();
        // Counting a request does not wait for the write in flight.
        host.request_made();
        assert!(events.lock().unwrap().is_empty());
        open.send(()).unwrap();
        host.metadata().unwrap();
        assert_eq!(
            *events.lock().unwrap(),
            ["batchSave M 1", "request", "metadata"]
        );
    }

    #[test]
    fn a_write_runs_while_the_script_goes_on_and_calls_keep_their_order() {
        let Served {
            events,
            mut host,
            open,
            ..
        } = hosts();
        host.defer_save(SaveOp::Save, "M", batch(&["held", "b"]), String::new())
            .unwrap();
        // The write is held on the other thread, and the script is not.
        host.log("info", "after the first", None);
        assert_eq!(host.failed_write(), Ok(()));
        assert!(events.lock().unwrap().is_empty());
        open.send(()).unwrap();
        // A second write waits for the first: never more than one in flight.
        host.defer_save(SaveOp::Delete, "M", batch(&["a"]), String::new())
            .unwrap();
        host.metadata().unwrap();
        assert_eq!(
            *events.lock().unwrap(),
            [
                "batchSave M 2",
                "log after the first",
                "batchDelete M 1",
                "metadata"
            ]
        );
    }

    #[test]
    fn whether_to_build_jsonb_is_what_the_last_answered_write_of_the_model_said() {
        let Served { mut host, open, .. } = hosts();
        assert!(!host.builds_jsonb("M"));
        host.defer_save(SaveOp::Save, "M", batch(&["held", "b"]), String::new())
            .unwrap();
        // Not answered yet: the word from before stands.
        assert!(!host.builds_jsonb("M"));
        open.send(()).unwrap();
        // Answered, and learnt once the write is settled.
        host.flush().unwrap();
        assert!(host.builds_jsonb("M"));
        assert!(!host.builds_jsonb("N"));
        host.defer_save(SaveOp::Save, "M", batch(&["c"]), String::new())
            .unwrap();
        host.flush().unwrap();
        assert!(!host.builds_jsonb("M"));
    }

    #[test]
    fn a_failed_write_fails_every_later_call_and_drops_what_came_after_it() {
        let Served {
            events,
            mut host,
            open,
            server,
        } = hosts();
        host.defer_save(
            SaveOp::Save,
            "M",
            batch(&["bad", "held"]),
            "at fetchData".into(),
        )
        .unwrap();
        host.log("info", "after the bad batch", None);
        // Not known yet: the write is still being made.
        assert_eq!(host.failed_write(), Ok(()));
        open.send(()).unwrap();
        let error = host.set_checkpoint(Some(&Value::Null)).unwrap_err();
        assert_eq!(error, "could not save M records: refused");
        assert_eq!(host.failed_write(), Err(error.clone()));
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
        host.log("info", "after the failure", None);
        assert_eq!(host.flush(), Err(error));
        // Only the line written once the script knew of the failure.
        drop(host);
        server.join().unwrap();
        assert_eq!(*events.lock().unwrap(), ["log after the failure"]);
    }

    #[test]
    fn calls_get_an_error_once_the_run_stops_serving() {
        let (requests, served) = mpsc::sync_channel(MAX_QUEUED_REQUESTS);
        drop(served);
        let mut host = DeferredWrites::new(requests);
        assert_eq!(host.metadata(), Err(NOT_SERVED.to_string()));
        host.log("info", "nowhere to go", None);
    }
}
