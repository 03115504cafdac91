//! Saving new records without looking them up: what a run knows of the stored records of one model for
//! its connection.
//!
//! A batchSave looks every record of the batch up by primary key to tell new records from changed and
//! unchanged ones: about a fifth of what writing a first sync costs. When the connection had no record of
//! the model at all (not even a deleted one) as the run began writing it, and every record stored since
//! was inserted by this run, a batch none of whose ids the run has saved holds only new records, and the
//! store inserts them as they are.
//!
//! How the store knows, without trusting the run's memory alone: every write of a model's records draws
//! its cursors under the model's lock, so cursor order is commit order, and any record written by anyone
//! after this run's last insert has a higher cursor. Before each such batch, under the lock, the store
//! reads the highest cursor of the model's records for the connection; the run may insert without looking
//! up only when that is the last cursor it inserted itself (or, for its first batch, when there is none).
//! Anything else (another writer, a batchUpdate or batchDelete of the run, an id the run saved before, a
//! run that saved more than [`MAX_REMEMBERED_IDS`] ids) makes every later batch of the run look its
//! records up as usual. Should a record be stored after all, the insert fails on the primary key: the
//! batch fails, no record is lost or doubled.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Ids a run remembers per model (8 bytes each, about 17 MB at most); past them its batches look up.
pub const MAX_REMEMBERED_IDS: usize = 1_000_000;

/// What a run knows of the stored records of one model for its connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Freshness {
    /// The run has not saved records of the model yet.
    #[default]
    Unchecked,
    /// Every stored record of the model for the connection was inserted by this run: `last_cursor` is the
    /// highest cursor it drew, `ids` the hashes of the ids it saved.
    RunOnly { last_cursor: i64, ids: HashSet<u64> },
    /// Records from elsewhere may be stored: every batch looks its records up.
    Shared,
}

impl Freshness {
    /// Whether a batchSave should read the highest stored cursor to see if it may insert without lookup.
    pub fn worth_checking(&self) -> bool {
        !matches!(self, Freshness::Shared)
    }

    /// Whether a batchSave of `ids` (unique within the batch) holds only records that are not stored,
    /// given the highest cursor of the model's stored records for the connection, read under the model's
    /// lock. When it does not, the run stops trying ([`Freshness::Shared`]).
    pub fn admits<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
        stored_last_cursor: Option<i64>,
    ) -> bool {
        let admitted = match (&*self, stored_last_cursor) {
            (Freshness::Unchecked, None) => true,
            (
                Freshness::RunOnly {
                    last_cursor,
                    ids: saved,
                },
                Some(stored),
            ) => stored == *last_cursor && ids.into_iter().all(|id| !saved.contains(&id_hash(id))),
            _ => false,
        };
        if !admitted {
            *self = Freshness::Shared;
        }
        admitted
    }

    /// Notes a batch inserted after [`Freshness::admits`] said it could be, with the highest cursor it drew.
    pub fn inserted<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>, last_cursor: i64) {
        let mut saved = match std::mem::replace(self, Freshness::Shared) {
            Freshness::Unchecked => HashSet::new(),
            Freshness::RunOnly { ids, .. } => ids,
            Freshness::Shared => return,
        };
        for id in ids {
            if saved.len() >= MAX_REMEMBERED_IDS {
                return;
            }
            saved.insert(id_hash(id));
        }
        *self = Freshness::RunOnly {
            last_cursor,
            ids: saved,
        };
    }

    /// A write that is not an insert of new records (batchUpdate, batchDelete, a batchSave that looked
    /// up): later batches look up.
    pub fn written_otherwise(&mut self) {
        *self = Freshness::Shared;
    }
}

/// A fixed 64-bit hash of an id. Two ids with the same hash only cost a lookup: the second is taken
/// for one saved before.
fn id_hash(id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_batch_inserts_only_into_an_empty_store() {
        let mut empty = Freshness::Unchecked;
        assert!(empty.admits(["a", "b"], None));
        let mut holding = Freshness::Unchecked;
        assert!(!holding.admits(["a"], Some(7)), "the store holds records");
        assert_eq!(holding, Freshness::Shared);
        assert!(!holding.worth_checking());
    }

    #[test]
    fn later_batches_insert_while_the_run_alone_wrote_and_ids_are_new() {
        let mut fresh = Freshness::Unchecked;
        assert!(fresh.admits(["a", "b"], None));
        fresh.inserted(["a", "b"], 11);
        assert!(fresh.worth_checking());
        assert!(fresh.admits(["c"], Some(11)));
        fresh.inserted(["c"], 12);
        // Someone else wrote after the run's last insert.
        let mut other_writer = fresh.clone();
        assert!(!other_writer.admits(["d"], Some(15)));
        assert_eq!(other_writer, Freshness::Shared);
        // The run's last record is gone (the connection's records were removed).
        let mut removed = fresh.clone();
        assert!(!removed.admits(["d"], None));
        // An id saved before.
        let mut repeated = fresh.clone();
        assert!(!repeated.admits(["d", "a"], Some(12)));
        assert_eq!(repeated, Freshness::Shared);
        // Once shared, always shared.
        assert!(!repeated.admits(["e"], Some(12)));
        repeated.inserted(["e"], 13);
        assert_eq!(repeated, Freshness::Shared);
    }

    #[test]
    fn other_writes_and_too_many_ids_end_it() {
        let mut fresh = Freshness::Unchecked;
        fresh.inserted(["a"], 1);
        fresh.written_otherwise();
        assert!(!fresh.admits(["b"], Some(1)));

        let mut many = Freshness::Unchecked;
        let ids: Vec<String> = (0..MAX_REMEMBERED_IDS + 1).map(|i| i.to_string()).collect();
        many.inserted(ids.iter().map(String::as_str), 5);
        assert_eq!(many, Freshness::Shared);
    }
}
