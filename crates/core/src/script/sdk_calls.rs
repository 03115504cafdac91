//! The SDK calls beyond proxy, records, metadata and checkpoints: `getToken`, `uncontrolledFetch`,
//! `getIntegration`, `getEnvironmentVariables`, `listRecords`, `setMergingStrategy`, the locks and
//! `triggerAction`. The native functions here are
//! installed next to those of `host_functions`; the synchronous ones go through `dispatch`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use rquickjs::prelude::Async;
use rquickjs::{Ctx, Exception, Function, Object, TypedArray, Value};
use serde::Deserialize;
use serde_json::json;

use super::{Host, ScriptRun, fresh_connection, http};
use crate::providers::{ConnectionInfo, PreparedRequest};

/// Records per `listRecords` page (Nango's default page).
pub const LIST_PAGE: usize = 100;
/// Longest lock key, in characters (as Nango).
const MAX_LOCK_KEY: usize = 255;
/// Longest lock lifetime: a year. Nango sets none; a bound keeps the interval arithmetic finite.
const MAX_LOCK_TTL_MS: f64 = 365.0 * 86_400_000.0;

/// The synchronous calls of this module, by name; `None` when `op` is not one of them.
pub(super) fn dispatch(
    host: &mut dyn Host,
    op: &str,
    args: &[serde_json::Value],
) -> Option<Result<serde_json::Value, String>> {
    let text = |i: usize| args.get(i).and_then(|v| v.as_str());
    Some(match op {
        "listRecords" => host.list_records(text(0).unwrap_or_default(), text(1), LIST_PAGE),
        "tryAcquireLock" => lock_args(args.first(), true)
            .and_then(|(key, ttl)| host.try_acquire_lock(&key, ttl))
            .map(serde_json::Value::Bool),
        "releaseLock" => lock_args(args.first(), false)
            .and_then(|(key, _)| host.release_lock(&key))
            .map(serde_json::Value::Bool),
        "getIntegration" => host
            .integration()
            .map(|row| public_integration(&row, args.first())),
        "getEnvironmentVariables" => host.environment_variables(),
        "setMergingStrategy" => host
            .set_merging_strategy(text(0).unwrap_or_default(), text(1).unwrap_or_default())
            .map(|()| serde_json::Value::Null),
        "actionEntry" => {
            let name = text(0).unwrap_or_default();
            host.action_entry(name).and_then(|entry| {
                entry.map(serde_json::Value::String).ok_or_else(|| {
                    format!(
                        "nango.triggerAction: this integration has no action named '{}'",
                        name.chars().take(100).collect::<String>()
                    )
                })
            })
        }
        _ => return None,
    })
}

/// The `{key, ttlMs}` of a lock call, checked as Nango checks them (key of 1 to 255 characters, a positive
/// TTL); `ttlMs` only when `with_ttl`.
fn lock_args(options: Option<&serde_json::Value>, with_ttl: bool) -> Result<(String, u64), String> {
    let method = if with_ttl {
        "tryAcquireLock"
    } else {
        "releaseLock"
    };
    let key = options
        .and_then(|o| o.get("key"))
        .and_then(|k| k.as_str())
        .filter(|k| !k.is_empty() && k.chars().count() <= MAX_LOCK_KEY)
        .ok_or_else(|| {
            format!("nango.{method}: key must be a string of 1 to {MAX_LOCK_KEY} characters")
        })?;
    if !with_ttl {
        return Ok((key.to_string(), 0));
    }
    let ttl = options
        .and_then(|o| o.get("ttlMs"))
        .and_then(|t| t.as_f64())
        .filter(|t| *t > 0.0 && *t <= MAX_LOCK_TTL_MS)
        .ok_or_else(|| {
            format!("nango.tryAcquireLock: ttlMs must be a number of milliseconds greater than 0 (at most {MAX_LOCK_TTL_MS})")
        })?;
    Ok((key.to_string(), ttl.ceil() as u64))
}

/// Nango's public integration (`GET /integrations/:key`) from the host's row: `unique_key`, `provider`,
/// `display_name`, `logo`, `forward_webhooks`, `created_at`, `updated_at`, and with `include: ['webhook']`
/// `webhook_url` (null: provider webhooks are not received here), with `include: ['credentials']` the
/// OAuth client id — never the client secret, which a script has no use for outside a token refresh.
fn public_integration(
    row: &serde_json::Value,
    queries: Option<&serde_json::Value>,
) -> serde_json::Value {
    let field = |name: &str| row.get(name).cloned().unwrap_or(serde_json::Value::Null);
    let mut integration = json!({
        "unique_key": field("unique_key"),
        "provider": field("provider"),
        "display_name": row.get("display_name").filter(|d| d.is_string()).cloned().unwrap_or_else(|| field("provider")),
        "logo": "",
        "forward_webhooks": false,
        "created_at": field("created_at"),
        "updated_at": field("created_at"),
    });
    let include: Vec<&str> = queries
        .and_then(|q| q.get("include"))
        .and_then(|i| i.as_array())
        .into_iter()
        .flatten()
        .filter_map(|i| i.as_str())
        .collect();
    if include.contains(&"webhook") {
        integration["webhook_url"] = serde_json::Value::Null;
    }
    if include.contains(&"credentials") {
        integration["credentials"] = match row.get("auth_mode").and_then(|m| m.as_str()) {
            Some(mode @ ("OAUTH2" | "OAUTH1" | "TBA")) => json!({
                "type": mode,
                "client_id": field("client_id"),
                "client_secret": null,
                "scopes": null,
                "webhook_secret": null,
            }),
            _ => serde_json::Value::Null,
        };
    }
    integration
}

