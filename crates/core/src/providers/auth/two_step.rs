//! TWO_STEP: the provider's own token request, described by its `token_url`, `token_params` and
//! `token_headers` templates (filled from the connection's credentials and connection_config), sent as JSON
//! or as a form (`body_format`), and its answer read per `token_response` (where the token and its expiry
//! are). The token is kept in the credentials beside the fields the connection was created with.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::super::request::template_values;
use super::super::template::{interpolate, lookup_path};
use super::super::{ConnectionInfo, PreparedRequest, Provider};
use super::{expires_at, parse_time, response_json, token_url};

/// How long a token lives when neither the answer nor the provider says (Nango's one day).
const DEFAULT_LIFETIME_SECS: i64 = 24 * 60 * 60;
/// How deep a `token_params` template may nest.
const MAX_DEPTH: usize = 16;

/// The token request.
pub fn token_request(
    provider: &Provider,
    connection: &ConnectionInfo,
) -> Result<PreparedRequest, String> {
    let (url, trusted_host) = token_url(provider, connection, "TWO_STEP")?;
    let values = template_values(connection);
    let lookup = |name: &str| lookup_path(&values, name);
    let mut params = Map::new();
    for (name, template) in provider.token_params.iter().flatten() {
        params.insert(name.clone(), fill(template, &lookup, name, 0)?);
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, template) in provider.token_headers.iter().flatten() {
        let value = interpolate(template, &lookup).ok_or_else(|| missing(name))?;
        headers.push((name.to_ascii_lowercase(), value));
    }
    let method = match provider.token_request_method.as_deref() {
        Some(m) if m.eq_ignore_ascii_case("GET") => "GET",
        _ => "POST",
    };
    let form = provider.body_format.as_deref() == Some("form");
    let body = match method {
        "GET" => None,
        _ if form => {
            let mut encoded = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in &params {
                encoded.append_pair(name, &super::super::param_text(value));
            }
            Some(encoded.finish())
        }
        _ => Some(Value::Object(params).to_string()),
    };
    if body.is_some() && !headers.iter().any(|(n, _)| n == "content-type") {
        let content_type = if form {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        headers.push(("content-type".into(), content_type.into()));
    }
    Ok(PreparedRequest {
        method: method.into(),
        url,
        headers,
        body,
        trusted_host,
        ..PreparedRequest::default()
    })
}

fn missing(name: &str) -> String {
    format!(
        "the token parameter \"{name}\" needs credentials or connection_config values this connection does not have"
    )
}

/// A `token_params` value with its string templates filled, objects and arrays filled throughout.
fn fill(
    template: &Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
    depth: usize,
) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("the token parameter \"{name}\" nests too deep"));
    }
    Ok(match template {
        Value::String(text) => {
            Value::String(interpolate(text, lookup).ok_or_else(|| missing(name))?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| fill(item, lookup, name, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, item)| Ok((key.clone(), fill(item, lookup, name, depth + 1)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// The credentials with the token found at `token_response.token` (a dotted path), its expiry from
/// `token_response.token_expiration` (seconds from now with `expireIn`, a date with `expireAt`), else
/// `token_expires_in_ms`, else one day.
pub fn credentials(
    provider: &Provider,
    old: &Value,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Value, String> {
    let response = response_json(body)?;
    let paths = provider.token_response.clone().unwrap_or_default();
    let token_path = paths.token.as_deref().unwrap_or("access_token");
    let token = lookup_path(&response, token_path)
        .ok_or_else(|| format!("the token endpoint's answer has no {token_path}"))?;
    let from_response = paths
        .token_expiration
        .as_deref()
        .and_then(|path| lookup_path(&response, path))
        .and_then(|value| {
            if paths.token_expiration_strategy.as_deref() == Some("expireAt") {
                parse_time(&value).map(|at| Value::String(at.to_rfc3339()))
            } else {
                value.parse::<i64>().ok().map(|secs| expires_at(now, secs))
            }
        });
    let expiry = from_response.unwrap_or_else(|| {
        let secs = provider
            .token_expires_in_ms
            .map_or(DEFAULT_LIFETIME_SECS, |ms| (ms / 1000) as i64);
        expires_at(now, secs)
    });
    let mut credentials = old.as_object().cloned().unwrap_or_default();
    credentials.insert("token".into(), Value::String(token));
    credentials.insert("expires_at".into(), expiry);
    if let Some(refresh) = paths
        .refresh_token
        .as_deref()
        .and_then(|path| lookup_path(&response, path))
    {
        credentials.insert("refresh_token".into(), Value::String(refresh));
    }
    credentials.insert("raw".into(), response);
    Ok(Value::Object(credentials))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provider(yaml: &str) -> Provider {
        serde_yaml::from_str(yaml).unwrap()
    }

    const YAML: &str = "auth_mode: TWO_STEP\ntoken_url: ${connectionConfig.base_url}/login\ntoken_params:\n  \
        username: ${credentials.username}\n  password: ${credentials.password}\n  nested:\n    org: ${connectionConfig.org}\n    \
        flag: true\ntoken_headers:\n  x-app: ${credentials.app}\ntoken_response:\n  token: data.jwt\n  token_expiration: data.ttl\n  \
        token_expiration_strategy: expireIn\n";

    fn connection() -> ConnectionInfo {
        ConnectionInfo {
            connection_config: json!({"base_url": "http://127.0.0.1:9", "org": "o1"}),
            credentials: json!({"type": "TWO_STEP", "username": "u", "password": "p", "app": "a"}),
            ..ConnectionInfo::default()
        }
    }

    #[test]
    fn fills_the_templates() {
        let request = token_request(&provider(YAML), &connection()).unwrap();
        assert_eq!(request.url, "http://127.0.0.1:9/login");
        assert_eq!(request.method, "POST");
        let body: Value = serde_json::from_str(request.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"username": "u", "password": "p", "nested": {"org": "o1", "flag": true}})
        );
        assert!(request.headers.contains(&("x-app".into(), "a".into())));
        assert!(
            request
                .headers
                .contains(&("content-type".into(), "application/json".into()))
        );
        let form = provider(&format!("{YAML}body_format: form\n"));
        let mut bare = connection();
        bare.credentials =
            json!({"type": "TWO_STEP", "username": "u", "password": "p", "app": "a"});
        let request = token_request(&form, &bare).unwrap();
        assert!(request.body.unwrap().starts_with("nested=%7B"));
        bare.credentials = json!({"type": "TWO_STEP", "username": "u"});
        assert!(
            token_request(&form, &bare)
                .unwrap_err()
                .contains("\"password\"")
        );
    }

    #[test]
    fn reads_the_token_where_the_provider_says() {
        let now = parse_time("2026-01-01T12:00:00Z").unwrap();
        let old = connection().credentials;
        let new = credentials(
            &provider(YAML),
            &old,
            br#"{"data":{"jwt":"j","ttl":60}}"#,
            now,
        )
        .unwrap();
        assert_eq!(new["token"], "j");
        assert_eq!(new["expires_at"], "2026-01-01T12:01:00+00:00");
        assert_eq!(new["username"], "u");
        let fixed = provider("token_response:\n  token: token\ntoken_expires_in_ms: 3600000\n");
        let new = credentials(&fixed, &old, br#"{"token":"t"}"#, now).unwrap();
        assert_eq!(new["expires_at"], "2026-01-01T13:00:00+00:00");
        assert!(credentials(&fixed, &old, br#"{"nope":1}"#, now).is_err());
    }
}
