//! Record rules that are not SQL: a batch's records with their content hashes, when a batch may skip looking
//! its records up ([`fresh`]), the notification bodies sent after a run, and the `filter` argument of
//! `nango.records`.

pub mod batch;
pub mod conformance;
pub mod fresh;
pub mod jsonb;
pub mod notify;
pub mod views;

/// The ADDED/UPDATED/DELETED counts of one model in one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelCounts {
    pub added: i64,
    pub updated: i64,
    pub deleted: i64,
}

/// Which kinds of change `nango.records(…, filter => …)` returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordFilter {
    pub added: bool,
    pub updated: bool,
    pub deleted: bool,
}

/// Parses `'added'`, `'updated'`, `'deleted'` or a comma list of them (case-insensitive).
pub fn parse_filter(text: &str) -> Result<RecordFilter, String> {
    let mut filter = RecordFilter::default();
    for part in text.split(',').map(|p| p.trim().to_ascii_lowercase()) {
        match part.as_str() {
            "added" => filter.added = true,
            "updated" => filter.updated = true,
            "deleted" => filter.deleted = true,
            other => {
                return Err(format!(
                    "invalid filter \"{other}\": use added, updated, deleted or a comma list of them"
                ));
            }
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert_eq!(
            parse_filter("added").unwrap(),
            RecordFilter {
                added: true,
                updated: false,
                deleted: false
            }
        );
        assert_eq!(
            parse_filter("Updated, deleted").unwrap(),
            RecordFilter {
                added: false,
                updated: true,
                deleted: true
            }
        );
        assert!(parse_filter("changed").unwrap_err().contains("changed"));
    }
}
