//! SIGNATURE: a WSSE UsernameToken the engine computes from the connection's `username` and `password`,
//! as Nango does for Emarsys (`signature.protocol: WSSE`): a random nonce and the current time are hashed
//! with the password, and the token lives the provider's `token.expires_in_ms`. It goes where the
//! provider's `proxy.headers` put `${accessToken}` (Emarsys' `x-wsse`), and as a Bearer token (Nango's
//! default for this mode).

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha1::{Digest, Sha1};

use super::super::Provider;
use super::expires_at;

/// How long a token lives when the provider does not say (Emarsys allows five minutes of clock skew).
const DEFAULT_LIFETIME_MS: u64 = 5 * 60 * 1000;

/// The credentials with a new `token` and its `expires_at`.
pub fn credentials(provider: &Provider, old: &Value, now: DateTime<Utc>) -> Result<Value, String> {
    let protocol = provider
        .signature
        .as_ref()
        .and_then(|s| s.get("protocol"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if protocol != "WSSE" {
        return Err(format!(
            "the provider's signature protocol \"{}\" is not supported (WSSE is)",
            protocol.chars().take(40).collect::<String>()
        ));
    }
    let field = |name: &str| old.get(name).and_then(Value::as_str).unwrap_or_default();
    let mut nonce = [0u8; 16];
    getrandom::getrandom(&mut nonce).map_err(|_| "no randomness for the WSSE nonce".to_string())?;
    let token = wsse(
        field("username"),
        field("password"),
        &hex::encode(nonce),
        &now.to_rfc3339_opts(SecondsFormat::Millis, true),
    );
    let lifetime_ms = provider
        .token
        .as_ref()
        .and_then(|t| t.get("expires_in_ms"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_LIFETIME_MS);
    let mut credentials = old.as_object().cloned().unwrap_or_default();
    credentials.insert("token".into(), Value::String(token));
    credentials.insert(
        "expires_at".into(),
        expires_at(
            now,
            i64::try_from(lifetime_ms / 1000).unwrap_or(i64::MAX / 2),
        ),
    );
    Ok(Value::Object(credentials))
}

/// The WSSE UsernameToken: `PasswordDigest` is the base64 of the hex SHA-1 of nonce, time and password
/// (Emarsys' form, which hashes the hex text rather than the raw digest).
pub fn wsse(username: &str, password: &str, nonce: &str, created: &str) -> String {
    let digest = hex::encode(Sha1::digest(format!("{nonce}{created}{password}")));
    let digest = base64::engine::general_purpose::STANDARD.encode(digest);
    format!(
        "UsernameToken Username=\"{username}\", PasswordDigest=\"{digest}\", Nonce=\"{nonce}\", Created=\"{created}\""
    )
}

#[cfg(test)]
mod tests {
    use super::super::parse_time;
    use super::*;
    use serde_json::json;

    #[test]
    fn computes_emarsys_wsse_header() {
        // The digest computed independently: base64(hex(sha1("d36e3162…" + created + "secret"))).
        let token = wsse(
            "customer001",
            "secret",
            "d36e316282959a9ed4c89851497a717f",
            "2026-01-01T12:00:00.000Z",
        );
        assert_eq!(
            token,
            "UsernameToken Username=\"customer001\", PasswordDigest=\"YzcwNDU5MjM2ZDdlN2E0NjYzNjNkMjNmNzYwZDZkMDAwM2FmMWI5ZA==\", Nonce=\"d36e316282959a9ed4c89851497a717f\", Created=\"2026-01-01T12:00:00.000Z\""
        );
    }

    #[test]
    fn signs_a_token_that_lives_the_providers_time() {
        let provider: Provider = serde_yaml::from_str(
            "auth_mode: SIGNATURE\nsignature:\n  protocol: WSSE\ntoken:\n  expires_in_ms: 300000\n",
        )
        .unwrap();
        let now = parse_time("2026-01-01T12:00:00Z").unwrap();
        let old = json!({"type": "SIGNATURE", "username": "u", "password": "p"});
        let new = credentials(&provider, &old, now).unwrap();
        assert!(
            new["token"]
                .as_str()
                .unwrap()
                .starts_with("UsernameToken Username=\"u\", PasswordDigest=\"")
        );
        assert!(
            new["token"]
                .as_str()
                .unwrap()
                .ends_with("Created=\"2026-01-01T12:00:00.000Z\"")
        );
        assert_eq!(new["expires_at"], "2026-01-01T12:05:00+00:00");
        assert_eq!(new["password"], "p");
        let hmac: Provider = serde_yaml::from_str("signature:\n  protocol: HMAC\n").unwrap();
        assert!(credentials(&hmac, &old, now).is_err());
    }
}
