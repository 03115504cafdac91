//! Credentials beyond a stored API key, password or OAuth2 token: tokens the engine fetches or computes for
//! a connection before its requests, per the provider's `auth_mode`, as Nango does.
//!
//! Each family lives in its own file and is pure: it builds the token request (or computes the token) and
//! reads the answer into the credentials to store. The script host decides when ([`needs_renewal`]), sends
//! the request, and stores the result under the connection's lock.
//!
//! | credentials `type` | what the connection gives                  | token                                  |
//! |--------------------|--------------------------------------------|----------------------------------------|
//! | `NONE`             | nothing                                    | none                                   |
//! | `OAUTH2_CC`        | `client_id`, `client_secret` (or the integration's) | client credentials grant at `token_url` |
//! | `TWO_STEP`         | the fields the provider's `token_params` use | the provider's own token request       |
//! | `JWT`              | the fields the provider's `token` template uses | a JWT signed locally                |
//! | `APP`              | `private_key` (and `app_id` in connection_config) | a GitHub App installation token  |
//! | `BILL`             | `username`, `password`, `organization_id`, `dev_key` | a session login at `token_url`  |
//! | `TBA`              | `token_id`, `token_secret` (consumer: `config_override` or the integration's) | an OAuth 1.0a signature per request |
//! | `SIGNATURE`        | `username`, `password`                     | a WSSE UsernameToken computed locally  |
//! | `CUSTOM`           | `private_key`, optional `user` OAuth2 token (and `app_id` in connection_config) | a GitHub App installation token, the user's token refreshed with it |

pub mod app;
pub mod bill;
pub mod client_credentials;
pub mod custom;
pub mod jwt;
pub mod signature;
pub mod tba;
pub mod two_step;

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;

use super::oauth::{self, OAuthClient};
use super::{ConnectionInfo, PreparedRequest, Provider};

/// The credential types a connection may hold.
pub const CREDENTIAL_TYPES: &[&str] = &[
    "API_KEY",
    "BASIC",
    "OAUTH2",
    "NONE",
    "OAUTH2_CC",
    "TWO_STEP",
    "JWT",
    "APP",
    "BILL",
    "TBA",
    "SIGNATURE",
    "CUSTOM",
];

/// How long before expiry a signed JWT is signed again.
const JWT_MARGIN: Duration = Duration::from_secs(30);

/// How a connection's token is renewed.
#[derive(Debug, Clone, PartialEq)]
pub enum Renewal {
    /// Send this request and read its answer with [`renewed_credentials`].
    Fetch(PreparedRequest),
    /// The new credentials, computed without a request.
    Computed(Value),
}

/// Checks the shape of the credentials `nango.create_connection` is given; the error names the missing
/// field, never a value.
pub fn check_credentials(credentials: &Value) -> Result<(), String> {
    let kind = credentials
        .get("type")
        .and_then(Value::as_str)
        .ok_or("credentials must be a JSON object with a \"type\"")?;
    let required: &[&str] = match kind {
        "API_KEY" => &["apiKey"],
        "BASIC" => &["username"],
        "OAUTH2" => &["access_token"],
        "NONE" | "OAUTH2_CC" | "TWO_STEP" | "JWT" => &[],
        "APP" | "CUSTOM" => &["private_key"],
        "BILL" => &["username", "password", "organization_id", "dev_key"],
        "TBA" => &["token_id", "token_secret"],
        "SIGNATURE" => &["username", "password"],
        _ => {
            let shown: String = kind.chars().take(40).collect();
            return Err(format!("unsupported credentials type \"{shown}\""));
        }
    };
    for field in required {
        if credentials
            .get(*field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!(
                "{kind} credentials need a non-empty \"{field}\" string"
            ));
        }
    }
    if let Some(expires_at) = credentials.get("expires_at").filter(|v| !v.is_null()) {
        expires_at
            .as_str()
            .and_then(parse_time)
            .ok_or("expires_at must be a timestamp")?;
    }
    if kind == "CUSTOM" {
        custom::check_user(credentials)?;
    }
    Ok(())
}