/// What `getToken` returns for these credentials, as Nango's node client: the access token of OAuth2, the
/// token pair of OAuth1, else the credentials object.
pub fn token_value(credentials: &serde_json::Value) -> serde_json::Value {
    match credentials.get("type").and_then(|t| t.as_str()) {
        Some("OAUTH2") => credentials
            .get("access_token")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
        Some("OAUTH1") => json!({
            "oAuthToken": credentials.get("oauth_token"),
            "oAuthTokenSecret": credentials.get("oauth_token_secret"),
        }),
        _ => credentials.clone(),
    }
}

/// `uncontrolledFetch`'s options: `{url, method?, headers?, body?}`.
#[derive(Debug, Deserialize)]
pub struct FetchOptions {
    pub url: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
}

/// The request of an `uncontrolledFetch`: no provider, no credentials, no trusted host (so a private
/// address is reached only when listed in `nango.allowed_hosts`); authorization and cookie headers the
/// script sets do not follow a redirect to another origin, as with fetch.
pub fn fetch_request(options: FetchOptions) -> Result<PreparedRequest, String> {
    let url = url::Url::parse(&options.url).map_err(|_| {
        "nango.uncontrolledFetch: url must be an absolute http or https URL".to_string()
    })?;
    let method = options
        .method
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    if !matches!(
        method.as_str(),
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
    ) {
        return Err(format!(
            "nango.uncontrolledFetch: unsupported method {}",
            method.chars().take(20).collect::<String>()
        ));
    }
    let headers: Vec<(String, String)> = options
        .headers
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    Ok(PreparedRequest {
        body: options
            .body
            .filter(|_| !matches!(method.as_str(), "GET" | "HEAD")),
        method,
        url: url.to_string(),
        headers,
        credential_headers: ["authorization", "proxy-authorization", "cookie"]
            .map(String::from)
            .to_vec(),
        credential_params: Vec::new(),
        trusted_host: None,
    })
}

/// The bytes as a `Uint8Array`.
pub(super) fn bytes_value<'js>(ctx: &Ctx<'js>, bytes: Vec<u8>) -> rquickjs::Result<Value<'js>> {
    Ok(TypedArray::<u8>::new(ctx.clone(), bytes)?.into_value())
}

