//! CUSTOM: a GitHub App that also authorises users (Nango's `github-app-oauth`). The connection holds the
//! app's installation, whose token is fetched as for APP (see [`super::app`]), and optionally the user's
//! OAuth2 token.
//!
//! Stored as Nango's combined credentials, with the app's private key kept for the next token:
//! `{"type": "CUSTOM", "private_key": …, "app": {"type": "APP", "access_token", "expires_at", "raw"},
//! "user": {"access_token", "refresh_token", "expires_at"} | null}`.
//!
//! Scripts and the proxy see the connection as Nango keeps it once the installation token is fetched
//! ([`as_nango`]): the credentials are the app's (type `APP`, so proxied requests carry `Bearer` the
//! installation token and `getToken` returns that object) and the user's token is
//! `connection_config.userCredentials`. As in Nango, the user's token is refreshed when the installation
//! token is renewed (when it has a refresh token), and a failed user refresh keeps the old one.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::super::oauth::{self, OAuthClient};
use super::super::{ConnectionInfo, PreparedRequest, Provider};
use super::{app, parse_time};

/// Checks the optional `user` token: an object with a non-empty `access_token` and, if any, a valid
/// `expires_at`. The error names the field, never a value.
pub fn check_user(credentials: &Value) -> Result<(), String> {
    let user = match credentials.get("user") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(user)) => user,
        Some(_) => {
            return Err(
                "CUSTOM credentials' \"user\" must be an object holding the user's OAuth2 token"
                    .into(),
            );
        }
    };
    if user
        .get("access_token")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("CUSTOM credentials need a non-empty \"user.access_token\" string".into());
    }
    if let Some(expires_at) = user.get("expires_at").filter(|v| !v.is_null()) {
        expires_at
            .as_str()
            .and_then(parse_time)
            .ok_or("user.expires_at must be a timestamp")?;
    }
    Ok(())
}

/// The user's OAuth2 credentials, typed as Nango types them.
fn user(credentials: &Value) -> Option<Value> {
    let mut user = credentials.get("user")?.as_object()?.clone();
    user.insert("type".into(), json!("OAUTH2"));
    Some(Value::Object(user))
}

/// The credentials with the installation token answered in `body` stored under `app`.
pub fn credentials(old: &Value, body: &[u8]) -> Result<Value, String> {
    let app = app::credentials(&json!({"type": "APP"}), body)?;
    let mut credentials = old.clone();
    credentials["app"] = app;
    Ok(credentials)
}

