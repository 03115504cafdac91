//! Turning a script's proxy call (`nango.get({ endpoint, params, headers })`) into an HTTP request: the
//! provider's base URL (with `${connectionConfig.x}` and `A || B` fallbacks), auth by credential type, the
//! provider's header and query templates, then the call's own params and headers.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

use super::Provider;
use super::template::{
    UrlPart, UrlValueError, check_url_value, interpolate, interpolate_url, lookup_path,
    names_its_host, url_placeholders,
};

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
    /// axios' `responseType`: `json` (the default), `text`, `arraybuffer`, `blob`, `stream`.
    #[serde(default)]
    pub response_type: Option<String>,
    /// Whether a compressed response is decoded; `None` decodes it, as axios does in Node.
    #[serde(default)]
    pub decompress: Option<bool>,
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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PreparedRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// The headers (lowercase names) built from the provider's templates, which carry the connection's
    /// credentials: they do not follow a redirect to another origin.
    pub credential_headers: Vec<String>,
    /// The query parameters built from the provider's templates (API keys): dropped from a redirect to
    /// another origin.
    pub credential_params: Vec<String>,
    /// The host this request may reach whatever it resolves to: the provider's base URL host (or, for a
    /// token refresh, the token URL's host). Any other host must be public or in `nango.allowed_hosts`.
    pub trusted_host: Option<String>,
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
    #[error("{0}")]
    UrlValue(#[from] UrlValueError),
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
    // The provider's own base URL, resolved even when this call goes elsewhere: its host is the one the
    // call may always reach.
    let provider_base = if proxy.base_url.is_empty() {
        Err(ProxyError::NoBaseUrl)
    } else {
        resolve_base_url(&proxy.base_url, &lookup)
    };
    if let Err(error @ ProxyError::UrlValue(_)) = &provider_base {
        return Err(error.clone());
    }
    let trusted_host = provider_base
        .as_ref()
        .ok()
        .filter(|(_, named)| *named)
        .and_then(|(base, _)| url::Url::parse(base).ok())
        .and_then(|base| base.host_str().map(str::to_string));
    let provider_base = provider_base.map(|(base, _)| base);
    let base = match &call.base_url_override {
        Some(base) => base.clone(),
        None if call.endpoint.starts_with("http://") || call.endpoint.starts_with("https://") => {
            String::new()
        }
        None => provider_base?,
    };
    let joined = join_url(&base, &call.endpoint);
    let mut url = url::Url::parse(&joined).map_err(|_| ProxyError::InvalidUrl(joined.clone()))?;
    append_params(&mut url, call.params.as_ref())?;
    let mut credential_params = Vec::new();
    for (name, template) in &proxy.query {
        if let Some(value) = interpolate(template, &lookup) {
            url.query_pairs_mut().append_pair(name, &value);
            credential_params.push(name.clone());
        }
    }

    let mut headers: Vec<(String, String)> = Vec::new();
    // A TWO_STEP provider that places the token in a header of its own sends no default Bearer header.
    let token_elsewhere = connection.credentials.get("type").and_then(Value::as_str)
        == Some("TWO_STEP")
        && proxy.headers.values().any(|template| {
            template.contains("${accessToken}") || template.contains("${credentials._cookies}")
        });
    if let Some(auth) = default_authorization(&connection.credentials).filter(|_| !token_elsewhere)
    {
        headers.push(("authorization".into(), auth));
    }
    let mut credential_headers = Vec::new();
    for (name, template) in &proxy.headers {
        if let Some(value) = interpolate(template, &lookup) {
            set_header(&mut headers, name, value);
            credential_headers.push(name.to_ascii_lowercase());
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
        credential_headers,
        credential_params,
        trusted_host,
    })
}

