//! The provider proxy end to end: credentials injected by type, provider templates, the catalog.

use pg_nango_e2e::*;
use serde_json::{Value, json};

/// Runs `echo/whoami` for a new connection with these credentials; returns what the mock API saw.
fn whoami(client: &mut Client, connection_id: &str, credentials: Value) -> Value {
    create_connection_with(
        client,
        "echo",
        connection_id,
        credentials,
        json!({"tenant": "acme"}),
    );
    let (_, status) = run_sync(client, "echo", "whoami", connection_id);
    assert_eq!(status, "SUCCESS");
    client
        .query_one(
            "SELECT data FROM nango.records('Echo', connection_id => $1)",
            &[&connection_id],
        )
        .expect("the echo record")
        .get(0)
}

#[test]
fn each_credential_type_is_injected_with_the_provider_templates() {
    let mut client = connect();

    let seen = whoami(
        &mut client,
        "echo-api-key",
        json!({"type": "API_KEY", "apiKey": "k-123"}),
    );
    assert_eq!(seen["api_key"], "k-123");
    assert_eq!(seen["authorization"], Value::Null);
    assert_eq!(seen["tenant"], "acme");
    assert_eq!(seen["query"], "page=1&api_version=2024-01");

    let seen = whoami(
        &mut client,
        "echo-basic",
        json!({"type": "BASIC", "username": "ada", "password": "s3cret"}),
    );
    // base64("ada:s3cret")
    assert_eq!(seen["authorization"], "Basic YWRhOnMzY3JldA==");
    assert_eq!(seen["api_key"], Value::Null);
    assert_eq!(seen["tenant"], "acme");

    let seen = whoami(
        &mut client,
        "echo-oauth",
        json!({"type": "OAUTH2", "access_token": "at-1", "refresh_token": "rt-1"}),
    );
    assert_eq!(seen["authorization"], "Bearer at-1");
    assert_eq!(seen["api_key"], Value::Null);
}

#[test]
fn upsert_providers_adds_and_replaces_entries() {
    let mut client = connect();
    let added: i32 = client
        .query_one(
            "SELECT nango.upsert_providers($1)",
            &[&"acme-crm:\n    auth_mode: API_KEY\n    proxy:\n        base_url: https://api.acme.test\n"],
        )
        .unwrap()
        .get(0);
    assert_eq!(added, 1);
    let row = client
        .query_one(
            "SELECT definition FROM nango.providers WHERE name = 'acme-crm'",
            &[],
        )
        .unwrap();
    assert_eq!(
        row.get::<_, Value>(0)["proxy"]["base_url"],
        "https://api.acme.test"
    );

    // Replacing the entry a deployed integration uses changes its next run's requests.
    let mut providers = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/providers.yaml"),
    )
    .unwrap();
    providers = providers.replace(
        "            x-api-key: ${apiKey}\n",
        "            x-api-key: ${apiKey}\n            x-extra: two\n",
    );
    client
        .query_one("SELECT nango.upsert_providers($1)", &[&providers])
        .unwrap();
    let seen = whoami(
        &mut client,
        "echo-replaced",
        json!({"type": "API_KEY", "apiKey": "k"}),
    );
    assert_eq!(seen["extra"], "two");

    // A bad catalog is refused with the reason and changes nothing.
    let (message, _) = db_error(
        client
            .query_one(
                "SELECT nango.upsert_providers($1)",
                &[&"acme-crm:\n    auth_mode: [not, a, mode]\n"],
            )
            .unwrap_err(),
    );
    assert!(message.contains("acme-crm"), "{message}");
    let base_url: Value = client
        .query_one(
            "SELECT definition -> 'proxy' -> 'base_url' FROM nango.providers WHERE name = 'acme-crm'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(base_url, "https://api.acme.test");
}

#[test]
fn an_expiring_oauth_token_is_refreshed_once_for_concurrent_runs() {
    let mut client = connect();
    client
        .execute(
            "SELECT nango.create_integration('echo', 'e2e-echo', $1, $2)",
            &[
                &pg_nango_mock_api::OAUTH_CLIENT_ID,
                &pg_nango_mock_api::OAUTH_CLIENT_SECRET,
            ],
        )
        .unwrap();
    let expires_soon = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    create_connection_with(
        &mut client,
        "echo",
        "echo-refresh",
        json!({"type": "OAUTH2", "access_token": "old-token", "refresh_token": "rt-0", "expires_at": expires_soon}),
        json!({"tenant": "acme"}),
    );
    let issued_before = mock().tokens_issued();

    // Two syncs of the same connection start together; both find the token about to expire.
    let jobs: Vec<i64> = ["whoami", "whoami-too"]
        .iter()
        .map(|sync| {
            client
                .query_one(
                    "SELECT nango.trigger_sync('echo', $1, 'echo-refresh')",
                    &[sync],
                )
                .unwrap()
                .get(0)
        })
        .collect();
    for job in &jobs {
        let status: String = client
            .query_one("SELECT nango.wait_for_job($1, '60 seconds')", &[job])
            .unwrap()
            .get(0);
        assert_eq!(status, "SUCCESS");
    }
    assert_eq!(mock().tokens_issued(), issued_before + 1);

    let stored: serde_json::Value = client
        .query_one(
            "SELECT cr.credentials FROM nango.credentials cr JOIN nango.connections c ON c.id = cr.connection
             WHERE c.connection_id = 'echo-refresh'",
            &[],
        )
        .unwrap()
        .get(0);
    let token = stored["access_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("at-"), "{stored}");
    assert!(stored["refresh_token"].as_str().unwrap().starts_with("rt-"));
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(stored["expires_at"].as_str().unwrap()).unwrap();
    assert!(expires_at > chrono::Utc::now() + chrono::Duration::minutes(50));
    for model in ["Echo", "EchoToo"] {
        let seen: serde_json::Value = client
            .query_one(
                "SELECT data FROM nango.records($1, connection_id => 'echo-refresh')",
                &[&model],
            )
            .unwrap()
            .get(0);
        assert_eq!(seen["authorization"], format!("Bearer {token}"), "{model}");
    }
}
