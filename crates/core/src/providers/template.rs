//! `${…}` templates of providers.yaml (`https://${connectionConfig.subdomain}.x.com`, `Bearer ${apiKey}`).
//!
//! A value put into a URL's host or port must not change the URL's structure: `subdomain = "evil.example/?"`
//! in `https://${connectionConfig.subdomain}.zendesk.com` would otherwise send the request to evil.example.
//! [`interpolate_url`] refuses such values; [`url_placeholders`] shows where a template puts each value so
//! they can be checked before a connection is even stored.

use serde_json::Value;

/// A piece of a template: literal text, or the name inside a `${…}`.
enum Segment<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// The pieces of `template`, or `None` when a `${` is never closed.
fn segments(template: &str) -> Option<Vec<Segment<'_>>> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        pieces.push(Segment::Text(&rest[..start]));
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        pieces.push(Segment::Placeholder(after[..end].trim()));
        rest = &after[end + 1..];
    }
    pieces.push(Segment::Text(rest));
    Some(pieces)
}

/// Replaces every `${name}` in `template` with `lookup(name)`. Returns `None` when any placeholder has no
/// value: Nango only applies a template once it resolves fully.
pub fn interpolate(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    for piece in segments(template)? {
        match piece {
            Segment::Text(text) => out.push_str(text),
            Segment::Placeholder(name) => out.push_str(&lookup(name)?),
        }
    }
    Some(out)
}

/// Where a URL template puts a placeholder's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlPart {
    /// In the host (`https://${subdomain}.x.com`).
    Host,
    /// In the port (`https://x.com:${port}`).
    Port,
    /// Anywhere else: a whole URL (`${connectionConfig.base_url}`), the path or the query.
    Other,
}

/// Each placeholder of a URL template with the part of the URL it fills, judged by the template's own
/// text: after `://` and before the first `/`, `?` or `#` is the authority, where a placeholder after a
/// `:` is the port and any other the host.
pub fn url_placeholders(template: &str) -> Vec<(&str, UrlPart)> {
    let mut found = Vec::new();
    // The template's text so far, with each placeholder as a NUL so its value plays no part.
    let mut text = String::new();
    for piece in segments(template).unwrap_or_default() {
        match piece {
            Segment::Text(literal) => text.push_str(literal),
            Segment::Placeholder(name) => {
                let part = match text.find("://") {
                    None => UrlPart::Other,
                    Some(at) => {
                        let authority = &text[at + 3..];
                        let host_and_port = authority.rsplit('@').next().unwrap_or_default();
                        if authority.contains(['/', '?', '#']) {
                            UrlPart::Other
                        } else if host_and_port.contains(':') {
                            UrlPart::Port
                        } else {
                            UrlPart::Host
                        }
                    }
                };
                found.push((name, part));
                text.push('\0');
            }
        }
    }
    found
}

/// Whether a URL template names its host itself, so that the host may be reached at whatever address it
/// has: the host is literal (`https://api.github.com`), or placeholders fill only its first labels, before
/// a literal domain of two labels or more (`https://${connectionConfig.subdomain}.zendesk.com`, where the
/// values are checked to be host name parts). A host that a value gives whole (`${connectionConfig.base_url}`,
/// `https://${connectionConfig.host}`, `https://${a}.com`) is the connection's choice, not the provider's:
/// it must resolve to public addresses or be listed in `nango.allowed_hosts`, like any other host.
pub fn names_its_host(template: &str) -> bool {
    let text: String = segments(template)
        .unwrap_or_default()
        .into_iter()
        .map(|piece| match piece {
            Segment::Text(literal) => literal.to_string(),
            Segment::Placeholder(_) => "\0".to_string(),
        })
        .collect();
    let Some(at) = text.find("://") else {
        return false;
    };
    let rest = &text[at + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_and_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_and_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_and_port.split(':').next().unwrap_or_default(),
    };
    match host.rfind('\0') {
        None => !host.is_empty(),
        Some(last) => {
            let domain = &host[last + 1..];
            domain.starts_with('.')
                && domain.matches('.').count() >= 2
                && domain[1..].split('.').all(|label| !label.is_empty())
        }
    }
}

/// Why a value cannot fill its place in a URL template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value of ${{{name}}} cannot be placed in the {part} of the URL {template}: {rule}")]
pub struct UrlValueError {
    pub name: String,
    pub part: &'static str,
    pub template: String,
    pub rule: &'static str,
}

/// Characters a value in a host may not hold, besides whitespace and control characters: each would end
/// the host or start another part of the URL (`\` is read as `/` in http URLs, `%` could encode any of them).
const NOT_IN_HOST: &[char] = &['/', '\\', '?', '#', '@', ':', '[', ']', '%'];

