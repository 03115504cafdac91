//! Where a proxy call may go: another loopback address (127.0.0.2 here, standing in for any private host)
//! is refused before connecting unless `nango.allowed_hosts` lists it, credentials do not follow a redirect
//! to it, and a connection_config value cannot move a provider's URL to another host.

use pg_nango_e2e::*;
use pg_nango_mock_api::{OK_JSON, RecordingServer};
use serde_json::{Value, json};

const SECRET: &str = "egress-secret-key";

/// A provider that puts the key in a custom header, in `authorization` and in the query, as real ones do.
const PROVIDER: &str = "egress-test:\n    display_name: Egress test\n    auth_mode: API_KEY\n    proxy:\n        \
    base_url: ${connectionConfig.base_url}\n        headers:\n            authorization: Bearer ${apiKey}\n            \
    x-api-key: ${apiKey}\n        query:\n            api_key: ${apiKey}\n";

const CONFIG: &str = "integrations:\n    egress:\n        provider: egress-test\n        syncs:\n            reach:\n                \
    runs: every hour\n                auto_start: false\n                output: Reached\n                endpoint: GET /reached\n\
    models:\n    Reached:\n        id: string\n        ok: boolean\n";

/// Calls the URL in the connection's metadata directly (`baseUrlOverride`) or through the mock's redirect,
/// or (mode `base`) the connection's own base URL.
const SYNC: &str = "export default async function fetchData(nango: any): Promise<void> {\n\
    const { mode, target } = await nango.getMetadata();\n\
    const response = mode === 'redirect'\n\
        ? await nango.get({ endpoint: '/redirect', params: { to: target + '/landing' } })\n\
        : mode === 'base' ? await nango.get({ endpoint: '/base' })\n\
        : await nango.get({ baseUrlOverride: target, endpoint: '/direct' });\n\
    await nango.batchSave([{ id: mode, ok: response.data.ok === true }], 'Reached');\n\
}\n";

fn deploy(client: &mut Client) {
    client
        .query_one("SELECT nango.upsert_providers($1)", &[&PROVIDER])
        .expect("upsert the egress provider");
    let files = json!({"egress/syncs/reach.ts": SYNC});
    client
        .query_one(
            "SELECT nango.deploy($1::text, $2::jsonb, true)",
            &[&CONFIG, &files],
        )
        .expect("deploy the egress integration");
}

fn connection(client: &mut Client, connection_id: &str, mode: &str, target: &str) {
    let base_url = if mode == "base" {
        target.to_string()
    } else {
        mock().url()
    };
    client
        .execute(
            "SELECT nango.create_connection('egress', $1, $2, $3, $4)",
            &[
                &connection_id,
                &json!({"type": "API_KEY", "apiKey": SECRET}),
                &json!({ "base_url": base_url }),
                &json!({"mode": mode, "target": target}),
            ],
        )
        .expect("create_connection");
}

fn set_allowed_hosts(client: &mut Client, value: Option<&str>) {
    match value {
        // The mock API (the providers' base URL) stays allowed, as the harness sets it.
        Some(hosts) => set_server_setting(
            client,
            &format!("nango.allowed_hosts = '127.0.0.1, {hosts}'"),
        ),
        None => set_server_setting(client, "nango.allowed_hosts = '127.0.0.1'"),
    }
}