/// Whether the connection needs a new token before a request: an OAuth2 token about to expire with a
/// refresh token, or a fetched or computed token that is missing or about to expire.
pub fn needs_renewal(credentials: &Value, provider: &Provider, now: DateTime<Utc>) -> bool {
    match credential_type(credentials) {
        "OAUTH2" => oauth::needs_refresh(credentials, provider, now),
        kind @ ("OAUTH2_CC" | "TWO_STEP" | "JWT" | "APP" | "BILL" | "SIGNATURE" | "CUSTOM") => {
            // CUSTOM keeps its installation token under `app`.
            let holder = match kind {
                "CUSTOM" => credentials.get("app").unwrap_or(&Value::Null),
                _ => credentials,
            };
            let token = holder
                .get(token_field(credentials))
                .and_then(Value::as_str)
                .is_some_and(|t| !t.is_empty());
            // A signed JWT or WSSE token is cheap and short-lived (Ghost's and Emarsys' live 5 minutes): it
            // is signed again shortly before it expires rather than 15 minutes before.
            let default_margin = if matches!(credential_type(credentials), "JWT" | "SIGNATURE") {
                JWT_MARGIN
            } else {
                oauth::DEFAULT_REFRESH_MARGIN
            };
            let margin = provider
                .token_expiration_buffer
                .map_or(default_margin, Duration::from_secs);
            !token || expires_within(holder, margin, now)
        }
        _ => false,
    }
}

/// How to renew the connection's token.
pub fn renewal(
    provider: &Provider,
    connection: &ConnectionInfo,
    client: Option<&OAuthClient>,
    now: DateTime<Utc>,
) -> Result<Renewal, String> {
    match credential_type(&connection.credentials) {
        "OAUTH2" => {
            let client = client.ok_or(
                "the OAuth2 token is about to expire and the integration has no client id and secret to refresh it; set them with nango.create_integration",
            )?;
            oauth::refresh_request(provider, connection, client).map(Renewal::Fetch)
        }
        "OAUTH2_CC" => {
            client_credentials::token_request(provider, connection, client).map(Renewal::Fetch)
        }
        "TWO_STEP" => two_step::token_request(provider, connection).map(Renewal::Fetch),
        "JWT" => jwt::credentials(provider, &connection.credentials, now).map(Renewal::Computed),
        "APP" | "CUSTOM" => app::token_request(provider, connection, now).map(Renewal::Fetch),
        "BILL" => bill::token_request(provider, connection).map(Renewal::Fetch),
        "SIGNATURE" => {
            signature::credentials(provider, &connection.credentials, now).map(Renewal::Computed)
        }
        other => Err(format!("{other} credentials have no token to renew")),
    }
}

