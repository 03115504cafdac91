//! The provider catalog (`providers.yaml`): how each API is reached — base URL, auth, extra headers and query
//! parameters, retry and rate-limit headers, pagination defaults — and the rules that turn a script's proxy
//! call into an HTTP request with the connection's credentials.

pub mod auth;
pub mod egress;
pub mod oauth;
pub mod request;
pub mod retry;
mod template;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use request::{
    ConnectionInfo, PreparedRequest, ProxyCall, ProxyError, build_request, check_connection_config,
};
pub use template::interpolate;

/// One catalog entry, as in Nango's `providers.yaml` (`packages/types/lib/providers/provider.ts`). The
/// fields this engine uses are typed as Nango types them, loosely where Nango's own file is loose (a
/// `token_params` value may be a string, a boolean, a number or an object); every other key is kept in
/// `other`, so a catalog entry is stored whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Provider {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub auth_mode: Option<String>,
    /// Where tokens are fetched or refreshed: a URL template, or one per auth mode (`{OAUTH2: …, APP: …}`).
    #[serde(default)]
    pub token_url: Option<serde_json::Value>,
    /// Extra form fields of a refresh request (Nango's `refresh_params`, else `token_params`).
    #[serde(default)]
    pub refresh_params: Option<Params>,
    /// Extra fields of a token request (`grant_type`, `scope`, or a TWO_STEP provider's body templates).
    #[serde(default)]
    pub token_params: Option<Params>,
    /// Headers of a TWO_STEP token request, as templates.
    #[serde(default, deserialize_with = "optional_text_map")]
    pub token_headers: Option<BTreeMap<String, String>>,
    /// Where a TWO_STEP token response holds the token and its expiry.
    #[serde(default)]
    pub token_response: Option<TokenResponse>,
    /// How long a fetched TWO_STEP token lives when its response does not say.
    #[serde(default)]
    pub token_expires_in_ms: Option<u64>,
    /// `GET` for a TWO_STEP token request sent as a GET; POST otherwise.
    #[serde(default)]
    pub token_request_method: Option<String>,
    /// `json`, `form` or `xml`: how a token request's body is encoded.
    #[serde(default)]
    pub body_format: Option<String>,
    /// `basic` sends the client id and secret as HTTP Basic auth instead of in the body.
    #[serde(default)]
    pub token_request_auth_method: Option<String>,
    /// Seconds before expiry at which a token is refreshed (default 15 minutes).
    #[serde(default)]
    pub token_expiration_buffer: Option<u64>,
    /// JWT, TWO_STEP and SIGNATURE providers: the signature protocol (`HMAC`, `RSA`, `WSSE`).
    #[serde(default)]
    pub signature: Option<serde_json::Value>,
    /// JWT, TWO_STEP and SIGNATURE providers: how the token is built (`signing_key`, `header`, `payload`,
    /// `expires_in_ms`).
    #[serde(default)]
    pub token: Option<serde_json::Value>,
    #[serde(default)]
    pub proxy: Option<ProviderProxy>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Named values whose JSON type varies by provider (strings mostly; booleans, numbers and objects too).
pub type Params = BTreeMap<String, serde_json::Value>;

/// A `token_params`-style value as text: strings as they are, other scalars as JSON text.
pub fn param_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `token_response:` section of a TWO_STEP provider: dotted paths into the token endpoint's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_expiration: Option<String>,
    /// `expireIn` (seconds from now) or `expireAt` (a date).
    #[serde(default)]
    pub token_expiration_strategy: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The `proxy:` section of a provider. An entry without a base URL (auth-only providers) loads; a proxied
/// call through it fails with [`ProxyError::NoBaseUrl`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProviderProxy {
    #[serde(default)]
    pub base_url: String,
    #[serde(default, deserialize_with = "text_map")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "text_map")]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub retry: Option<retry::ProviderRetry>,
    #[serde(default)]
    pub paginate: Option<serde_json::Value>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A map of templates whose values may be written as YAML scalars of any type (`x-version: 2`).