fn error_description(client: &mut Client, job: i64) -> String {
    let (status, _, error) = job_outcome(client, job);
    assert_eq!(status, "ERROR", "{error:?}");
    error.unwrap_or(Value::Null)["description"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

const REFUSED: &str = "request to 127.0.0.2 refused: it resolves to a private address (loopback); list the host in nango.allowed_hosts to allow it";

#[test]
fn another_private_host_is_reached_only_when_allowed_and_without_credentials() {
    let mut client = connect();
    deploy(&mut client);
    let other = RecordingServer::start("127.0.0.2", OK_JSON.to_vec()).expect("listen on 127.0.0.2");
    let target = format!("http://127.0.0.2:{}", other.port);
    connection(&mut client, "egress-direct", "direct", &target);
    connection(&mut client, "egress-redirect", "redirect", &target);
    // A connection whose own base URL (the provider's `${connectionConfig.base_url}`) is the private host:
    // a host the connection chose is not the provider's, and is checked like any other.
    connection(&mut client, "egress-base", "base", &target);

    // Not listed: every way fails before anything reaches 127.0.0.2.
    for connection_id in ["egress-direct", "egress-redirect", "egress-base"] {
        let (job, _) = run_sync(&mut client, "egress", "reach", connection_id);
        let description = error_description(&mut client, job);
        assert!(
            description.starts_with(REFUSED),
            "{connection_id}: {description}"
        );
    }
    assert_eq!(other.heads(), Vec::<String>::new());
    // The provider's own host was reached with the key (it answered the redirect).
    let redirects: Vec<Value> = mock()
        .requests()
        .into_iter()
        .filter(|r| r["path"] == "/redirect")
        .collect();
    assert_eq!(redirects.len(), 1, "{redirects:?}");
    assert_eq!(redirects[0]["query"]["api_key"], SECRET);

    set_allowed_hosts(&mut client, Some("127.0.0.2"));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for connection_id in ["egress-direct", "egress-redirect"] {
            let (job, status) = run_sync(&mut client, "egress", "reach", connection_id);
            assert_eq!(
                status,
                "SUCCESS",
                "{connection_id}: {:?}",
                job_outcome(&mut client, job)
            );
        }
        let heads = other.heads();
        assert_eq!(heads.len(), 2, "{heads:?}");
        let direct = heads[0].to_ascii_lowercase();
        assert!(direct.starts_with("get /direct?api_key="), "{direct}");
        // Across the redirect (which echoed the query into its Location) nothing of the key is left.
        let redirected = heads[1].to_ascii_lowercase();
        assert!(
            redirected.starts_with("get /landing http/1.1\r\n"),
            "{redirected}"
        );
        assert!(!redirected.contains(SECRET), "{redirected}");
        assert!(!redirected.contains("authorization"), "{redirected}");
        assert!(!redirected.contains("x-api-key"), "{redirected}");
        assert!(!redirected.contains("api_key"), "{redirected}");
        let saved: i64 = client
            .query_one(
                "SELECT count(*) FROM nango.records('Reached') WHERE (data ->> 'ok')::boolean",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(saved, 2);
    }));
    set_allowed_hosts(&mut client, None);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn create_connection_refuses_a_subdomain_that_changes_the_url() {
    let mut client = connect();
    client
        .execute(
            "SELECT nango.create_integration('zendesk-egress', 'zendesk', 'id', 'secret')",
            &[],
        )
        .unwrap();
    let credentials = json!({"type": "OAUTH2", "access_token": "a"});
    for bad in [
        "evil.example/?",
        "evil.example#",
        "x@evil.example",
        "evil.example:80",
        "a b",
    ] {
        let error = client
            .execute(
                "SELECT nango.create_connection('zendesk-egress', 'z-bad', $1, $2)",
                &[&credentials, &json!({"subdomain": bad})],
            )
            .expect_err(bad);
        let (message, _) = db_error(error);
        assert_eq!(
            message,
            "connection_config is refused: the value of ${connectionConfig.subdomain} cannot be placed in the host \
             of the URL https://${connectionConfig.subdomain}.zendesk.com: a host may not hold / \\ ? # @ : [ ] % or \
             whitespace",
            "{bad}"
        );
    }
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.connections WHERE connection_id = 'z-bad'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    client
        .execute(
            "SELECT nango.create_connection('zendesk-egress', 'z-good', $1, $2)",
            &[&credentials, &json!({"subdomain": "acme"})],
        )
        .expect("a plain subdomain is accepted");

    // The check runs as the extension's owner with a fixed search_path, and PUBLIC cannot call it.
    let row = client
        .query_one(
            "SELECT p.prosecdef, p.proconfig::text,
                    has_function_privilege('public', p.oid, 'EXECUTE')
             FROM pg_proc p WHERE p.oid = 'nango._check_connection_config(text, jsonb)'::regprocedure",
            &[],
        )
        .unwrap();
    let (definer, config, public): (bool, String, bool) = (row.get(0), row.get(1), row.get(2));
    assert!(definer);
    assert_eq!(config, "{\"search_path=pg_catalog, pg_temp\"}");
    assert!(!public);
}