/// The credentials after the token endpoint answered `body` (status below 400).
pub fn renewed_credentials(
    provider: &Provider,
    old: &Value,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Value, String> {
    match credential_type(old) {
        "OAUTH2" => oauth::refreshed_credentials(old, body, now),
        "OAUTH2_CC" => client_credentials::credentials(old, body, now),
        "TWO_STEP" => two_step::credentials(provider, old, body, now),
        "APP" => app::credentials(old, body),
        "CUSTOM" => custom::credentials(old, body),
        "BILL" => bill::credentials(old, body, now),
        other => Err(format!("{other} credentials are not fetched")),
    }
}

/// Signs `request` for a mode that signs each request (TBA's OAuth 1.0a header); others are left as built.
pub fn sign_request(
    request: &mut PreparedRequest,
    connection: &ConnectionInfo,
    client: Option<&OAuthClient>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if credential_type(&connection.credentials) != "TBA" {
        return Ok(());
    }
    let mut nonce = [0u8; 16];
    getrandom::getrandom(&mut nonce)
        .map_err(|_| "no randomness for the OAuth nonce".to_string())?;
    let header = tba::authorization(
        connection,
        client,
        &request.method,
        &request.url,
        &hex::encode(nonce),
        now.timestamp(),
    )?;
    request.headers.retain(|(name, _)| name != "authorization");
    request.headers.push(("authorization".into(), header));
    request.credential_headers.push("authorization".into());
    Ok(())
}

/// The request that goes with a renewal of `connection`'s token, whose failure keeps what is stored: the
/// refresh of a CUSTOM connection's user token (see [`custom`]).
pub fn companion_refresh(
    provider: &Provider,
    connection: &ConnectionInfo,
    client: Option<&OAuthClient>,
) -> Option<PreparedRequest> {
    (credential_type(&connection.credentials) == "CUSTOM")
        .then(|| custom::user_refresh(provider, connection, client))
        .flatten()
}

/// The credentials after the companion refresh answered `body` (status below 400).
pub fn companion_refreshed(old: &Value, body: &[u8], now: DateTime<Utc>) -> Result<Value, String> {
    custom::with_refreshed_user(old, body, now)
}

/// The connection as scripts and the proxy see it, as Nango keeps it: a CUSTOM connection shows its app
/// credentials and its user token in `connection_config.userCredentials` (see [`custom`]); others as stored.
pub fn as_seen(connection: ConnectionInfo) -> ConnectionInfo {
    if credential_type(&connection.credentials) == "CUSTOM" {
        custom::as_nango(connection)
    } else {
        connection
    }
}

/// What a failed renewal is called in errors.
pub fn describe(credentials: &Value) -> &'static str {
    match credential_type(credentials) {
        "OAUTH2" => "refreshing the OAuth2 token",
        "OAUTH2_CC" => "fetching the OAuth2 client credentials token",
        "TWO_STEP" => "fetching the two-step token",
        "APP" | "CUSTOM" => "fetching the GitHub App installation token",
        "BILL" => "logging in to BILL",
        _ => "renewing the token",
    }
}

fn credential_type(credentials: &Value) -> &str {
    credentials
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The field holding the token: `access_token` for OAuth2, APP and CUSTOM's `app`, `session_id` for BILL, `token` for the
/// others (as Nango).
fn token_field(credentials: &Value) -> &'static str {
    match credential_type(credentials) {
        "OAUTH2" | "APP" | "CUSTOM" => "access_token",
        "BILL" => "session_id",
        _ => "token",
    }
}

fn expires_within(credentials: &Value, margin: Duration, now: DateTime<Utc>) -> bool {
    credentials
        .get("expires_at")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .is_some_and(|expires_at| {
            expires_at
                .signed_duration_since(now)
                .to_std()
                .unwrap_or_default()
                < margin
        })
}

/// An RFC 3339 time, or Postgres' text form of a timestamptz.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .or_else(|| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z").ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A token endpoint's answer as JSON; form-encoded answers (some providers) as an object of strings.
pub(crate) fn response_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body)
        .ok()
        .or_else(|| {
            let pairs: serde_json::Map<String, Value> = url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            (!pairs.is_empty()).then_some(Value::Object(pairs))
        })
        .ok_or_else(|| "the token endpoint answered with something that is not a token".to_string())
}

