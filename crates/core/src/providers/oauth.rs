//! OAuth2 token refresh, as Nango does it before a proxied request: a token that expires within the
//! provider's `token_expiration_buffer` (15 minutes by default) and has a refresh token is exchanged at the
//! provider's `token_url` (`grant_type=refresh_token`, with the integration's client id and secret), and the
//! new tokens replace the old ones. Serialising concurrent refreshes of one connection is the host's job.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::auth::parse_time;
use super::{ConnectionInfo, PreparedRequest, Provider};

/// Refresh this long before expiry unless the provider says otherwise (Nango's `REFRESH_MARGIN_MS`).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);

/// The integration's OAuth2 client.
#[derive(Debug, Clone, Default)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
}

/// Whether `credentials` hold an OAuth2 token that expires within the provider's margin and can be
/// refreshed. Credentials without `expires_at` or without a refresh token are never refreshed.
pub fn needs_refresh(credentials: &Value, provider: &Provider, now: DateTime<Utc>) -> bool {
    if credentials.get("type").and_then(Value::as_str) != Some("OAUTH2") {
        return false;
    }
    let has_refresh_token = credentials
        .get("refresh_token")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    let Some(expires_at) = credentials
        .get("expires_at")
        .and_then(Value::as_str)
        .and_then(parse_time)
    else {
        return false;
    };
    let margin = provider
        .token_expiration_buffer
        .map_or(DEFAULT_REFRESH_MARGIN, Duration::from_secs);
    has_refresh_token
        && expires_at
            .signed_duration_since(now)
            .to_std()
            .unwrap_or_default()
            < margin
}

/// The refresh request for `connection`: a form POST to the provider's `token_url`.
pub fn refresh_request(
    provider: &Provider,
    connection: &ConnectionInfo,
    client: &OAuthClient,
) -> Result<PreparedRequest, String> {
    let (url, trusted_host) = super::auth::token_url(provider, connection, "OAUTH2")?;
    let refresh_token = connection
        .credentials
        .get("refresh_token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let params = provider
        .refresh_params
        .as_ref()
        .or(provider.token_params.as_ref());
    Ok(form_token_request(
        provider,
        client,
        "refresh_token",
        params,
        &[("refresh_token", refresh_token)],
        (url, trusted_host),
    ))
}

/// A form POST to a token endpoint: `grant_type`, the provider's scalar `params` (a `grant_type` among
/// them is ignored), `extra`, and the client id and secret in the body, or as Basic auth with
/// `token_request_auth_method: basic`.
pub(crate) fn form_token_request(
    provider: &Provider,
    client: &OAuthClient,
    grant_type: &str,
    params: Option<&super::Params>,
    extra: &[(&str, &str)],
    (url, trusted_host): (String, Option<String>),
) -> PreparedRequest {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", grant_type);
    for (name, value) in params.into_iter().flatten() {
        if name != "grant_type" && !value.is_object() && !value.is_array() {
            form.append_pair(name, &super::param_text(value));
        }
    }
    for (name, value) in extra {
        form.append_pair(name, value);
    }
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("accept".to_string(), "application/json".to_string()),
    ];
    if provider.token_request_auth_method.as_deref() == Some("basic") {
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", client.client_id, client.client_secret));
        headers.push(("authorization".into(), format!("Basic {encoded}")));
    } else {
        form.append_pair("client_id", &client.client_id);
        form.append_pair("client_secret", &client.client_secret);
    }
    PreparedRequest {
        method: "POST".into(),
        url,
        headers,
        body: Some(form.finish()),
        trusted_host,
        ..PreparedRequest::default()
    }
}