/// Checks that `value` may fill `part` of `template` at the placeholder `name`.
pub fn check_url_value(
    template: &str,
    name: &str,
    part: UrlPart,
    value: &str,
) -> Result<(), UrlValueError> {
    let error = |part: &'static str, rule: &'static str| UrlValueError {
        name: name.to_string(),
        part,
        template: template.to_string(),
        rule,
    };
    match part {
        UrlPart::Host
            if value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || NOT_IN_HOST.contains(&c)) =>
        {
            Err(error(
                "host",
                "a host may not hold / \\ ? # @ : [ ] % or whitespace",
            ))
        }
        UrlPart::Port
            if !value.bytes().all(|b| b.is_ascii_digit()) || value.parse::<u16>().is_err() =>
        {
            Err(error("port", "a port must be a number from 0 to 65535"))
        }
        _ => Ok(()),
    }
}

/// [`interpolate`] for a URL template: `Ok(None)` when a placeholder has no value, an error when a value
/// would change the URL's structure from its host or port.
pub fn interpolate_url(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, UrlValueError> {
    for (name, part) in url_placeholders(template) {
        if let Some(value) = lookup(name) {
            check_url_value(template, name, part, &value)?;
        }
    }
    Ok(interpolate(template, lookup))
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
        assert_eq!(interpolate("open ${apiKey", &lookup), None);
    }

    #[test]
    fn a_template_names_its_host_unless_a_value_gives_it_whole() {
        for named in [
            "https://api.github.com",
            "https://api.github.com:${connectionConfig.port}/v3",
            "https://${connectionConfig.subdomain}.zendesk.com",
            "https://${connectionConfig.subdomain}.api.${connectionConfig.region}.example.com/x",
            "http://[::1]:8080",
        ] {
            assert!(names_its_host(named), "{named}");
        }
        for given in [
            "${connectionConfig.base_url}",
            "${connectionConfig.instance_url}/services",
            "https://${connectionConfig.host}",
            "https://${connectionConfig.host}:443/api",
            "https://${connectionConfig.subdomain}.com",
            "https://api.${connectionConfig.domain}",
            "https://${a}.${b}.com",
            "https://user@${connectionConfig.host}/",
        ] {
            assert!(!names_its_host(given), "{given}");
        }
    }

    #[test]
    fn finds_where_a_url_template_puts_each_value() {
        assert_eq!(
            url_placeholders("https://${connectionConfig.subdomain}.zendesk.com/api/${v}"),
            [
                ("connectionConfig.subdomain", UrlPart::Host),
                ("v", UrlPart::Other)
            ]
        );
        assert_eq!(
            url_placeholders("https://api.${ region }.x.io:${port}?a=${q}"),
            [
                ("region", UrlPart::Host),
                ("port", UrlPart::Port),
                ("q", UrlPart::Other)
            ]
        );
        assert_eq!(
            url_placeholders("${connectionConfig.base_url}/x/${id}"),
            [
                ("connectionConfig.base_url", UrlPart::Other),
                ("id", UrlPart::Other)
            ]
        );
        assert_eq!(
            url_placeholders("https://user:pw@${host}:8080"),
            [("host", UrlPart::Host)]
        );
    }

    #[test]
    fn a_host_or_port_value_cannot_change_the_url() {
        let template = "https://${connectionConfig.subdomain}.zendesk.com:${connectionConfig.port}";
        let with = |subdomain: &str, port: &str| {
            let values = json!({"connectionConfig": {"subdomain": subdomain, "port": port}});
            interpolate_url(template, &|name| lookup_path(&values, name))
        };
        assert_eq!(
            with("acme-eu.1", "443").unwrap().as_deref(),
            Some("https://acme-eu.1.zendesk.com:443")
        );
        for bad in [
            "evil.example/?",
            "evil.example#",
            "a@evil.example",
            "evil.example:80",
            "evil example",
            "evil\\x",
            "evil%2f",
            "[::1]",
            "a\tb",
        ] {
            let error = with(bad, "443").unwrap_err();
            assert_eq!(
                error.to_string(),
                "the value of ${connectionConfig.subdomain} cannot be placed in the host of the URL \
                 https://${connectionConfig.subdomain}.zendesk.com:${connectionConfig.port}: a host may not \
                 hold / \\ ? # @ : [ ] % or whitespace",
                "{bad}"
            );
        }
        for bad in ["443/x", "99999", "-1", " 1"] {
            let error = with("acme", bad).unwrap_err();
            assert_eq!(error.part, "port", "{bad}");
            assert_eq!(error.rule, "a port must be a number from 0 to 65535");
        }
        // A missing value leaves the template unresolved, as before.
        let values = json!({"connectionConfig": {}});
        assert_eq!(
            interpolate_url(template, &|name| lookup_path(&values, name)),
            Ok(None)
        );
    }
}