/// The refresh of the user's token that goes with a renewal of the installation token: `None` when the
/// user's token has no refresh token, the integration has no OAuth client, or the provider no OAuth2
/// `token_url` (then the user's token is kept as it is, as Nango keeps it).
pub fn user_refresh(
    provider: &Provider,
    connection: &ConnectionInfo,
    client: Option<&OAuthClient>,
) -> Option<PreparedRequest> {
    let user = user(&connection.credentials)?;
    user.get("refresh_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())?;
    let as_user = ConnectionInfo {
        credentials: user,
        ..connection.clone()
    };
    oauth::refresh_request(provider, &as_user, client?).ok()
}

/// The credentials with the user's token refreshed by the answer `body`.
pub fn with_refreshed_user(old: &Value, body: &[u8], now: DateTime<Utc>) -> Result<Value, String> {
    let refreshed = oauth::refreshed_credentials(&user(old).unwrap_or_default(), body, now)?;
    let mut credentials = old.clone();
    credentials["user"] = refreshed;
    Ok(credentials)
}

/// The connection as Nango shows it: the app's credentials (never the private key), and the user's
/// token as `connection_config.userCredentials`.
pub fn as_nango(mut connection: ConnectionInfo) -> ConnectionInfo {
    let mut app = connection
        .credentials
        .get("app")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    app.insert("type".into(), json!("APP"));
    if let (Some(user), Some(config)) = (
        user(&connection.credentials),
        connection.connection_config.as_object_mut(),
    ) {
        config.insert("userCredentials".into(), user);
    }
    connection.credentials = Value::Object(app);
    connection
}

#[cfg(test)]
mod tests {
    use super::*;

    fn combined() -> Value {
        json!({"type": "CUSTOM", "private_key": "k",
            "user": {"access_token": "ghu_1", "refresh_token": "ghr_1", "expires_at": "2026-01-01T20:00:00Z"}})
    }

    #[test]
    fn checks_the_user_token() {
        assert_eq!(check_user(&json!({"type": "CUSTOM"})), Ok(()));
        assert_eq!(check_user(&combined()), Ok(()));
        assert_eq!(
            check_user(&json!({"user": {"refresh_token": "secret"}})).unwrap_err(),
            "CUSTOM credentials need a non-empty \"user.access_token\" string"
        );
        assert!(
            check_user(&json!({"user": "secret"}))
                .unwrap_err()
                .contains("\"user\"")
        );
        assert_eq!(
            check_user(&json!({"user": {"access_token": "t", "expires_at": 5}})).unwrap_err(),
            "user.expires_at must be a timestamp"
        );
    }

    #[test]
    fn stores_the_installation_token_under_app() {
        let new = credentials(
            &combined(),
            br#"{"token":"ghs_1","expires_at":"2026-01-01T13:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(new["app"]["type"], "APP");
        assert_eq!(new["app"]["access_token"], "ghs_1");
        assert_eq!(new["app"]["expires_at"], "2026-01-01T13:00:00Z");
        assert_eq!(new["user"]["access_token"], "ghu_1");
        assert_eq!(new["private_key"], "k");
    }

    #[test]
    fn refreshes_the_user_token_at_the_oauth2_token_url() {
        let provider: Provider = serde_yaml::from_str(
            "auth_mode: CUSTOM\ntoken_url:\n  OAUTH2: https://github.com/login/oauth/access_token\n  APP: https://api.github.com/app/installations/${connectionConfig.installation_id}/access_tokens\n",
        )
        .unwrap();
        let connection = ConnectionInfo {
            credentials: combined(),
            connection_config: json!({"installation_id": "7"}),
            ..ConnectionInfo::default()
        };
        let client = OAuthClient {
            client_id: "id".into(),
            client_secret: "secret".into(),
        };
        assert_eq!(user_refresh(&provider, &connection, None), None);
        let request = user_refresh(&provider, &connection, Some(&client)).unwrap();
        assert_eq!(request.url, "https://github.com/login/oauth/access_token");
        assert!(request.body.unwrap().contains("refresh_token=ghr_1"));
        let mut no_refresh = connection.clone();
        no_refresh.credentials["user"]["refresh_token"] = Value::Null;
        assert_eq!(user_refresh(&provider, &no_refresh, Some(&client)), None);

        let now = parse_time("2026-01-01T12:00:00Z").unwrap();
        let new = with_refreshed_user(
            &combined(),
            br#"{"access_token":"ghu_2","expires_in":28800}"#,
            now,
        )
        .unwrap();
        assert_eq!(new["user"]["access_token"], "ghu_2");
        assert_eq!(new["user"]["refresh_token"], "ghr_1");
        assert_eq!(new["private_key"], "k");
    }

    #[test]
    fn shows_the_app_token_and_the_user_credentials_as_nango() {
        let mut stored = combined();
        stored["app"] = json!({"type": "APP", "access_token": "ghs_1", "raw": {"token": "ghs_1"}});
        let seen = as_nango(ConnectionInfo {
            credentials: stored,
            connection_config: json!({"installation_id": "7"}),
            ..ConnectionInfo::default()
        });
        assert_eq!(
            seen.credentials,
            json!({"type": "APP", "access_token": "ghs_1", "raw": {"token": "ghs_1"}})
        );
        assert_eq!(
            seen.connection_config["userCredentials"]["access_token"],
            "ghu_1"
        );
        assert_eq!(seen.connection_config["userCredentials"]["type"], "OAUTH2");
        assert_eq!(seen.connection_config["installation_id"], "7");
    }
}
