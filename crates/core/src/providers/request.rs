//! Turning a script's proxy call (`nango.get({ endpoint, params, headers })`) into an HTTP request: the
//! provider's base URL (with `${connectionConfig.x}` and `A || B` fallbacks), auth by credential type, the
//! provider's header and query templates, then the call's own params and headers.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

use super::Provider;
use super::template::{interpolate, lookup_path};

/// A proxy call as a script makes it (Nango's `ProxyConfiguration`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyCall {
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub params: Option<Value>,
    #[serde(default)]
    pub headers: BTreeMap<String, Value>,
    /// The body, already serialized by the script runtime (JSON text, or the string the script passed).
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub retry_on: Vec<u16>,
    #[serde(default)]
    pub base_url_override: Option<String>,
}

fn default_method() -> String {
    "GET".into()
}

/// What the proxy knows about the connection a run belongs to.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    pub connection_id: String,
    pub provider_config_key: String,
    pub connection_config: Value,
    /// `{"type": "API_KEY", "apiKey": …}`, `{"type": "BASIC", …}` or `{"type": "OAUTH2", "access_token": …}`.
    pub credentials: Value,
}

/// A request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// Why a proxy call could not be turned into a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProxyError {
    #[error("the proxy call needs an endpoint or a baseUrlOverride")]
    MissingEndpoint,
    #[error("provider has no proxy base_url")]
    NoBaseUrl,
    #[error("the base URL \"{0}\" needs connection_config values this connection does not have")]
    UnresolvedBaseUrl(String),
    #[error("invalid URL {0}")]
    InvalidUrl(String),
    #[error("params must be an object of strings and numbers or a query string")]
    InvalidParams,
    #[error("unsupported HTTP method {0}")]
    InvalidMethod(String),
}

/// Builds the request for `call` on `connection` of `provider`.
pub fn build_request(
    provider: &Provider,
    connection: &ConnectionInfo,
    call: &ProxyCall,
) -> Result<PreparedRequest, ProxyError> {
    let method = call.method.to_uppercase();
    if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&method.as_str()) {
        return Err(ProxyError::InvalidMethod(call.method.clone()));
    }
    if call.endpoint.is_empty() && call.base_url_override.is_none() {
        return Err(ProxyError::MissingEndpoint);
    }
    let values = template_values(connection);
    let lookup = |name: &str| lookup_path(&values, name);
    let proxy = provider.proxy.clone().unwrap_or_default();
    let base = match &call.base_url_override {
        Some(base) => base.clone(),
        None if call.endpoint.starts_with("http://") || call.endpoint.starts_with("https://") => {
            String::new()
        }
        None => {
            if proxy.base_url.is_empty() {
                return Err(ProxyError::NoBaseUrl);
            }
            resolve_base_url(&proxy.base_url, &lookup)?
        }
    };
    let joined = join_url(&base, &call.endpoint);
    let mut url = url::Url::parse(&joined).map_err(|_| ProxyError::InvalidUrl(joined.clone()))?;
    append_params(&mut url, call.params.as_ref())?;
    for (name, template) in &proxy.query {
        if let Some(value) = interpolate(template, &lookup) {
            url.query_pairs_mut().append_pair(name, &value);
        }
    }

    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(auth) = default_authorization(&connection.credentials) {
        headers.push(("authorization".into(), auth));
    }
    for (name, template) in &proxy.headers {
        if let Some(value) = interpolate(template, &lookup) {
            set_header(&mut headers, name, value);
        }
    }
    for (name, value) in &call.headers {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        set_header(&mut headers, name, value);
    }
    let body = match method.as_str() {
        "POST" | "PUT" | "PATCH" | "DELETE" => call.body.clone(),
        _ => None,
    };
    if body.is_some() && !headers.iter().any(|(n, _)| n == "content-type") {
        headers.push(("content-type".into(), "application/json".into()));
    }
    Ok(PreparedRequest {
        method,
        url: url.into(),
        headers,
        body,
    })
}

