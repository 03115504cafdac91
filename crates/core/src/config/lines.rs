//! Finds the line of a key path in YAML text, so that errors found after parsing (which keeps no positions)
//! can still say where they are.

/// The 1-based line of the mapping key at `path` (e.g. `["integrations", "github", "syncs", "issues"]`),
/// or of the deepest prefix of it that exists.
pub fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let mut found = None;
    let mut depth = 0;
    let mut parent_indent: Option<usize> = None;
    for (index, line) in text.lines().enumerate() {
        if depth == path.len() {
            break;
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(parent) = parent_indent
            && indent <= parent
        {
            // Left the block of the key found last without meeting the next one.
            break;
        }
        if key_of(trimmed) == Some(path[depth]) {
            found = Some(index + 1);
            parent_indent = Some(indent);
            depth += 1;
        }
    }
    found
}

fn key_of(line: &str) -> Option<&str> {
    let line = line.strip_prefix("- ").unwrap_or(line);
    let (key, _) = line.split_once(':')?;
    let key = key.trim();
    Some(key.trim_matches(|c| c == '"' || c == '\''))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys() {
        let text = "integrations:\n  github:\n    syncs:\n      issues:\n        runs: every hour\n      prs:\n        runs: nope\nmodels:\n  Issue:\n    id: string\n";
        assert_eq!(
            line_of(text, &["integrations", "github", "syncs", "prs", "runs"]),
            Some(7)
        );
        assert_eq!(line_of(text, &["models", "Issue", "id"]), Some(10));
        assert_eq!(
            line_of(
                text,
                &["integrations", "github", "syncs", "issues", "output"]
            ),
            Some(4)
        );
    }
}