/// The provider's token URL for `mode` (a string, or one per mode), resolved with the connection's values,
/// and the host it names itself (reached wherever it resolves, as the base URL's host).
pub(crate) fn token_url(
    provider: &Provider,
    connection: &ConnectionInfo,
    mode: &str,
) -> Result<(String, Option<String>), String> {
    let template = match &provider.token_url {
        Some(Value::String(url)) => url.clone(),
        Some(Value::Object(by_mode)) => by_mode
            .get(mode)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    if template.is_empty() {
        return Err(format!("the provider has no {mode} token_url"));
    }
    let values = super::request::template_values(connection);
    let lookup = |name: &str| super::template::lookup_path(&values, name);
    for candidate in template.split("||").map(str::trim) {
        if let Some(url) =
            super::template::interpolate_url(candidate, &lookup).map_err(|e| e.to_string())?
        {
            let trusted_host = super::template::names_its_host(candidate)
                .then(|| url::Url::parse(&url).ok())
                .flatten()
                .and_then(|u| u.host_str().map(str::to_string));
            return Ok((url, trusted_host));
        }
    }
    Err(format!(
        "the token_url \"{template}\" needs connection_config values this connection does not have"
    ))
}

/// `expires_at` `seconds` from `now`, as stored.
pub(crate) fn expires_at(now: DateTime<Utc>, seconds: i64) -> Value {
    Value::String((now + chrono::Duration::seconds(seconds)).to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_credential_shapes() {
        assert_eq!(check_credentials(&json!({"type": "NONE"})), Ok(()));
        assert_eq!(
            check_credentials(&json!({"type": "OAUTH2_CC", "client_id": "a"})),
            Ok(())
        );
        assert_eq!(
            check_credentials(&json!({"type": "APP"})).unwrap_err(),
            "APP credentials need a non-empty \"private_key\" string"
        );
        assert!(
            check_credentials(&json!({"type": "MAGIC"}))
                .unwrap_err()
                .starts_with("unsupported credentials type \"MAGIC\"")
        );
        assert_eq!(
            check_credentials(&json!({"type": "JWT", "expires_at": "soon"})).unwrap_err(),
            "expires_at must be a timestamp"
        );
        assert_eq!(
            check_credentials(&json!({"type": "CUSTOM", "user": {"access_token": "t"}}))
                .unwrap_err(),
            "CUSTOM credentials need a non-empty \"private_key\" string"
        );
        assert_eq!(
            check_credentials(&json!({"type": "CUSTOM", "private_key": "k", "user": {}}))
                .unwrap_err(),
            "CUSTOM credentials need a non-empty \"user.access_token\" string"
        );
    }

    #[test]
    fn renews_missing_or_expiring_tokens_only() {
        let provider = Provider::default();
        let now = parse_time("2026-01-01T12:00:00Z").unwrap();
        assert!(needs_renewal(&json!({"type": "OAUTH2_CC"}), &provider, now));
        let fresh =
            json!({"type": "OAUTH2_CC", "token": "t", "expires_at": "2026-01-01T13:00:00Z"});
        assert!(!needs_renewal(&fresh, &provider, now));
        let expiring =
            json!({"type": "TWO_STEP", "token": "t", "expires_at": "2026-01-01T12:05:00Z"});
        assert!(needs_renewal(&expiring, &provider, now));
        let app = json!({"type": "APP", "access_token": "t", "expires_at": "2026-01-01T13:00:00Z"});
        assert!(!needs_renewal(&app, &provider, now));
        assert!(!needs_renewal(&json!({"type": "NONE"}), &provider, now));
        // CUSTOM: the installation token under `app`; the user's token alone never triggers a renewal.
        let custom = json!({"type": "CUSTOM", "private_key": "k",
            "user": {"access_token": "u", "refresh_token": "r", "expires_at": "2026-01-01T12:01:00Z"}});
        assert!(needs_renewal(&custom, &provider, now));
        let mut with_app = custom.clone();
        with_app["app"] = json!({"access_token": "t", "expires_at": "2026-01-01T13:00:00Z"});
        assert!(!needs_renewal(&with_app, &provider, now));
        with_app["app"]["expires_at"] = json!("2026-01-01T12:10:00Z");
        assert!(needs_renewal(&with_app, &provider, now));
        assert!(!needs_renewal(
            &json!({"type": "API_KEY", "apiKey": "k"}),
            &provider,
            now
        ));
    }
}