/// The names a provider template may use: `connectionConfig.*`, `credentials.*`, and the credential fields
/// themselves (`apiKey`, `username`, `password`, `accessToken`).
pub(crate) fn template_values(connection: &ConnectionInfo) -> Value {
    let mut values = Map::new();
    if let Value::Object(credentials) = &connection.credentials {
        for (key, value) in credentials {
            values.insert(key.clone(), value.clone());
        }
        if let Some(token) = credentials.get("access_token") {
            values.insert("accessToken".into(), token.clone());
        }
    }
    values.insert("credentials".into(), connection.credentials.clone());
    values.insert(
        "connectionConfig".into(),
        connection.connection_config.clone(),
    );
    // Nango strips the `connectionConfig.` prefix from connection_config keys too.
    if let Value::Object(config) = &connection.connection_config {
        for (key, value) in config {
            values.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    json!(values)
}

/// `A || B`: A when every placeholder in it resolves, else B.
fn resolve_base_url(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ProxyError> {
    for candidate in template.split("||").map(str::trim) {
        if let Some(resolved) = interpolate(candidate, lookup) {
            return Ok(resolved);
        }
    }
    Err(ProxyError::UnresolvedBaseUrl(template.to_string()))
}

fn join_url(base: &str, endpoint: &str) -> String {
    if base.is_empty() {
        return endpoint.to_string();
    }
    if endpoint.is_empty() {
        return base.to_string();
    }
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        endpoint.trim_start_matches('/')
    )
}

fn append_params(url: &mut url::Url, params: Option<&Value>) -> Result<(), ProxyError> {
    match params {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(query)) => {
            let query = query.trim_start_matches('?');
            let combined = match url.query() {
                Some(existing) if !existing.is_empty() => format!("{existing}&{query}"),
                _ => query.to_string(),
            };
            url.set_query(Some(&combined));
            Ok(())
        }
        Some(Value::Object(map)) => {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in map {
                match value {
                    Value::Null => {}
                    Value::String(s) => {
                        pairs.append_pair(key, s);
                    }
                    Value::Array(items) => {
                        // Nango (URLSearchParams.set with an array) sends the items joined by commas.
                        let joined: Vec<String> = items.iter().map(scalar_text).collect();
                        pairs.append_pair(key, &joined.join(","));
                    }
                    other => {
                        pairs.append_pair(key, &scalar_text(other));
                    }
                }
            }
            drop(pairs);
            if url.query() == Some("") {
                url.set_query(None);
            }
            Ok(())
        }
        Some(_) => Err(ProxyError::InvalidParams),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Nango's default `authorization` header by credential type: Basic for BASIC, Bearer for OAuth2 tokens,
/// none for API keys (those come from the provider's header or query templates).
fn default_authorization(credentials: &Value) -> Option<String> {
    match credentials.get("type")?.as_str()? {
        "BASIC" => {
            let username = credentials
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let password = credentials
                .get("password")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            Some(format!("Basic {encoded}"))
        }
        "OAUTH2" | "APP" | "OAUTH2_CC" | "JWT" | "SIGNATURE" | "TWO_STEP" => {
            let token = credentials
                .get("access_token")
                .or_else(|| credentials.get("token"))?
                .as_str()?;
            Some(format!("Bearer {token}"))
        }
        _ => None,
    }
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    let name = name.to_ascii_lowercase();
    headers.retain(|(n, _)| *n != name);
    headers.push((name, value));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(yaml: &str) -> Provider {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn connection(credentials: Value, config: Value) -> ConnectionInfo {
        ConnectionInfo {
            connection_id: "c1".into(),
            provider_config_key: "p".into(),
            connection_config: config,
            credentials,
        }
    }

    fn call(endpoint: &str) -> ProxyCall {
        ProxyCall {
            method: "GET".into(),
            endpoint: endpoint.into(),
            ..ProxyCall::default()
        }
    }

    #[test]
    fn api_key_header_template_and_params() {
        let p = provider(
            "proxy:\n  base_url: ${connectionConfig.base_url}\n  headers:\n    authorization: Bearer ${apiKey}\n",
        );
        let c = connection(
            json!({"type": "API_KEY", "apiKey": "secret"}),
            json!({"base_url": "http://127.0.0.1:9/api/"}),
        );
        let mut proxy_call = call("/tickets");
        proxy_call.params =
            Some(json!({"limit": 50, "state": "open", "ids": [1, 2], "skip": null}));
        proxy_call.headers.insert("X-Trace".into(), json!("t1"));
        let request = build_request(&p, &c, &proxy_call).unwrap();
        assert_eq!(
            request.url,
            "http://127.0.0.1:9/api/tickets?ids=1%2C2&limit=50&state=open"
        );
        assert!(
            request
                .headers
                .contains(&("authorization".into(), "Bearer secret".into()))
        );
        assert!(request.headers.contains(&("x-trace".into(), "t1".into())));
    }

    #[test]
    fn basic_and_oauth2_defaults() {
        let p = provider("proxy:\n  base_url: https://x.example\n");
        let basic = connection(
            json!({"type": "BASIC", "username": "u", "password": "p"}),
            json!({}),
        );
        let request = build_request(&p, &basic, &call("/a")).unwrap();
        assert_eq!(
            request.headers[0],
            ("authorization".into(), "Basic dTpw".into())
        );
        let oauth = connection(json!({"type": "OAUTH2", "access_token": "tok"}), json!({}));
        let request = build_request(&p, &oauth, &call("a")).unwrap();
        assert_eq!(request.url, "https://x.example/a");
        assert_eq!(
            request.headers[0],
            ("authorization".into(), "Bearer tok".into())
        );
    }

    #[test]
    fn provider_header_overrides_default_and_query_templates() {
        let p = provider(
            "proxy:\n  base_url: https://api.${connectionConfig.region}.intercom.io || https://api.intercom.io\n  \
             headers:\n    authorization: token ${accessToken}\n  query:\n    key: ${apiKey}\n",
        );
        let c = connection(json!({"type": "OAUTH2", "access_token": "tok"}), json!({}));
        let request = build_request(&p, &c, &call("/me")).unwrap();
        assert_eq!(request.url, "https://api.intercom.io/me");
        assert_eq!(
            request.headers,
            vec![("authorization".to_string(), "token tok".to_string())]
        );
        let c = connection(
            json!({"type": "OAUTH2", "access_token": "tok"}),
            json!({"region": "eu"}),
        );
        assert_eq!(
            build_request(&p, &c, &call("/me")).unwrap().url,
            "https://api.eu.intercom.io/me"
        );
    }

    #[test]
    fn errors() {
        let p = provider("proxy:\n  base_url: https://${connectionConfig.subdomain}.x.com\n");
        let c = connection(json!({"type": "API_KEY", "apiKey": "k"}), json!({}));
        assert!(matches!(
            build_request(&p, &c, &call("/a")),
            Err(ProxyError::UnresolvedBaseUrl(_))
        ));
        assert_eq!(
            build_request(&p, &c, &call("")),
            Err(ProxyError::MissingEndpoint)
        );
        let mut bad = call("/a");
        bad.method = "FETCH".into();
        assert!(matches!(
            build_request(&p, &c, &bad),
            Err(ProxyError::InvalidMethod(_))
        ));
    }

    #[test]
    fn body_only_for_writes() {
        let p = provider("proxy:\n  base_url: https://x.example\n");
        let c = connection(json!({"type": "API_KEY", "apiKey": "k"}), json!({}));
        let mut post = call("/a");
        post.method = "post".into();
        post.body = Some("{\"a\":1}".into());
        let request = build_request(&p, &c, &post).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.body.as_deref(), Some("{\"a\":1}"));
        assert!(
            request
                .headers
                .contains(&("content-type".into(), "application/json".into()))
        );
    }
}
