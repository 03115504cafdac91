//! OAUTH2_CC: the OAuth2 client credentials grant. The client id and secret are the connection's
//! (`credentials.client_id`/`client_secret`), else the integration's. The token is cached in the
//! credentials with its `expires_at` and fetched again before it expires.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::super::oauth::{OAuthClient, form_token_request};
use super::super::{ConnectionInfo, PreparedRequest, Provider};
use super::{expires_at, response_json, token_url};

/// How long a token lives when the answer has no `expires_in`.
const DEFAULT_LIFETIME_SECS: i64 = 55 * 60;

/// The token request: a form POST of `grant_type=client_credentials`, the provider's `token_params`, and
/// the client id and secret (in the body, or as Basic auth with `token_request_auth_method: basic`).
pub fn token_request(
    provider: &Provider,
    connection: &ConnectionInfo,
    integration: Option<&OAuthClient>,
) -> Result<PreparedRequest, String> {
    let client = client(&connection.credentials, integration).ok_or(
        "OAUTH2_CC credentials need client_id and client_secret, in the connection's credentials or the integration's",
    )?;
    let (url, trusted_host) = token_url(provider, connection, "OAUTH2CC")
        .or_else(|_| token_url(provider, connection, "OAUTH2"))?;
    Ok(form_token_request(
        provider,
        &client,
        "client_credentials",
        provider.token_params.as_ref(),
        &[],
        (url, trusted_host),
    ))
}

/// The connection's own client, else the integration's.
fn client(credentials: &Value, integration: Option<&OAuthClient>) -> Option<OAuthClient> {
    let field = |name: &str| {
        credentials
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    match (field("client_id"), field("client_secret")) {
        (Some(client_id), Some(client_secret)) => Some(OAuthClient {
            client_id,
            client_secret,
        }),
        _ => integration.cloned(),
    }
}

/// The credentials with the new token: `token`, `expires_at` (from `expires_in`, else 55 minutes), the raw
/// answer, and the connection's own client id and secret kept.
pub fn credentials(old: &Value, body: &[u8], now: DateTime<Utc>) -> Result<Value, String> {
    let response = response_json(body)?;
    let token = response
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("the token endpoint's answer has no access_token")?;
    let lifetime = response
        .get("expires_in")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(DEFAULT_LIFETIME_SECS);
    let mut credentials = json!({
        "type": "OAUTH2_CC",
        "token": token,
        "expires_at": expires_at(now, lifetime),
        "raw": response,
    });
    for kept in ["client_id", "client_secret"] {
        if let Some(value) = old.get(kept) {
            credentials[kept] = value.clone();
        }
    }
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(yaml: &str) -> Provider {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn builds_the_grant_with_the_connections_client_or_the_integrations() {
        let p = provider(
            "token_url: ${connectionConfig.base_url}/cc/token\ntoken_params:\n  grant_type: client_credentials\n  scope: read\n",
        );
        let connection = ConnectionInfo {
            connection_config: json!({"base_url": "http://127.0.0.1:9"}),
            credentials: json!({"type": "OAUTH2_CC", "client_id": "cid", "client_secret": "s 1"}),
            ..ConnectionInfo::default()
        };
        let request = token_request(&p, &connection, None).unwrap();
        assert_eq!(request.url, "http://127.0.0.1:9/cc/token");
        assert_eq!(
            request.body.as_deref(),
            Some("grant_type=client_credentials&scope=read&client_id=cid&client_secret=s+1")
        );
        let integration = OAuthClient {
            client_id: "id".into(),
            client_secret: "secret".into(),
        };
        let bare = ConnectionInfo {
            credentials: json!({"type": "OAUTH2_CC"}),
            ..connection.clone()
        };
        let basic = provider(
            "token_url: ${connectionConfig.base_url}/t\ntoken_request_auth_method: basic\n",
        );
        let request = token_request(&basic, &bare, Some(&integration)).unwrap();
        assert_eq!(
            request.body.as_deref(),
            Some("grant_type=client_credentials")
        );
        assert!(
            request
                .headers
                .contains(&("authorization".into(), "Basic aWQ6c2VjcmV0".into()))
        );
        assert!(token_request(&basic, &bare, None).is_err());
    }

    #[test]
    fn reads_the_token() {
        let now = super::super::parse_time("2026-01-01T12:00:00Z").unwrap();
        let old = json!({"type": "OAUTH2_CC", "client_id": "cid", "client_secret": "s"});
        let new = credentials(&old, br#"{"access_token":"t","expires_in":600}"#, now).unwrap();
        assert_eq!(new["token"], "t");
        assert_eq!(new["expires_at"], "2026-01-01T12:10:00+00:00");
        assert_eq!(new["client_id"], "cid");
        let default = credentials(&old, br#"{"access_token":"t"}"#, now).unwrap();
        assert_eq!(default["expires_at"], "2026-01-01T12:55:00+00:00");
        assert!(credentials(&old, br#"{"error":"invalid_client"}"#, now).is_err());
    }
}