/// Installs `token` (async: the connection's credentials, refreshed first when about to expire), `fetch`
/// (async: an uncontrolled request) and `utf8` (bytes to text) on the host object.
pub(super) fn install<'js>(
    ctx: &Ctx<'js>,
    object: &Object<'js>,
    run: &ScriptRun,
    host: Rc<RefCell<dyn Host>>,
    client: Rc<http::HttpClient>,
    connection: Rc<RefCell<ConnectionInfo>>,
    refreshing: Rc<tokio::sync::Mutex<()>>,
) -> rquickjs::Result<()> {
    let auth = Rc::new((run.provider.clone(), run.oauth_client.clone()));
    let token_client = client.clone();
    object.set(
        "token",
        Function::new(
            ctx.clone(),
            Async(move |ctx: Ctx<'js>| {
                let (auth, client, host) = (auth.clone(), token_client.clone(), host.clone());
                let (connection, refreshing) = (connection.clone(), refreshing.clone());
                async move {
                    let (provider, oauth_client) = &*auth;
                    let fresh = fresh_connection(
                        &client,
                        provider,
                        oauth_client.as_ref(),
                        &connection,
                        &refreshing,
                        &host,
                    )
                    .await
                    .map_err(|e| Exception::throw_message(&ctx, &e))?;
                    rquickjs::Result::Ok(token_value(&fresh.credentials).to_string())
                }
            }),
        )?,
    )?;

    object.set(
        "fetch",
        Function::new(
            ctx.clone(),
            Async(move |ctx: Ctx<'js>, options_json: String| {
                let client = client.clone();
                async move {
                    let throw = |message: &str| Exception::throw_message(&ctx, message);
                    let options: FetchOptions =
                        serde_json::from_str(&options_json).map_err(|e| {
                            throw(&format!("nango.uncontrolledFetch: invalid options: {e}"))
                        })?;
                    let request = fetch_request(options).map_err(|e| throw(&e))?;
                    let response = http::send_once(&client, &request)
                        .await
                        .map_err(|e| throw(&e.message))?;
                    let result = Object::new(ctx.clone())?;
                    result.set("status", response.status)?;
                    result.set("url", request.url.as_str())?;
                    let headers = rquickjs::Array::new(ctx.clone())?;
                    for (i, (name, value)) in response.headers.iter().enumerate() {
                        let pair = rquickjs::Array::new(ctx.clone())?;
                        pair.set(0, name.as_str())?;
                        pair.set(1, value.as_str())?;
                        headers.set(i, pair)?;
                    }
                    result.set("headers", headers)?;
                    result.set("body", bytes_value(&ctx, response.body)?)?;
                    rquickjs::Result::Ok(result)
                }
            }),
        )?,
    )?;

    object.set(
        "utf8",
        Function::new(
            ctx.clone(),
            |bytes: TypedArray<'js, u8>| -> rquickjs::Result<String> {
                let Some(raw) = bytes.as_raw() else {
                    return Ok(String::new());
                };
                // SAFETY: the pointer is valid until JavaScript runs again; the bytes are copied into the
                // returned String before that.
                let bytes: &[u8] = unsafe { raw.as_ref() };
                Ok(String::from_utf8_lossy(bytes).into_owned())
            },
        )?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_returned_per_auth_mode() {
        let oauth2 = json!({"type": "OAUTH2", "access_token": "tok", "refresh_token": "r"});
        assert_eq!(token_value(&oauth2), json!("tok"));
        let oauth1 = json!({"type": "OAUTH1", "oauth_token": "t", "oauth_token_secret": "s"});
        assert_eq!(
            token_value(&oauth1),
            json!({"oAuthToken": "t", "oAuthTokenSecret": "s"})
        );
        let key = json!({"type": "API_KEY", "apiKey": "k"});
        assert_eq!(token_value(&key), key);
    }

    #[test]
    fn lock_arguments_are_checked() {
        assert_eq!(
            lock_args(Some(&json!({"key": "k", "ttlMs": 1500.5})), true).unwrap(),
            ("k".to_string(), 1501)
        );
        assert_eq!(lock_args(Some(&json!({"key": "k"})), false).unwrap().0, "k");
        for bad in [
            json!({"key": "", "ttlMs": 10}),
            json!({"key": "x".repeat(256), "ttlMs": 10}),
            json!({"key": 5, "ttlMs": 10}),
            json!({"key": "k", "ttlMs": 0}),
            json!({"key": "k", "ttlMs": -1}),
            json!({"key": "k", "ttlMs": "10"}),
            json!({"key": "k", "ttlMs": 1e300}),
        ] {
            assert!(lock_args(Some(&bad), true).is_err(), "{bad}");
        }
        assert!(lock_args(None, false).is_err());
    }

    #[test]
    fn the_public_integration_never_carries_the_client_secret() {
        let row = json!({"unique_key": "gh", "provider": "github", "display_name": "GitHub",
                         "created_at": "2026-01-01T00:00:00Z", "client_id": "id", "client_secret": "s3cret",
                         "auth_mode": "OAUTH2"});
        let plain = public_integration(&row, None);
        assert_eq!(plain["unique_key"], "gh");
        assert_eq!(plain["display_name"], "GitHub");
        assert!(plain.get("webhook_url").is_none());
        assert!(plain.get("credentials").is_none());
        let full = public_integration(&row, Some(&json!({"include": ["webhook", "credentials"]})));
        assert_eq!(full["webhook_url"], serde_json::Value::Null);
        assert_eq!(full["credentials"]["client_id"], "id");
        assert_eq!(
            full["credentials"]["client_secret"],
            serde_json::Value::Null
        );
        assert!(!full.to_string().contains("s3cret"));
    }

    #[test]
    fn fetch_requests_carry_no_trust_and_drop_credentials_across_origins() {
        let request = fetch_request(FetchOptions {
            url: "https://example.com/a?b=1".into(),
            method: Some("post".into()),
            headers: BTreeMap::from([("Authorization".into(), "Bearer x".into())]),
            body: Some("{}".into()),
        })
        .unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.trusted_host, None);
        assert_eq!(
            request.headers,
            vec![("authorization".to_string(), "Bearer x".to_string())]
        );
        assert!(
            request
                .credential_headers
                .contains(&"authorization".to_string())
        );
        assert_eq!(request.body.as_deref(), Some("{}"));
        let get = fetch_request(FetchOptions {
            url: "http://example.com".into(),
            method: None,
            headers: BTreeMap::new(),
            body: Some("ignored".into()),
        })
        .unwrap();
        assert_eq!(get.body, None);
        for url in ["/relative", "not a url"] {
            let options = FetchOptions {
                url: url.into(),
                method: None,
                headers: BTreeMap::new(),
                body: None,
            };
            assert!(fetch_request(options).is_err());
        }
        let options = FetchOptions {
            url: "http://a.b".into(),
            method: Some("TRACE".into()),
            headers: BTreeMap::new(),
            body: None,
        };
        assert!(fetch_request(options).is_err());
    }
}
