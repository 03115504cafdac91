//! APP: a GitHub App installation token. The engine signs an RS256 JWT as the app (`iss` = the app id,
//! valid 10 minutes) with the app's private key and POSTs it to the provider's APP `token_url`
//! (`…/app/installations/${connectionConfig.installation_id}/access_tokens`); the answer's `token` and
//! `expires_at` become the connection's `access_token`. CUSTOM connections fetch theirs the same way.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};

use super::super::{ConnectionInfo, PreparedRequest, Provider};
use super::jwt::encoding_key;
use super::{response_json, token_url};

/// The app id: the connection_config's `app_id` (as Nango stores it), else the credentials'.
fn app_id(connection: &ConnectionInfo) -> Option<String> {
    [&connection.connection_config, &connection.credentials]
        .into_iter()
        .find_map(|source| match source.get("app_id")? {
            Value::String(id) if !id.is_empty() => Some(id.clone()),
            Value::Number(id) => Some(id.to_string()),
            _ => None,
        })
}

/// The installation token request, authenticated by a freshly signed app JWT.
pub fn token_request(
    provider: &Provider,
    connection: &ConnectionInfo,
    now: DateTime<Utc>,
) -> Result<PreparedRequest, String> {
    let app_id = app_id(connection).ok_or(
        "GitHub App connections need an app_id in connection_config (the GitHub App's id)",
    )?;
    let private_key = connection
        .credentials
        .get("private_key")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // GitHub allows clocks 60 s apart and app tokens of at most 10 minutes.
    let claims = json!({
        "iat": now.timestamp() - 60,
        "exp": now.timestamp() + 9 * 60,
        "iss": app_id,
    });
    let key = encoding_key(Algorithm::RS256, private_key)?;
    let jwt =
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).map_err(|_| {
            "the app JWT could not be signed with the connection's private key".to_string()
        })?;
    let (url, trusted_host) = token_url(provider, connection, "APP")?;
    Ok(PreparedRequest {
        method: "POST".into(),
        url,
        headers: vec![
            ("authorization".into(), format!("Bearer {jwt}")),
            ("accept".into(), "application/vnd.github+json".into()),
        ],
        body: None,
        trusted_host,
        ..PreparedRequest::default()
    })
}

/// The credentials with the installation token (`access_token`, `expires_at`, the raw answer); the
/// private key stays for the next token.
pub fn credentials(old: &Value, body: &[u8]) -> Result<Value, String> {
    let response = response_json(body)?;
    let token = response
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("the installation token answer has no token")?;
    let mut credentials = old.as_object().cloned().unwrap_or_default();
    credentials.insert("access_token".into(), Value::String(token.to_string()));
    credentials.insert(
        "expires_at".into(),
        response.get("expires_at").cloned().unwrap_or(Value::Null),
    );
    credentials.insert("raw".into(), response);
    Ok(Value::Object(credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_connection_without_app_id_or_key() {
        let provider: Provider = serde_yaml::from_str(
            "auth_mode: APP\ntoken_url: https://api.github.com/app/installations/${connectionConfig.installation_id}/access_tokens\n",
        )
        .unwrap();
        let mut connection = ConnectionInfo {
            connection_config: json!({"installation_id": "7"}),
            credentials: json!({"type": "APP", "private_key": "not a key"}),
            ..ConnectionInfo::default()
        };
        let now = Utc::now();
        assert!(
            token_request(&provider, &connection, now)
                .unwrap_err()
                .contains("app_id")
        );
        connection.connection_config["app_id"] = json!(42);
        assert_eq!(
            token_request(&provider, &connection, now).unwrap_err(),
            "the connection's signing key is not a usable key"
        );
    }

    #[test]
    fn signs_the_app_jwt_with_the_private_key() {
        let keys = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/e2e/fixtures/keys/"
        );
        let private_key = std::fs::read_to_string(format!("{keys}github-app.pem")).unwrap();
        let public_key = std::fs::read_to_string(format!("{keys}github-app.pub.pem")).unwrap();
        let provider: Provider = serde_yaml::from_str(
            "auth_mode: APP\ntoken_url: ${connectionConfig.base_url}/app/installations/${connectionConfig.installation_id}/access_tokens\n",
        )
        .unwrap();
        let connection = ConnectionInfo {
            connection_config: json!({"base_url": "http://127.0.0.1:9", "installation_id": "7", "app_id": "42"}),
            credentials: json!({"type": "APP", "private_key": private_key}),
            ..ConnectionInfo::default()
        };
        let request = token_request(&provider, &connection, Utc::now()).unwrap();
        assert_eq!(
            request.url,
            "http://127.0.0.1:9/app/installations/7/access_tokens"
        );
        let jwt = request.headers[0].1.strip_prefix("Bearer ").unwrap();
        let decoded = jsonwebtoken::decode::<Value>(
            jwt,
            &jsonwebtoken::DecodingKey::from_rsa_pem(public_key.as_bytes()).unwrap(),
            &jsonwebtoken::Validation::new(Algorithm::RS256),
        )
        .unwrap();
        assert_eq!(decoded.claims["iss"], "42");
    }

    #[test]
    fn reads_the_installation_token() {
        let old = json!({"type": "APP", "private_key": "k"});
        let new = credentials(
            &old,
            br#"{"token":"ghs_1","expires_at":"2026-01-01T13:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(new["access_token"], "ghs_1");
        assert_eq!(new["expires_at"], "2026-01-01T13:00:00Z");
        assert_eq!(new["private_key"], "k");
    }
}
