//! A batch of records on its way from a script to the store: each record's id, its JSON text (as
//! `JSON.stringify` writes it) and its content hash.
//!
//! The hash is Nango's `data_hash`: md5 of the record's JSON text. Taking it here, where the text is made,
//! lets the store find the unchanged records of a batch by id and hash alone, without parsing them.

use md5::{Digest, Md5};

/// One record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// The record's `id`, as `String(record.id)` gives it.
    pub id: String,
    /// The record as JSON text.
    pub json: String,
    /// [`content_hash`] of `json`.
    pub hash: String,
}

impl OutgoingRecord {
    /// A record with its hash taken.
    pub fn new(id: String, json: String) -> Self {
        let hash = content_hash(&json);
        Self { id, json, hash }
    }
}

/// The records of one `batchSave`, `batchUpdate` or `batchDelete` call, ids unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordBatch {
    pub records: Vec<OutgoingRecord>,
}

impl RecordBatch {
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

/// md5 of a record's JSON text, as 32 hex digits (which Postgres also reads as a `uuid`).
pub fn content_hash(json: &str) -> String {
    let digest = Md5::digest(json.as_bytes());
    let mut hex = String::with_capacity(32);
    for byte in digest {
        use std::fmt::Write;
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_md5_of_the_text() {
        // md5("") and md5("{\"id\":\"1\"}") as `md5sum` prints them.
        assert_eq!(content_hash(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            content_hash(r#"{"id":"1"}"#),
            "e405fac593027bc534cf08cd4d2a5647"
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
