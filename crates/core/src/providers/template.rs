//! `${…}` templates of providers.yaml (`https://${connectionConfig.subdomain}.x.com`, `Bearer ${apiKey}`).

use serde_json::Value;

/// Replaces every `${name}` in `template` with `lookup(name)`. Returns `None` when any placeholder has no
/// value: Nango only applies a template once it resolves fully.
pub fn interpolate(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        out.push_str(&lookup(after[..end].trim())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Looks a dotted path (`connectionConfig.region`) up in a JSON value; strings as they are, numbers and
/// booleans as text.
pub fn lookup_path(root: &Value, path: &str) -> Option<String> {
    let mut node = root;
    for part in path.split('.') {
        node = node.get(part)?;
    }
    match node {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_or_refuses() {
        let values = json!({"connectionConfig": {"subdomain": "acme"}, "apiKey": "k"});
        let lookup = |name: &str| lookup_path(&values, name);
        assert_eq!(
            interpolate("https://${connectionConfig.subdomain}.x.com", &lookup).as_deref(),
            Some("https://acme.x.com")
        );
        assert_eq!(
            interpolate("Bearer ${apiKey}", &lookup).as_deref(),
            Some("Bearer k")
        );
        assert_eq!(interpolate("${connectionConfig.missing}", &lookup), None);
        assert_eq!(interpolate("plain", &lookup).as_deref(), Some("plain"));
    }
}
