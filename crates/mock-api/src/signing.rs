//! `GET /auth/verify`: a resource that checks a request signed per request, as the provider would, and
//! answers what it saw:
//!
//! - an `Authorization: OAuth …` header (NetSuite TBA): the OAuth 1.0a HMAC-SHA256 signature over the
//!   request's method, URL and query (RFC 5849 section 3.4), for the consumer [`TBA_CONSUMER_KEY`] /
//!   [`TBA_CONSUMER_SECRET`] and the token [`TBA_TOKEN_ID`] / [`TBA_TOKEN_SECRET`];
//! - an `x-wsse` header (Emarsys): the UsernameToken's digest for [`WSSE_USER`] / [`WSSE_PASS`].
//!
//! A request that does not verify gets 401.
//!
//! This is written from the RFC and Emarsys' documentation, apart from the engine's signing code, so
//! that the two check each other.

use axum::extract::Query;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, HashMap};

use super::AppState;

pub const TBA_CONSUMER_KEY: &str = "tba-consumer";
pub const TBA_CONSUMER_SECRET: &str = "tba-consumer-secret";
pub const TBA_TOKEN_ID: &str = "tba-token";
pub const TBA_TOKEN_SECRET: &str = "tba-token-secret";
pub const WSSE_USER: &str = "wsse-user";
pub const WSSE_PASS: &str = "wsse-pass";

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/auth/verify", get(verify))
}

/// RFC 3986 percent-encoding of all but the unreserved characters, upper-case hex (RFC 5849 3.6).
fn rfc_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The `name="value"` fields of an OAuth header, values decoded.
fn header_fields(header: &str) -> BTreeMap<String, String> {
    header
        .split(',')
        .filter_map(|part| {
            let (name, value) = part.trim().split_once('=')?;
            let value = value.trim().trim_matches('"');
            let decoded = url::form_urlencoded::parse(format!("v={value}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())?;
            Some((name.trim().to_string(), decoded))
        })
        .collect()
}

fn tba_verified(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    oauth: &str,
) -> Result<Value, &'static str> {
    let fields = header_fields(oauth);
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    if field("oauth_consumer_key") != TBA_CONSUMER_KEY || field("oauth_token") != TBA_TOKEN_ID {
        return Err("unknown consumer or token");
    }
    if field("oauth_signature_method") != "HMAC-SHA256" {
        return Err("unsupported signature method");
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let base_uri = format!("http://{host}{}", uri.path());
    let mut params: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (rfc_encode(&k), rfc_encode(&v)))
            .collect();
    for (name, value) in &fields {
        if name != "realm" && name != "oauth_signature" {
            params.push((rfc_encode(name), rfc_encode(value)));
        }
    }
    params.sort();
    let normalized: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let base = format!(
        "{}&{}&{}",
        method.as_str(),
        rfc_encode(&base_uri),
        rfc_encode(&normalized.join("&"))
    );
    let key = format!(
        "{}&{}",
        rfc_encode(TBA_CONSUMER_SECRET),
        rfc_encode(TBA_TOKEN_SECRET)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).map_err(|_| "bad key")?;
    mac.update(base.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if field("oauth_signature") != expected {
        return Err("INVALID_LOGIN_ATTEMPT: the signature does not verify");
    }
    Ok(json!({"mode": "TBA", "realm": field("realm"), "nonce": field("oauth_nonce")}))
}

fn wsse_verified(token: &str) -> Result<Value, &'static str> {
    let fields = header_fields(token.strip_prefix("UsernameToken ").unwrap_or_default());
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    if field("Username") != WSSE_USER {
        return Err("unknown user");
    }
    let hex: String =
        Sha1::digest(format!("{}{}{WSSE_PASS}", field("Nonce"), field("Created")).as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    if field("PasswordDigest") != base64::engine::general_purpose::STANDARD.encode(hex) {
        return Err("the password digest does not verify");
    }
    Ok(json!({"mode": "WSSE", "username": field("Username"), "created": field("Created")}))
}

async fn verify(
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let verified = match (header("authorization"), header("x-wsse")) {
        (_, Some(token)) => wsse_verified(&token),
        (Some(auth), None) if auth.starts_with("OAuth ") => {
            tba_verified(&method, &uri, &headers, &auth["OAuth ".len()..])
        }
        _ => Err("no signature"),
    };
    match verified {
        Ok(mut seen) => {
            seen["query"] = json!(query);
            seen["authorization"] = json!(header("authorization"));
            Json(seen).into_response()
        }
        Err(error) => (StatusCode::UNAUTHORIZED, Json(json!({"error": error}))).into_response(),
    }
}
