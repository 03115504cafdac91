//! The provider catalog (`providers.yaml`): how each API is reached — base URL, auth, extra headers and query
//! parameters, retry and rate-limit headers, pagination defaults — and the rules that turn a script's proxy
//! call into an HTTP request with the connection's credentials.

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

/// One catalog entry, as in Nango's `providers.yaml`. Keys this engine does not use are kept in `other`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Provider {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub auth_mode: Option<String>,
    /// Where OAuth2 tokens are refreshed: a URL template, or one per auth mode (`{OAUTH2: …}`).
    #[serde(default)]
    pub token_url: Option<serde_json::Value>,
    /// Extra form fields of a refresh request (Nango's `refresh_params`, else `token_params`).
    #[serde(default)]
    pub refresh_params: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub token_params: Option<BTreeMap<String, String>>,
    /// `basic` sends the client id and secret as HTTP Basic auth instead of in the body.
    #[serde(default)]
    pub token_request_auth_method: Option<String>,
    /// Seconds before expiry at which a token is refreshed (default 15 minutes).
    #[serde(default)]
    pub token_expiration_buffer: Option<u64>,
    #[serde(default)]
    pub proxy: Option<ProviderProxy>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The `proxy:` section of a provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProviderProxy {
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub retry: Option<retry::ProviderRetry>,
    #[serde(default)]
    pub paginate: Option<serde_json::Value>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
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

/// Parses a providers YAML document into `(name, entry as JSON)` pairs, validating each entry.
pub fn parse_catalog(yaml: &str) -> Result<Vec<(String, serde_json::Value)>, CatalogError> {
    let root =
        crate::config::yaml::parse_bounded(yaml).map_err(|e| CatalogError::Yaml(e.to_string()))?;
    let serde_yaml::Value::Mapping(entries) = root else {
        return Err(CatalogError::NotAMapping);
    };
    let mut catalog = Vec::new();
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
        let provider: Provider =
            serde_json::from_value(json.clone()).map_err(|e| entry_error(e.to_string()))?;
        if provider
            .proxy
            .as_ref()
            .is_none_or(|p| p.base_url.is_empty())
        {
            return Err(entry_error("proxy.base_url is required".into()));
        }
        catalog.push((name, json));
    }
    Ok(catalog)
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
    fn rejects_entries_without_base_url() {
        let err = parse_catalog("broken:\n  auth_mode: API_KEY\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "provider \"broken\": proxy.base_url is required"
        );
    }
}
