//! A batch of records on its way from a script to the store: each record's id, its JSON text (as
//! `JSON.stringify` writes it), its content hash and, for a batchSave, its `jsonb` bytes.
//!
//! The hash is Nango's `data_hash`: md5 of the record's JSON text. Taking it here, where the text is made,
//! lets the store find the unchanged records of a batch by id and hash alone, without parsing them. It is
//! taken on a helper thread while the script's thread writes the next record ([`RecordBatch::hashed`]): md5
//! is about a third of the cost of a batch, and a job worker otherwise uses a single core. The `jsonb`
//! bytes are built there too, so that Postgres, on the database's thread, need not parse the texts.

use std::sync::mpsc;
use std::thread::{Builder, Scope, ScopedJoinHandle};

use md5::{Digest, Md5};

/// Records handed to the hashing thread at a time.
const HASH_GROUP: usize = 32;

/// One record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// The record's `id`, as `String(record.id)` gives it.
    pub id: String,
    /// The record as JSON text.
    pub json: String,
    /// [`content_hash`] of `json`.
    pub hash: ContentHash,
    /// The record as Postgres' `jsonb` bytes ([`super::jsonb::encode`]), for a batch that asked for them
    /// and a record that Postgres need not parse itself.
    pub jsonb: Option<Vec<u8>>,
}

impl OutgoingRecord {
    /// A record with its hash taken.
    pub fn new(id: String, json: String) -> Self {
        let hash = content_hash(&json);
        Self {
            id,
            json,
            hash,
            jsonb: None,
        }
    }

    /// A record with its hash taken and its `jsonb` bytes built.
    pub fn with_jsonb(id: String, json: String) -> Self {
        let jsonb = super::jsonb::encode(&json);
        Self {
            jsonb,
            ..Self::new(id, json)
        }
    }
}

/// The records of one `batchSave`, `batchUpdate` or `batchDelete` call, ids unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordBatch {
    pub records: Vec<OutgoingRecord>,
}

impl RecordBatch {
    /// The batch `fill` makes, calling its argument with each record's id and JSON text in order. The
    /// records are hashed on a helper thread as they come (here, should the thread not start), and with
    /// `with_jsonb` their `jsonb` bytes are built there too. An error of `fill` is returned as it is.
    pub fn hashed<E>(
        with_jsonb: bool,
        fill: impl FnOnce(&mut dyn FnMut(String, String)) -> Result<(), E>,
    ) -> Result<RecordBatch, E> {
        let record = if with_jsonb {
            OutgoingRecord::with_jsonb
        } else {
            OutgoingRecord::new
        };
        std::thread::scope(|scope| {
            let (sender, receiver) = mpsc::channel::<Vec<(String, String)>>();
            let helper = spawn_without_signals(
                scope,
                Builder::new().name("pg_nango hash".into()),
                move || {
                    receiver
                        .into_iter()
                        .flatten()
                        .map(|(id, json)| record(id, json))
                        .collect::<Vec<_>>()
                },
            );
            let Ok(helper) = helper else {
                let mut records = Vec::new();
                fill(&mut |id, json| records.push(record(id, json)))?;
                return Ok(RecordBatch { records });
            };
            // Records go over in groups: a wake-up of the helper per record would cost more than its md5.
            let mut group = Vec::with_capacity(HASH_GROUP);
            let filled = fill(&mut |id, json| {
                group.push((id, json));
                if group.len() == HASH_GROUP {
                    let full = std::mem::replace(&mut group, Vec::with_capacity(HASH_GROUP));
                    // The helper only stops once the sender is dropped, below.
                    let _ = sender.send(full);
                }
            });
            let _ = sender.send(group);
            drop(sender);
            let records = helper
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            filled.map(|()| RecordBatch { records })
        })
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records as one JSON array.
    pub fn json_array(&self) -> String {
        let mut out =
            String::with_capacity(self.records.iter().map(|r| r.json.len() + 1).sum::<usize>() + 2);
        out.push('[');
        for (i, record) in self.records.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&record.json);
        }
        out.push(']');
        out
    }
}