/// Checks the values `connection_config` puts into the host or port of the provider's URLs (its proxy
/// base URL and token URL), so that a connection whose values would change those URLs' structure is
/// refused when it is created rather than when a request is built.
pub fn check_connection_config(
    provider: &Provider,
    connection_config: &Value,
) -> Result<(), UrlValueError> {
    let values = template_values(&ConnectionInfo {
        connection_config: connection_config.clone(),
        ..ConnectionInfo::default()
    });
    let base_urls = provider
        .proxy
        .iter()
        .flat_map(|proxy| proxy.base_url.split("||"));
    let token_urls: Vec<&str> = match &provider.token_url {
        Some(Value::String(url)) => vec![url.as_str()],
        Some(Value::Object(by_mode)) => by_mode.values().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for template in base_urls.chain(token_urls).map(str::trim) {
        for (name, part) in url_placeholders(template) {
            if part == UrlPart::Other {
                continue;
            }
            if let Some(value) = lookup_path(&values, name) {
                check_url_value(template, name, part, &value)?;
            }
        }
    }
    Ok(())
}

/// The names a provider template may use: `connectionConfig.*`, `credentials.*`, and the credential fields
/// themselves (`apiKey`, `username`, `password`, `accessToken`).
pub(crate) fn template_values(connection: &ConnectionInfo) -> Value {
    let mut values = Map::new();
    if let Value::Object(credentials) = &connection.credentials {
        for (key, value) in credentials {
            values.insert(key.clone(), value.clone());
        }
        // `${accessToken}` is the OAuth2 or APP `access_token`, or the fetched or signed `token` of the
        // other modes.
        if let Some(token) = credentials
            .get("access_token")
            .or_else(|| credentials.get("token"))
        {
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
/// The first alternative of a base URL template (`A || B`) whose values the connection has, resolved,
/// with whether that alternative names its host itself ([`names_its_host`]).
fn resolve_base_url(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, bool), ProxyError> {
    for candidate in template.split("||").map(str::trim) {
        if let Some(resolved) = interpolate_url(candidate, lookup)? {
            return Ok((resolved, names_its_host(candidate)));
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
    fn marks_the_trusted_host_and_the_credential_headers_and_params() {
        let p = provider(
            "proxy:\n  base_url: https://${connectionConfig.subdomain}.x.com\n  headers:\n    X-Api-Key: ${apiKey}\n  query:\n    key: ${apiKey}\n    missing: ${connectionConfig.nope}\n",
        );
        let c = connection(
            json!({"type": "API_KEY", "apiKey": "k"}),
            json!({"subdomain": "acme"}),
        );
        let request = build_request(&p, &c, &call("/a")).unwrap();
        assert_eq!(request.url, "https://acme.x.com/a?key=k");
        assert_eq!(request.trusted_host.as_deref(), Some("acme.x.com"));
        assert_eq!(request.credential_headers, ["x-api-key"]);
        assert_eq!(request.credential_params, ["key"]);
        // Elsewhere, the provider's host is still the trusted one.
        let mut elsewhere = call("/b");
        elsewhere.base_url_override = Some("https://other.example".into());
        let request = build_request(&p, &c, &elsewhere).unwrap();
        assert_eq!(request.url, "https://other.example/b?key=k");
        assert_eq!(request.trusted_host.as_deref(), Some("acme.x.com"));
    }

    #[test]
    fn a_host_value_that_changes_the_url_is_refused() {
        let p = provider("proxy:\n  base_url: https://${connectionConfig.subdomain}.zendesk.com\n");
        let c = connection(
            json!({"type": "API_KEY", "apiKey": "k"}),
            json!({"subdomain": "evil.example/?"}),
        );
        let expected = "the value of ${connectionConfig.subdomain} cannot be placed in the host of the URL \
             https://${connectionConfig.subdomain}.zendesk.com: a host may not hold / \\ ? # @ : [ ] % or whitespace";
        assert_eq!(
            build_request(&p, &c, &call("/a")).unwrap_err().to_string(),
            expected
        );
        // Also when the call goes elsewhere: the connection itself is wrong.
        let mut elsewhere = call("/b");
        elsewhere.base_url_override = Some("https://other.example".into());
        assert!(build_request(&p, &c, &elsewhere).is_err());
    }

    #[test]
    fn checks_connection_config_against_the_url_templates() {
        let zendesk = provider(
            "token_url: https://${connectionConfig.subdomain}.zendesk.com/oauth/tokens\nproxy:\n  base_url: https://${connectionConfig.subdomain}.zendesk.com\n",
        );
        assert_eq!(
            check_connection_config(&zendesk, &json!({"subdomain": "acme"})),
            Ok(())
        );
        assert_eq!(check_connection_config(&zendesk, &json!({})), Ok(()));
        let error =
            check_connection_config(&zendesk, &json!({"subdomain": "evil.example/?"})).unwrap_err();
        assert_eq!(error.name, "connectionConfig.subdomain");
        assert_eq!(error.part, "host");
        // Per auth mode token URLs and `A || B` base URLs are checked too; values in a path are not.
        let by_mode = provider(
            "token_url:\n  OAUTH2: https://${connectionConfig.host}:${connectionConfig.port}/t\nproxy:\n  \
             base_url: https://api.${connectionConfig.region}.x.io/${connectionConfig.path} || https://x.io\n",
        );
        assert_eq!(
            check_connection_config(
                &by_mode,
                &json!({"path": "a/b?c", "host": "h", "port": 8443})
            ),
            Ok(())
        );
        assert_eq!(
            check_connection_config(&by_mode, &json!({"port": "80@evil"}))
                .unwrap_err()
                .part,
            "port"
        );
        assert_eq!(
            check_connection_config(&by_mode, &json!({"region": "eu west"}))
                .unwrap_err()
                .part,
            "host"
        );
        // A whole base URL taken from the config is the connection's to choose.
        let whole = provider("proxy:\n  base_url: ${connectionConfig.base_url}\n");
        assert_eq!(
            check_connection_config(&whole, &json!({"base_url": "http://127.0.0.1:9/api?x"})),
            Ok(())
        );
    }

    #[test]
    fn token_modes_default_to_bearer_and_none_sends_nothing() {
        let p = provider("proxy:\n  base_url: https://x.example\n");
        for kind in ["OAUTH2_CC", "TWO_STEP", "JWT"] {
            let c = connection(json!({"type": kind, "token": "t"}), json!({}));
            let request = build_request(&p, &c, &call("/a")).unwrap();
            assert_eq!(
                request.headers,
                [("authorization".to_string(), "Bearer t".to_string())],
                "{kind}"
            );
        }
        let none = connection(json!({"type": "NONE"}), json!({}));
        assert!(
            build_request(&p, &none, &call("/a"))
                .unwrap()
                .headers
                .is_empty()
        );
        let own = provider(
            "proxy:\n  base_url: https://x.example\n  headers:\n    x-session: ${accessToken}\n",
        );
        let c = connection(json!({"type": "TWO_STEP", "token": "t"}), json!({}));
        let request = build_request(&own, &c, &call("/a")).unwrap();
        assert_eq!(
            request.headers,
            [("x-session".to_string(), "t".to_string())]
        );
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
