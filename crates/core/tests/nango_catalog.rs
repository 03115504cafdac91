//! Nango's own providers.yaml (the `@nangohq/providers` npm package pinned in scripts/npm-packages.lock)
//! loads whole, and the entries that matter read back as Nango means them.

use pg_nango_core::providers::{Provider, parse_catalog};
use serde_json::Value;
use std::collections::BTreeMap;

#[path = "support/nango_yaml.rs"]
mod nango_yaml;
use nango_yaml::nango_providers_yaml;

fn catalog() -> BTreeMap<String, Value> {
    parse_catalog(&nango_providers_yaml())
        .unwrap()
        .into_iter()
        .collect()
}

fn provider(catalog: &BTreeMap<String, Value>, name: &str) -> Provider {
    serde_json::from_value(catalog[name].clone()).unwrap()
}

#[test]
fn the_whole_nango_catalog_loads() {
    let catalog = catalog();
    assert!(catalog.len() >= 1000, "{} entries", catalog.len());
    for (name, entry) in &catalog {
        let provider: Provider = serde_json::from_value(entry.clone()).unwrap();
        assert!(provider.display_name.is_some(), "{name}: display_name");
        assert!(
            entry.get("alias").is_none(),
            "{name}: alias left unresolved"
        );
    }
}

#[test]
fn sample_entries_read_as_nango_means_them() {
    let catalog = catalog();
    let github = provider(&catalog, "github");
    assert_eq!(github.auth_mode.as_deref(), Some("OAUTH2"));
    let proxy = github.proxy.unwrap();
    assert_eq!(proxy.base_url, "https://api.github.com");
    let retry = proxy.retry.unwrap();
    assert_eq!(retry.at, ["x-ratelimit-reset"]);
    assert_eq!(retry.remaining.as_deref(), Some("x-ratelimit-remaining"));
    assert_eq!(proxy.paginate.unwrap()["type"], "link");

    let hubspot = provider(&catalog, "hubspot");
    assert_eq!(
        hubspot.token_url,
        Some(Value::from("https://api.hubapi.com/oauth/v1/token"))
    );
    let proxy = hubspot.proxy.unwrap();
    assert_eq!(proxy.other["decompress"], true);
    assert_eq!(proxy.paginate.unwrap()["cursor_name_in_request"], "after");

    let salesforce = provider(&catalog, "salesforce");
    assert_eq!(
        salesforce.proxy.unwrap().base_url,
        "${connectionConfig.instance_url}"
    );
    assert_eq!(
        salesforce.other["token_response_metadata"],
        serde_json::json!(["instance_url"])
    );

    // An alias: NetSuite TBA takes NetSuite's proxy and keeps its own auth mode.
    let tba = provider(&catalog, "netsuite-tba");
    assert_eq!(tba.auth_mode.as_deref(), Some("TBA"));
    assert_eq!(tba.display_name.as_deref(), Some("NetSuite (TBA)"));
    assert_eq!(
        tba.proxy.unwrap().base_url,
        "https://${connectionConfig.accountId}.suitetalk.api.netsuite.com/services/rest/record/v1"
    );

    let bill = provider(&catalog, "bill");
    assert_eq!(bill.auth_mode.as_deref(), Some("BILL"));
    assert_eq!(
        bill.token_url,
        Some(Value::from(
            "https://gateway.prod.bill.com/connect/v3/login"
        ))
    );

    let cc = provider(&catalog, "1password-users");
    assert_eq!(cc.auth_mode.as_deref(), Some("OAUTH2_CC"));
    assert_eq!(cc.token_request_auth_method.as_deref(), Some("basic"));
    assert_eq!(
        cc.token_params.unwrap()["grant_type"],
        Value::from("client_credentials")
    );

    let two_step = provider(&catalog, "3cx");
    assert_eq!(two_step.auth_mode.as_deref(), Some("TWO_STEP"));
    assert_eq!(two_step.body_format.as_deref(), Some("form"));
    assert_eq!(
        two_step.token_params.unwrap()["client_id"],
        Value::from("${credentials.clientId}")
    );
    assert_eq!(
        two_step.token_headers.unwrap()["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        two_step.token_response.unwrap().token.as_deref(),
        Some("access_token")
    );
    assert_eq!(two_step.token_expires_in_ms, Some(3_600_000));

    // Values that are not strings, where the reader once expected strings.
    let shopify = provider(&catalog, "shopify");
    assert_eq!(shopify.token_params.unwrap()["expiring"], Value::from(1));

    let ghost = provider(&catalog, "ghost-admin");
    assert_eq!(ghost.auth_mode.as_deref(), Some("JWT"));
    assert_eq!(ghost.token.unwrap()["header"]["alg"], "HS256");

    // GitHub App with user OAuth: CUSTOM, a token URL per mode, the proxy of its alias `github`.
    let custom = provider(&catalog, "github-app-oauth");
    assert_eq!(custom.auth_mode.as_deref(), Some("CUSTOM"));
    let token_url = custom.token_url.unwrap();
    assert!(
        token_url["APP"]
            .as_str()
            .unwrap()
            .contains("${connectionConfig.installation_id}")
    );
    assert_eq!(
        token_url["OAUTH2"],
        "https://github.com/login/oauth/access_token"
    );
    assert_eq!(custom.proxy.unwrap().base_url, "https://api.github.com");

    // Auth-only entries load without a proxy.
    assert!(provider(&catalog, "github-app").proxy.is_some());
    assert!(catalog.contains_key("unauthenticated"));
}
