//! JWT: a token the engine signs itself per the provider's `token` template (`signing_key`, `header`,
//! `payload`, `expires_in_ms`), filled from the connection's credentials — Ghost's Admin API signs
//! `{aud: "/admin/"}` with HS256 and the hex secret of its `id:secret` key. Also the RS256 app JWT a
//! GitHub App presents to get an installation token.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use super::super::template::{interpolate, lookup_path};
use super::super::{ConnectionInfo, Provider};
use super::expires_at;

/// How long a token lives when the provider does not say.
const DEFAULT_LIFETIME_MS: u64 = 5 * 60 * 1000;

/// The credentials with a newly signed `token` and its `expires_at`.
pub fn credentials(provider: &Provider, old: &Value, now: DateTime<Utc>) -> Result<Value, String> {
    let template = provider
        .token
        .as_ref()
        .ok_or("the provider has no token template to sign a JWT with")?;
    let values = values(old);
    let lookup = |name: &str| lookup_path(&values, name);
    let fill = |field: &str, text: &str| {
        interpolate(text, &lookup).ok_or_else(|| {
            format!("the JWT {field} needs credentials this connection does not have")
        })
    };
    let signing_key = fill(
        "signing_key",
        template
            .get("signing_key")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )?;
    let header_template = template.get("header").cloned().unwrap_or_default();
    let algorithm: Algorithm = header_template
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or("HS256")
        .parse()
        .map_err(|_| "the provider's JWT algorithm is not supported".to_string())?;
    let mut header = Header::new(algorithm);
    if let Some(kid) = header_template.get("kid").and_then(Value::as_str) {
        header.kid = Some(fill("kid", kid)?);
    }
    if let Some(typ) = header_template.get("typ").and_then(Value::as_str) {
        header.typ = Some(typ.to_string());
    }
    let lifetime_ms = template
        .get("expires_in_ms")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_LIFETIME_MS);
    let lifetime = i64::try_from(lifetime_ms / 1000).unwrap_or(i64::MAX / 2);
    let mut claims = Map::new();
    for (name, value) in template
        .get("payload")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let filled = match value {
            Value::String(text) => Value::String(fill(name, text)?),
            other => other.clone(),
        };
        claims.insert(name.clone(), filled);
    }
    claims.insert("iat".into(), now.timestamp().into());
    claims.insert("exp".into(), (now.timestamp() + lifetime).into());
    let key = encoding_key(algorithm, &signing_key)?;
    let token = jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|_| "the JWT could not be signed with the connection's key".to_string())?;
    let mut credentials = old.as_object().cloned().unwrap_or_default();
    credentials.insert("token".into(), Value::String(token));
    credentials.insert("expires_at".into(), expires_at(now, lifetime));
    Ok(Value::Object(credentials))
}

/// The values the template may use: the credentials under `credentials.` and bare, with a `privateKey`
/// written `id:secret` (as Ghost shows it) also read as `{id, secret}`.
fn values(credentials: &Value) -> Value {
    let mut credentials = credentials.clone();
    if let Some((id, secret)) = credentials
        .get("privateKey")
        .and_then(Value::as_str)
        .and_then(|key| key.split_once(':'))
        .map(|(id, secret)| (id.to_string(), secret.to_string()))
    {
        credentials["privateKey"] = serde_json::json!({"id": id, "secret": secret});
    }
    super::super::request::template_values(&ConnectionInfo {
        credentials,
        ..ConnectionInfo::default()
    })
}

/// The key for `algorithm`: an HMAC secret (hex-decoded when it is hex, as Ghost's is), or a PEM key.
pub(crate) fn encoding_key(algorithm: Algorithm, key: &str) -> Result<EncodingKey, String> {
    let unusable = || "the connection's signing key is not a usable key".to_string();
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Ok(match hex::decode(key) {
            Ok(bytes) => EncodingKey::from_secret(&bytes),
            Err(_) => EncodingKey::from_secret(key.as_bytes()),
        }),
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
            EncodingKey::from_rsa_pem(key.as_bytes()).map_err(|_| unusable())
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            EncodingKey::from_ec_pem(key.as_bytes()).map_err(|_| unusable())
        }
        _ => Err("the provider's JWT algorithm is not supported".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::json;

    #[test]
    fn signs_ghosts_admin_token() {
        let provider: Provider = serde_yaml::from_str(
            "auth_mode: JWT\nsignature:\n  protocol: HMAC\ntoken:\n  signing_key: ${credentials.privateKey.secret}\n  \
             expires_in_ms: 300000\n  header:\n    alg: HS256\n    kid: ${credentials.privateKey.id}\n  payload:\n    aud: /admin/\n",
        )
        .unwrap();
        let now = Utc::now();
        let old = json!({"type": "JWT", "privateKey": "abc123:00ff10"});
        let new = credentials(&provider, &old, now).unwrap();
        let token = new["token"].as_str().unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["/admin/"]);
        let decoded = jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_secret(&[0x00, 0xff, 0x10]),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.header.kid.as_deref(), Some("abc123"));
        assert_eq!(decoded.claims["aud"], "/admin/");
        assert_eq!(
            decoded.claims["exp"].as_i64().unwrap() - decoded.claims["iat"].as_i64().unwrap(),
            300
        );
        assert_eq!(new["privateKey"], "abc123:00ff10");
        let missing = credentials(&provider, &json!({"type": "JWT"}), now).unwrap_err();
        assert_eq!(
            missing,
            "the JWT signing_key needs credentials this connection does not have"
        );
    }
}