fn text_map<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = Option::<BTreeMap<String, serde_json::Value>>::deserialize(deserializer)?;
    raw.unwrap_or_default()
        .into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => Err(
                serde::de::Error::custom(format!("the value of \"{name}\" must be a string")),
            ),
            serde_json::Value::Null => Ok((name, String::new())),
            other => Ok((name, param_text(&other))),
        })
        .collect()
}

fn optional_text_map<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    text_map(deserializer).map(Some)
}

/// A catalog error: which entry, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    #[error("providers yaml is not valid YAML: {0}")]
    Yaml(String),
    #[error("providers yaml must be a mapping of provider names to entries")]
    NotAMapping,
    #[error("provider \"{name}\": {message}")]
    Entry { name: String, message: String },
}

/// Parses a providers YAML document into `(name, entry as JSON)` pairs, validating each entry and resolving
/// each `alias:` within the document.
pub fn parse_catalog(yaml: &str) -> Result<Vec<(String, serde_json::Value)>, CatalogError> {
    parse_catalog_with(yaml, &|_| None)
}

/// [`parse_catalog`], where an `alias:` that names no entry of the document is looked up with `stored`
/// (the catalog already loaded).
pub fn parse_catalog_with(
    yaml: &str,
    stored: &dyn Fn(&str) -> Option<serde_json::Value>,
) -> Result<Vec<(String, serde_json::Value)>, CatalogError> {
    let root =
        crate::config::yaml::parse_bounded(yaml).map_err(|e| CatalogError::Yaml(e.to_string()))?;
    let serde_yaml::Value::Mapping(entries) = root else {
        return Err(CatalogError::NotAMapping);
    };
    let mut catalog: Vec<(String, serde_json::Value)> = Vec::with_capacity(entries.len());
    for (name, entry) in entries {
        let name = name.as_str().ok_or(CatalogError::NotAMapping)?.to_string();
        let entry_error = |message: String| CatalogError::Entry {
            name: name.clone(),
            message,
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(entry_error(
                "a provider name uses lowercase letters, digits, - and _ only".into(),
            ));
        }
        let json = serde_json::to_value(&entry).map_err(|e| entry_error(e.to_string()))?;
        if !json.is_object() {
            return Err(entry_error("an entry must be a mapping".into()));
        }
        catalog.push((name, json));
    }
    // Nango resolves aliases in document order over the document itself: an alias of an entry that comes
    // earlier sees it resolved, one of a later entry sees it as written.
    let index: BTreeMap<String, usize> = catalog
        .iter()
        .enumerate()
        .map(|(at, (name, _))| (name.clone(), at))
        .collect();
    for at in 0..catalog.len() {
        let (name, json) = &catalog[at];
        let entry_error = |message: String| CatalogError::Entry {
            name: name.clone(),
            message,
        };
        if let Some(alias) = json.get("alias") {
            let alias = alias
                .as_str()
                .ok_or_else(|| entry_error("alias must be a provider name".into()))?;
            let base = match index.get(alias) {
                Some(&base_at) => catalog[base_at].1.clone(),
                None => stored(alias)
                    .ok_or_else(|| entry_error(format!("alias \"{alias}\" names no provider")))?,
            };
            let merged = merge_alias(&base, json);
            catalog[at].1 = merged;
        }
        let (name, json) = &catalog[at];
        serde_json::from_value::<Provider>(json.clone()).map_err(|e| CatalogError::Entry {
            name: name.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(catalog)
}

/// An `alias: other` entry as Nango loads it: the other entry's keys, overridden by the alias entry's own
/// (a shallow merge), without the `alias` key.
fn merge_alias(base: &serde_json::Value, entry: &serde_json::Value) -> serde_json::Value {
    let mut merged = base.as_object().cloned().unwrap_or_default();
    for (key, value) in entry.as_object().into_iter().flatten() {
        if key != "alias" {
            merged.insert(key.clone(), value.clone());
        }
    }
    serde_json::Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries() {
        let catalog = parse_catalog(
            "github:\n  auth_mode: OAUTH2\n  proxy:\n    base_url: https://api.github.com\n    paginate:\n      type: link\n",
        )
        .unwrap();
        assert_eq!(catalog[0].0, "github");
        let provider: Provider = serde_json::from_value(catalog[0].1.clone()).unwrap();
        assert_eq!(provider.proxy.unwrap().base_url, "https://api.github.com");
    }

    #[test]
    fn the_bundled_catalog_covers_the_common_apis() {
        let catalog = parse_catalog(include_str!("../../../../providers.yaml")).unwrap();
        assert!(catalog.len() >= 40, "{} providers", catalog.len());
        let names: Vec<&str> = catalog.iter().map(|(name, _)| name.as_str()).collect();
        for expected in [
            "github",
            "gitlab",
            "hubspot",
            "salesforce",
            "asana",
            "linear",
            "jira",
            "notion",
            "slack",
            "stripe",
            "zendesk",
            "intercom",
            "shopify",
            "google-calendar",
            "demo",
        ] {
            assert!(names.contains(&expected), "{expected} is missing");
        }
        for (name, entry) in &catalog {
            let provider: Provider = serde_json::from_value(entry.clone()).unwrap();
            assert!(provider.display_name.is_some(), "{name}: display_name");
            let mode = provider.auth_mode.as_deref().unwrap_or_default();
            assert!(
                ["API_KEY", "BASIC", "OAUTH2"].contains(&mode),
                "{name}: {mode}"
            );
            if mode == "OAUTH2" {
                assert!(
                    provider.token_url.is_some(),
                    "{name}: OAuth2 without token_url"
                );
            }
            if let Some(paginate) = provider.proxy.and_then(|p| p.paginate) {
                assert!(
                    ["cursor", "link", "offset"]
                        .contains(&paginate["type"].as_str().unwrap_or_default()),
                    "{name}: paginate type"
                );
            }
        }
    }

    #[test]
    fn loads_entries_without_base_url() {
        let catalog = parse_catalog("auth-only:\n  auth_mode: NONE\n").unwrap();
        assert_eq!(catalog[0].0, "auth-only");
        let provider: Provider = serde_json::from_value(catalog[0].1.clone()).unwrap();
        let connection = ConnectionInfo::default();
        let call = ProxyCall {
            method: "GET".into(),
            endpoint: "/x".into(),
            ..ProxyCall::default()
        };
        assert_eq!(
            build_request(&provider, &connection, &call),
            Err(ProxyError::NoBaseUrl)
        );
    }

    #[test]
    fn an_alias_inherits_and_overrides() {
        let catalog = parse_catalog(
            "base:\n  auth_mode: OAUTH2\n  token_url: https://x/token\n  proxy:\n    base_url: https://x\n\
             child:\n  alias: base\n  auth_mode: APP\n  display_name: Child\n",
        )
        .unwrap();
        let child = &catalog[1].1;
        assert_eq!(child["auth_mode"], "APP");
        assert_eq!(child["display_name"], "Child");
        assert_eq!(child["token_url"], "https://x/token");
        assert_eq!(child["proxy"]["base_url"], "https://x");
        assert!(child.get("alias").is_none());
        let err = parse_catalog("child:\n  alias: nowhere\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "provider \"child\": alias \"nowhere\" names no provider"
        );
    }

    #[test]
    fn scalar_values_of_any_type_load() {
        let catalog = parse_catalog(
            "shop:\n  auth_mode: OAUTH2\n  token_params:\n    expiring: 1\n    new_token: true\n    nested:\n      a: b\n  \
             proxy:\n    base_url: https://x\n    headers:\n      x-version: 2\n    decompress: true\n",
        )
        .unwrap();
        let provider: Provider = serde_json::from_value(catalog[0].1.clone()).unwrap();
        let params = provider.token_params.unwrap();
        assert_eq!(param_text(&params["expiring"]), "1");
        assert_eq!(param_text(&params["new_token"]), "true");
        assert_eq!(provider.proxy.unwrap().headers["x-version"], "2");
    }
}