/// An md5 digest; the store keeps it as a `uuid`, whose text is the digest's 32 hex digits.
pub type ContentHash = [u8; 16];

/// md5 of a record's JSON text.
pub fn content_hash(json: &str) -> ContentHash {
    Md5::digest(json.as_bytes()).into()
}

/// Starts a scoped thread, configured by `builder`, with every signal blocked. A Postgres backend's signal
/// handlers must run on its own thread, and a new thread starts with the signal mask of the thread that
/// creates it.
pub(crate) fn spawn_without_signals<'scope, T: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    builder: Builder,
    work: impl FnOnce() -> T + Send + 'scope,
) -> std::io::Result<ScopedJoinHandle<'scope, T>> {
    with_signals_blocked(|| builder.spawn_scoped(scope, work))
}

/// Runs `start` (which starts threads) with every signal blocked on this thread, then restores the mask:
/// a new thread starts with the signal mask of the thread that creates it, and a Postgres backend's
/// signal handlers must run on its own thread.
pub(crate) fn with_signals_blocked<T>(start: impl FnOnce() -> T) -> T {
    // SAFETY: sigfillset and pthread_sigmask only write the sets passed to them, which live on this stack.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
        let started = start();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_md5_of_the_text() {
        let hex = |hash: ContentHash| hash.iter().map(|b| format!("{b:02x}")).collect::<String>();
        // md5("") and md5("{\"id\":\"1\"}") as `md5sum` prints them.
        assert_eq!(hex(content_hash("")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex(content_hash(r#"{"id":"1"}"#)),
            "e405fac593027bc534cf08cd4d2a5647"
        );
    }

    #[test]
    fn a_batch_is_hashed_in_order_and_an_error_of_its_filling_is_returned() {
        let batch = RecordBatch::hashed(true, |push| {
            for n in 0..2000 {
                push(n.to_string(), format!(r#"{{"id":"{n}"}}"#));
            }
            Ok::<(), String>(())
        })
        .unwrap();
        assert_eq!(batch.len(), 2000);
        for (n, record) in batch.records.iter().enumerate() {
            assert_eq!(record.id, n.to_string());
            assert_eq!(record.hash, content_hash(&record.json));
            assert_eq!(record.jsonb, crate::records::jsonb::encode(&record.json));
            assert!(record.jsonb.is_some());
        }
        let plain = RecordBatch::hashed(false, |push| {
            push("1".into(), r#"{"id":"1"}"#.into());
            Ok::<(), String>(())
        })
        .unwrap();
        assert_eq!(plain.records[0].jsonb, None, "built only when asked");
        let failed = RecordBatch::hashed(false, |push| {
            push("1".into(), "{}".into());
            Err("record at index 1 is not an object".to_string())
        });
        assert_eq!(
            failed,
            Err("record at index 1 is not an object".to_string())
        );
    }

    #[test]
    fn the_helper_thread_blocks_every_signal() {
        let blocked = std::thread::scope(|scope| {
            spawn_without_signals(scope, Builder::new(), || unsafe {
                let mut current: libc::sigset_t = std::mem::zeroed();
                libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current);
                [
                    libc::SIGTERM,
                    libc::SIGINT,
                    libc::SIGUSR1,
                    libc::SIGALRM,
                    libc::SIGURG,
                ]
                .map(|signal| libc::sigismember(&current, signal) == 1)
            })
            .unwrap()
            .join()
            .unwrap()
        });
        assert_eq!(blocked, [true; 5]);
        let mut current: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current) };
        assert_eq!(
            unsafe { libc::sigismember(&current, libc::SIGTERM) },
            0,
            "the caller's mask is restored"
        );
    }

    #[test]
    fn a_batch_joins_its_records_into_an_array() {
        let batch = RecordBatch {
            records: vec![
                OutgoingRecord::new("1".into(), r#"{"id":"1"}"#.into()),
                OutgoingRecord::new("2".into(), r#"{"id":2}"#.into()),
            ],
        };
        assert_eq!(batch.json_array(), r#"[{"id":"1"},{"id":2}]"#);
        assert_eq!(RecordBatch::default().json_array(), "[]");
    }
}
