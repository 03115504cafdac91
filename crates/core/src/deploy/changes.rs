//! What a deploy changed: every deployed item (a sync, an action, an on-event script, a model, a file of the
//! project) named as `"<kind> <name>"` with a fingerprint of what it is, taken before and after the deploy.
//! An item only after is added, only before is removed, and in both with another fingerprint is changed.
//! `nango.deploy` returns this in its summary, so psql and the `pg-nango` client both show what a deploy did.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Deployed items by name (`"sync github/issues"`), each with the fingerprint of its definition and code.
pub type Fingerprints = BTreeMap<String, String>;

/// The items a deploy added, changed and removed, each list in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl Changes {
    /// Compares the items deployed `before` with those deployed `after`.
    pub fn between(before: &Fingerprints, after: &Fingerprints) -> Changes {
        let mut changes = Changes::default();
        for (name, fingerprint) in after {
            match before.get(name) {
                None => changes.added.push(name.clone()),
                Some(previous) if previous != fingerprint => changes.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        changes.removed = before
            .keys()
            .filter(|name| !after.contains_key(*name))
            .cloned()
            .collect();
        changes
    }

    /// Whether the deploy changed nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    /// The syncs and actions it removed: what a deploy needs `allow_destructive` for.
    pub fn destructive(&self) -> Vec<&str> {
        self.removed
            .iter()
            .map(String::as_str)
            .filter(|name| name.starts_with("sync ") || name.starts_with("action "))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prints(items: &[(&str, &str)]) -> Fingerprints {
        items
            .iter()
            .map(|(name, print)| (name.to_string(), print.to_string()))
            .collect()
    }

    #[test]
    fn items_are_added_changed_removed_or_left_alone() {
        let before = prints(&[
            ("action github/create-issue", "a"),
            ("model Issue", "m1"),
            ("sync github/issues", "s1"),
            ("sync github/prs", "p"),
        ]);
        let after = prints(&[
            ("model Issue", "m1"),
            ("model Label", "l"),
            ("sync github/issues", "s2"),
            ("sync github/prs", "p"),
        ]);
        let changes = Changes::between(&before, &after);
        assert_eq!(changes.added, ["model Label"]);
        assert_eq!(changes.changed, ["sync github/issues"]);
        assert_eq!(changes.removed, ["action github/create-issue"]);
        assert_eq!(changes.destructive(), ["action github/create-issue"]);
        assert!(!changes.is_empty());
        assert!(Changes::between(&after, &after).is_empty());
    }

    #[test]
    fn removed_models_and_files_need_no_permission() {
        let before = prints(&[("model Old", "m"), ("file github/helpers.ts", "f")]);
        let changes = Changes::between(&before, &Fingerprints::new());
        assert_eq!(changes.removed.len(), 2);
        assert!(changes.destructive().is_empty());
    }
}