/// The credentials after a successful refresh response: the new access token, the new refresh token (or
/// the old one when the provider does not rotate it), `expires_at` from `expires_in`, and the raw response.
pub fn refreshed_credentials(
    old: &Value,
    response_body: &[u8],
    now: DateTime<Utc>,
) -> Result<Value, String> {
    let response = super::auth::response_json(response_body)?;
    let access_token = response
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("the token endpoint's answer has no access_token")?;
    let refresh_token = response
        .get("refresh_token")
        .and_then(Value::as_str)
        .or_else(|| old.get("refresh_token").and_then(Value::as_str));
    let expires_at = response
        .get("expires_in")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        .map(|seconds| (now + chrono::Duration::seconds(seconds)).to_rfc3339());
    Ok(json!({
        "type": "OAUTH2",
        "access_token": access_token,
        "refresh_token": refresh_token,
        "expires_at": expires_at,
        "raw": response,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(yaml: &str) -> Provider {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(text).unwrap()
    }

    #[test]
    fn refreshes_within_the_margin_only() {
        let p = provider("token_url: https://x/token\n");
        let now = at("2026-01-01T12:00:00Z");
        let creds = |expires: &str| json!({"type": "OAUTH2", "access_token": "a", "refresh_token": "r", "expires_at": expires});
        assert!(needs_refresh(&creds("2026-01-01T12:10:00Z"), &p, now));
        assert!(needs_refresh(&creds("2026-01-01T11:00:00Z"), &p, now));
        assert!(!needs_refresh(&creds("2026-01-01T12:20:00Z"), &p, now));
        assert!(needs_refresh(&creds("2026-01-01 12:10:00+00"), &p, now));
        let no_refresh_token =
            json!({"type": "OAUTH2", "access_token": "a", "expires_at": "2026-01-01T12:01:00Z"});
        assert!(!needs_refresh(&no_refresh_token, &p, now));
        let no_expiry = json!({"type": "OAUTH2", "access_token": "a", "refresh_token": "r"});
        assert!(!needs_refresh(&no_expiry, &p, now));
        let buffer = provider("token_url: https://x/token\ntoken_expiration_buffer: 3600\n");
        assert!(needs_refresh(&creds("2026-01-01T12:30:00Z"), &buffer, now));
    }

    #[test]
    fn builds_the_refresh_request() {
        let p = provider(
            "token_url: ${connectionConfig.base_url}/oauth/token\nrefresh_params:\n  grant_type: refresh_token\n  scope: all\n",
        );
        let connection = ConnectionInfo {
            connection_config: json!({"base_url": "http://127.0.0.1:9"}),
            credentials: json!({"type": "OAUTH2", "access_token": "a", "refresh_token": "r 1"}),
            ..ConnectionInfo::default()
        };
        let client = OAuthClient {
            client_id: "id".into(),
            client_secret: "secret".into(),
        };
        let request = refresh_request(&p, &connection, &client).unwrap();
        assert_eq!(request.url, "http://127.0.0.1:9/oauth/token");
        assert_eq!(
            request.body.as_deref(),
            Some(
                "grant_type=refresh_token&scope=all&refresh_token=r+1&client_id=id&client_secret=secret"
            )
        );
        let basic = provider("token_url: https://x/token\ntoken_request_auth_method: basic\n");
        let request = refresh_request(&basic, &connection, &client).unwrap();
        assert!(
            request
                .headers
                .contains(&("authorization".into(), "Basic aWQ6c2VjcmV0".into()))
        );
        assert!(refresh_request(&provider("display_name: x\n"), &connection, &client).is_err());
    }

    #[test]
    fn reads_the_token_response() {
        let now = at("2026-01-01T12:00:00Z");
        let old = json!({"type": "OAUTH2", "access_token": "a", "refresh_token": "r"});
        let new =
            refreshed_credentials(&old, br#"{"access_token":"b","expires_in":3600}"#, now).unwrap();
        assert_eq!(new["access_token"], "b");
        assert_eq!(new["refresh_token"], "r");
        assert_eq!(new["expires_at"], "2026-01-01T13:00:00+00:00");
        let form = refreshed_credentials(&old, b"access_token=c&refresh_token=s", now).unwrap();
        assert_eq!(form["access_token"], "c");
        assert_eq!(form["refresh_token"], "s");
        assert!(refreshed_credentials(&old, br#"{"error":"invalid_grant"}"#, now).is_err());
    }
}
