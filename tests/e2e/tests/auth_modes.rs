//! Provider catalogs and auth modes: Nango's own providers.yaml loads whole through
//! `nango.upsert_providers`, and a connection of each auth mode reaches the mock API with the token its
//! mode fetches or signs, fetched once, reused, and fetched again once expired.

use pg_nango_e2e::*;
use serde_json::{Value, json};

#[path = "../../../crates/core/tests/support/nango_yaml.rs"]
mod nango_yaml;
use nango_yaml::nango_providers_yaml;

#[test]
fn nangos_whole_catalog_is_upserted() {
    let mut client = connect();
    let yaml = nango_providers_yaml();
    let count: i32 = client
        .query_one("SELECT nango.upsert_providers($1)", &[&yaml])
        .expect("upsert Nango's providers.yaml")
        .get(0);
    assert!(count >= 1000, "{count} providers");
    let row = client
        .query_one(
            "SELECT definition ->> 'auth_mode', definition -> 'proxy' ->> 'base_url'
             FROM nango.providers WHERE name = 'netsuite-tba'",
            &[],
        )
        .expect("netsuite-tba is stored");
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("TBA"));
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some(
            "https://${connectionConfig.accountId}.suitetalk.api.netsuite.com/services/rest/record/v1"
        )
    );
    // An auth-only entry loads; an integration of it can be created.
    client
        .execute(
            "SELECT nango.create_integration('none-auth', 'unauthenticated')",
            &[],
        )
        .expect("create an integration of an entry without credentials");
}

/// One test provider per auth mode, all reaching the mock API at the connection's `base_url`.
const PROVIDERS: &str = r#"
auth-none-test:
    display_name: Auth NONE test
    auth_mode: NONE
    proxy:
        base_url: ${connectionConfig.base_url}
auth-cc-test:
    display_name: Auth OAUTH2_CC test
    auth_mode: OAUTH2_CC
    token_url: ${connectionConfig.base_url}/auth/cc/token
    token_params:
        grant_type: client_credentials
    proxy:
        base_url: ${connectionConfig.base_url}
auth-two-step-test:
    display_name: Auth TWO_STEP test
    auth_mode: TWO_STEP
    token_url: ${connectionConfig.base_url}/auth/two-step/login
    token_params:
        user: ${credentials.username}
        pass: ${credentials.password}
    token_headers:
        x-app: ${credentials.app}
    token_response:
        token: data.session
        token_expiration: data.ttl
        token_expiration_strategy: expireIn
    proxy:
        base_url: ${connectionConfig.base_url}
        headers:
            x-session: ${accessToken}
auth-jwt-test:
    display_name: Auth JWT test
    auth_mode: JWT
    signature:
        protocol: HMAC
    token:
        signing_key: ${credentials.privateKey.secret}
        expires_in_ms: 300000
        header:
            alg: HS256
            kid: ${credentials.privateKey.id}
        payload:
            aud: /admin/
    proxy:
        base_url: ${connectionConfig.base_url}
        headers:
            authorization: Ghost ${accessToken}
auth-app-test:
    display_name: Auth APP test
    auth_mode: APP
    token_url: ${connectionConfig.base_url}/auth/app/installations/${connectionConfig.installation_id}/access_tokens
    proxy:
        base_url: ${connectionConfig.base_url}
auth-bill-test:
    display_name: Auth BILL test
    auth_mode: BILL
    token_url: ${connectionConfig.base_url}/auth/bill/login
    proxy:
        base_url: ${connectionConfig.base_url}
        headers:
            sessionId: ${credentials.session_id}
            devKey: ${credentials.dev_key}
auth-tba-test:
    display_name: Auth TBA test
    auth_mode: TBA
    proxy:
        base_url: ${connectionConfig.base_url}
auth-signature-test:
    display_name: Auth SIGNATURE test
    auth_mode: SIGNATURE
    signature:
        protocol: WSSE
    token:
        expires_in_ms: 300000
    proxy:
        base_url: ${connectionConfig.base_url}
        headers:
            x-wsse: ${accessToken}
auth-custom-test:
    display_name: Auth CUSTOM test
    auth_mode: CUSTOM
    token_url:
        OAUTH2: ${connectionConfig.base_url}/oauth/token
        APP: ${connectionConfig.base_url}/auth/app/installations/${connectionConfig.installation_id}/access_tokens
    proxy:
        base_url: ${connectionConfig.base_url}
"#;

const MODES: [&str; 9] = [
    "none",
    "cc",
    "two-step",
    "jwt",
    "app",
    "bill",
    "tba",
    "signature",
    "custom",
];

/// A proxied request to the mock's `/auth/verify`, which checks a per-request signature, with a query the
/// signature covers.
const VERIFY: &str = "export default async function runAction(nango: any): Promise<any> {\n\
    const response = await nango.get({ endpoint: '/auth/verify', params: { q: 'a b/c*', limit: 5 } });\n\
    const connection = await nango.getConnection();\n\
    return { headers: response.data, credentials: connection.credentials };\n\
}\n";

/// A proxied request to the mock's `/auth/whoami`, and the connection as the script sees it.
const WHOAMI: &str = "export default async function runAction(nango: any): Promise<any> {\n\
    const response = await nango.get({ endpoint: '/auth/whoami' });\n\
    const connection = await nango.getConnection();\n\
    return { headers: response.data.headers, credentials: connection.credentials };\n\
}\n";

/// As [`WHOAMI`], with the user's token the connection_config holds and what `getToken` returns.
const WHOAMI_CUSTOM: &str = "export default async function runAction(nango: any): Promise<any> {\n\
    const response = await nango.get({ endpoint: '/auth/whoami' });\n\
    const connection = await nango.getConnection();\n\
    const token = await nango.getToken();\n\
    return { headers: response.data.headers, credentials: connection.credentials,\n\
        user: connection.connection_config.userCredentials ?? null, token };\n\
}\n";

/// Deploys the auth integrations once for the binary's tests, which run in parallel.
fn deploy(client: &mut Client) {
    static DEPLOYED: std::sync::Once = std::sync::Once::new();
    DEPLOYED.call_once(|| deploy_now(client));
}

fn deploy_now(client: &mut Client) {
    client
        .query_one("SELECT nango.upsert_providers($1)", &[&PROVIDERS])
        .expect("upsert the auth test providers");
    let mut config = String::from("integrations:\n");
    let mut files = serde_json::Map::new();
    for mode in MODES {
        config.push_str(&format!(
            "    auth-{mode}:\n        provider: auth-{mode}-test\n        actions:\n            whoami:\n                \
             output: Seen\n                endpoint: GET /whoami\n"
        ));
        let script = match mode {
            "tba" | "signature" => VERIFY,
            "custom" => WHOAMI_CUSTOM,
            _ => WHOAMI,
        };
        files.insert(format!("auth-{mode}/actions/whoami.ts"), json!(script));
    }
    config.push_str("models:\n    Seen:\n        headers: object\n        credentials: object\n");
    client
        .query_one(
            "SELECT nango.deploy($1::text, $2::jsonb, true)",
            &[&config, &Value::Object(files)],
        )
        .expect("deploy the auth integrations");
}

fn connection(client: &mut Client, mode: &str, id: &str, credentials: Value, config: Value) {
    let mut connection_config = json!({"base_url": mock().url()});
    connection_config
        .as_object_mut()
        .unwrap()
        .extend(config.as_object().cloned().unwrap_or_default());
    client
        .execute(
            "SELECT nango.create_connection($1, $2, $3, $4)",
            &[
                &format!("auth-{mode}"),
                &id,
                &credentials,
                &connection_config,
            ],
        )
        .expect("create_connection");
}

fn whoami(client: &mut Client, mode: &str, id: &str) -> Result<Value, String> {
    client
        .query_one(
            "SELECT nango.trigger_action($1, $2, 'whoami')",
            &[&format!("auth-{mode}"), &id],
        )
        .map(|row| row.get(0))
        .map_err(|e| db_error(e).0)
}

/// Makes the stored token look expired, as it would be an hour later.
fn expire(client: &mut Client, id: &str) {
    client
        .execute(
            "UPDATE nango.credentials cr SET credentials = cr.credentials || '{\"expires_at\": \"2001-01-01T00:00:00Z\"}'
             FROM nango.connections c WHERE c.id = cr.connection AND c.connection_id = $1",
            &[&id],
        )
        .expect("expire the token");
}

fn stored_credentials(client: &mut Client, id: &str) -> Value {
    client
        .query_one(
            "SELECT cr.credentials FROM nango.credentials cr JOIN nango.connections c ON c.id = cr.connection
             WHERE c.connection_id = $1",
            &[&id],
        )
        .expect("stored credentials")
        .get(0)
}

#[test]
fn none_sends_no_credentials() {
    let mut client = connect();
    deploy(&mut client);
    connection(
        &mut client,
        "none",
        "none-1",
        json!({"type": "NONE"}),
        json!({}),
    );
    let seen = whoami(&mut client, "none", "none-1").unwrap();
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    assert_eq!(seen["credentials"], json!({"type": "NONE"}));
}

#[test]
fn client_credentials_are_exchanged_once_reused_and_fetched_again_when_expired() {
    use pg_nango_mock_api::auth::{CC_CLIENT_ID, CC_CLIENT_SECRET};
    let mut client = connect();
    deploy(&mut client);
    let credentials =
        json!({"type": "OAUTH2_CC", "client_id": CC_CLIENT_ID, "client_secret": CC_CLIENT_SECRET});
    connection(&mut client, "cc", "cc-1", credentials, json!({}));
    let before = mock().auth_tokens_issued("cc");
    let first = whoami(&mut client, "cc", "cc-1").unwrap();
    let token = first["credentials"]["token"].as_str().unwrap().to_string();
    assert_eq!(first["headers"]["authorization"], format!("Bearer {token}"));
    assert_eq!(first["credentials"]["type"], "OAUTH2_CC");
    assert_eq!(first["credentials"]["client_id"], CC_CLIENT_ID);
    assert!(first["credentials"]["expires_at"].is_string(), "{first}");
    let second = whoami(&mut client, "cc", "cc-1").unwrap();
    assert_eq!(
        second["headers"]["authorization"],
        format!("Bearer {token}")
    );
    assert_eq!(mock().auth_tokens_issued("cc"), before + 1);

    expire(&mut client, "cc-1");
    let third = whoami(&mut client, "cc", "cc-1").unwrap();
    assert_eq!(mock().auth_tokens_issued("cc"), before + 2);
    let renewed = third["credentials"]["token"].as_str().unwrap();
    assert_ne!(renewed, token);
    assert_eq!(
        third["headers"]["authorization"],
        format!("Bearer {renewed}")
    );
    assert_eq!(stored_credentials(&mut client, "cc-1")["token"], renewed);

    // A wrong secret: the error says what failed, never the secret.
    let wrong =
        json!({"type": "OAUTH2_CC", "client_id": CC_CLIENT_ID, "client_secret": "wrong-cc-secret"});
    connection(&mut client, "cc", "cc-wrong", wrong, json!({}));
    let error = whoami(&mut client, "cc", "cc-wrong").unwrap_err();
    assert_eq!(
        error,
        "action whoami failed: fetching the OAuth2 client credentials token failed: the token endpoint answered HTTP 401"
    );
    let leaked: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.logs WHERE message LIKE '%wrong-cc-secret%' OR payload::text LIKE '%wrong-cc-secret%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0);
}

#[test]
fn a_two_step_token_is_fetched_per_the_providers_templates() {
    use pg_nango_mock_api::auth::{TWO_STEP_PASS, TWO_STEP_USER};
    let mut client = connect();
    deploy(&mut client);
    let credentials = json!({"type": "TWO_STEP", "username": TWO_STEP_USER, "password": TWO_STEP_PASS, "app": "two-step-app"});
    connection(&mut client, "two-step", "ts-1", credentials, json!({}));
    let before = mock().auth_tokens_issued("two-step");
    let first = whoami(&mut client, "two-step", "ts-1").unwrap();
    let token = first["credentials"]["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ts-"), "{first}");
    // The token goes where the provider puts it, and no Bearer header is added.
    assert_eq!(first["headers"]["x-session"], token);
    assert!(first["headers"].get("authorization").is_none(), "{first}");
    assert_eq!(first["credentials"]["username"], TWO_STEP_USER);
    assert_eq!(first["credentials"]["raw"]["data"]["ttl"], 3600);
    whoami(&mut client, "two-step", "ts-1").unwrap();
    assert_eq!(mock().auth_tokens_issued("two-step"), before + 1);
    expire(&mut client, "ts-1");
    let renewed = whoami(&mut client, "two-step", "ts-1").unwrap();
    assert_eq!(mock().auth_tokens_issued("two-step"), before + 2);
    assert_ne!(renewed["headers"]["x-session"], token);

    let wrong = json!({"type": "TWO_STEP", "username": TWO_STEP_USER, "password": "nope", "app": "two-step-app"});
    connection(&mut client, "two-step", "ts-wrong", wrong, json!({}));
    assert_eq!(
        whoami(&mut client, "two-step", "ts-wrong").unwrap_err(),
        "action whoami failed: fetching the two-step token failed: the token endpoint answered HTTP 401"
    );
}

#[test]
fn a_jwt_is_signed_per_the_providers_token_template() {
    let mut client = connect();
    deploy(&mut client);
    let secret = "00ff10a5";
    let credentials = json!({"type": "JWT", "privateKey": format!("key-id:{secret}")});
    connection(&mut client, "jwt", "jwt-1", credentials, json!({}));
    let first = whoami(&mut client, "jwt", "jwt-1").unwrap();
    let header = first["headers"]["authorization"].as_str().unwrap();
    let token = header.strip_prefix("Ghost ").expect("Ghost <jwt>");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["/admin/"]);
    let decoded = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(&[0x00, 0xff, 0x10, 0xa5]),
        &validation,
    )
    .expect("the JWT verifies with the hex secret");
    assert_eq!(decoded.header.kid.as_deref(), Some("key-id"));
    assert_eq!(first["credentials"]["token"], token);
    // Reused while valid.
    let second = whoami(&mut client, "jwt", "jwt-1").unwrap();
    assert_eq!(second["headers"]["authorization"], header);
    expire(&mut client, "jwt-1");
    whoami(&mut client, "jwt", "jwt-1").unwrap();
    let stored = stored_credentials(&mut client, "jwt-1");
    assert!(
        stored["expires_at"].as_str().unwrap() > "2026",
        "signed again: {stored}"
    );
}

/// The test GitHub App's private key; the mock checks app JWTs with its public key.
fn app_private_key() -> String {
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/keys");
    let public_key = std::fs::read_to_string(keys.join("github-app.pub.pem")).unwrap();
    mock().set_app_public_key(&public_key);
    std::fs::read_to_string(keys.join("github-app.pem")).unwrap()
}

/// The installation token a `whoami` answer shows, checked: a token of `installation` issued by the mock,
/// sent as `Bearer`, in credentials of type APP.
fn installation_token_sent(seen: &Value, installation: &str) -> String {
    let token = seen["credentials"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("ghs-"), "{seen}");
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {token}"));
    assert_eq!(seen["credentials"]["type"], "APP");
    assert_eq!(seen["credentials"]["raw"]["installation"], installation);
    token
}

#[test]
fn a_github_app_installation_token_is_fetched_with_an_app_jwt() {
    let mut client = connect();
    deploy(&mut client);
    let credentials = json!({"type": "APP", "private_key": app_private_key()});
    connection(
        &mut client,
        "app",
        "app-1",
        credentials,
        json!({"app_id": "42", "installation_id": "77"}),
    );
    let before = mock().auth_tokens_issued("app");
    let first = whoami(&mut client, "app", "app-1").unwrap();
    let token = installation_token_sent(&first, "77");
    whoami(&mut client, "app", "app-1").unwrap();
    assert_eq!(mock().auth_tokens_issued("app"), before + 1);
    expire(&mut client, "app-1");
    let renewed = whoami(&mut client, "app", "app-1").unwrap();
    assert_eq!(mock().auth_tokens_issued("app"), before + 2);
    assert_ne!(renewed["credentials"]["access_token"], token);

    // Another key's JWT is refused by the endpoint.
    let other = "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n";
    connection(
        &mut client,
        "app",
        "app-bad",
        json!({"type": "APP", "private_key": other}),
        json!({"app_id": "42", "installation_id": "77"}),
    );
    assert_eq!(
        whoami(&mut client, "app", "app-bad").unwrap_err(),
        "action whoami failed: the connection's signing key is not a usable key"
    );
}

#[test]
fn a_bill_session_is_logged_in_reused_and_renewed() {
    use pg_nango_mock_api::auth::{BILL_DEV_KEY, BILL_ORG, BILL_PASS, BILL_USER};
    let mut client = connect();
    deploy(&mut client);
    let credentials = json!({"type": "BILL", "username": BILL_USER, "password": BILL_PASS,
        "organization_id": BILL_ORG, "dev_key": BILL_DEV_KEY});
    connection(&mut client, "bill", "bill-1", credentials, json!({}));
    let before = mock().auth_tokens_issued("bill");
    let first = whoami(&mut client, "bill", "bill-1").unwrap();
    let session = first["credentials"]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(session.starts_with("bill-"), "{first}");
    assert_eq!(first["headers"]["sessionid"], session);
    assert_eq!(first["headers"]["devkey"], BILL_DEV_KEY);
    assert!(first["headers"].get("authorization").is_none(), "{first}");
    assert_eq!(first["credentials"]["type"], "BILL");
    assert_eq!(first["credentials"]["user_id"], "00601user");
    assert_eq!(first["credentials"]["organization_id"], BILL_ORG);
    assert!(first["credentials"]["expires_at"].is_string(), "{first}");
    whoami(&mut client, "bill", "bill-1").unwrap();
    assert_eq!(mock().auth_tokens_issued("bill"), before + 1);
    expire(&mut client, "bill-1");
    let renewed = whoami(&mut client, "bill", "bill-1").unwrap();
    assert_eq!(mock().auth_tokens_issued("bill"), before + 2);
    assert_ne!(renewed["headers"]["sessionid"], session);
    assert_eq!(
        stored_credentials(&mut client, "bill-1")["session_id"],
        renewed["headers"]["sessionid"]
    );

    let wrong = json!({"type": "BILL", "username": BILL_USER, "password": "wrong-bill-pass",
        "organization_id": BILL_ORG, "dev_key": BILL_DEV_KEY});
    connection(&mut client, "bill", "bill-wrong", wrong, json!({}));
    assert_eq!(
        whoami(&mut client, "bill", "bill-wrong").unwrap_err(),
        "action whoami failed: logging in to BILL failed: the token endpoint answered HTTP 401"
    );
    assert_no_log_contains(&mut client, "wrong-bill-pass");

    let error = client
        .execute(
            "SELECT nango.create_connection('auth-bill', 'bill-x', $1, '{}')",
            &[&json!({"type": "BILL", "username": "u", "password": "secret-p", "organization_id": "o"})],
        )
        .unwrap_err();
    assert_eq!(
        db_error(error).0,
        "BILL credentials need a non-empty \"dev_key\" string"
    );
}

#[test]
fn tba_requests_carry_an_oauth1_signature_the_api_verifies() {
    use pg_nango_mock_api::signing::{
        TBA_CONSUMER_KEY, TBA_CONSUMER_SECRET, TBA_TOKEN_ID, TBA_TOKEN_SECRET,
    };
    let mut client = connect();
    deploy(&mut client);
    let credentials = json!({"type": "TBA", "token_id": TBA_TOKEN_ID, "token_secret": TBA_TOKEN_SECRET,
        "config_override": {"client_id": TBA_CONSUMER_KEY, "client_secret": TBA_CONSUMER_SECRET}});
    connection(
        &mut client,
        "tba",
        "tba-1",
        credentials.clone(),
        json!({"accountId": "tstdrv-123"}),
    );
    let first = whoami(&mut client, "tba", "tba-1").unwrap();
    assert_eq!(first["headers"]["mode"], "TBA", "{first}");
    assert_eq!(first["headers"]["realm"], "TSTDRV_123");
    assert_eq!(
        first["headers"]["query"],
        json!({"q": "a b/c*", "limit": "5"})
    );
    let authorization = first["headers"]["authorization"].as_str().unwrap();
    assert!(
        authorization
            .starts_with("OAuth realm=\"TSTDRV_123\", oauth_consumer_key=\"tba-consumer\""),
        "{authorization}"
    );
    assert!(authorization.contains("oauth_signature_method=\"HMAC-SHA256\""));
    assert!(!authorization.contains(TBA_TOKEN_SECRET));
    assert_eq!(first["credentials"], credentials);
    // Each request is signed anew.
    let second = whoami(&mut client, "tba", "tba-1").unwrap();
    assert_ne!(second["headers"]["nonce"], first["headers"]["nonce"]);

    let mut wrong = credentials.clone();
    wrong["token_secret"] = json!("wrong-tba-secret");
    connection(
        &mut client,
        "tba",
        "tba-wrong",
        wrong,
        json!({"accountId": "tstdrv-123"}),
    );
    assert_eq!(
        whoami(&mut client, "tba", "tba-wrong").unwrap_err(),
        "action whoami failed: Request failed with status code 401"
    );
    assert_no_log_contains(&mut client, "wrong-tba-secret");

    // Without an override, the integration's client id and secret are the consumer.
    let bare = json!({"type": "TBA", "token_id": TBA_TOKEN_ID, "token_secret": TBA_TOKEN_SECRET});
    connection(
        &mut client,
        "tba",
        "tba-integration",
        bare,
        json!({"accountId": "tstdrv-123"}),
    );
    assert_eq!(
        whoami(&mut client, "tba", "tba-integration").unwrap_err(),
        "action whoami failed: TBA connections need a consumer key: config_override.client_id in the credentials, or the integration's client id"
    );
    client
        .execute(
            "SELECT nango.create_integration('auth-tba', 'auth-tba-test', $1, $2)",
            &[&TBA_CONSUMER_KEY, &TBA_CONSUMER_SECRET],
        )
        .expect("set the integration's client");
    let seen = whoami(&mut client, "tba", "tba-integration").unwrap();
    assert_eq!(seen["headers"]["mode"], "TBA", "{seen}");

    let error = client
        .execute(
            "SELECT nango.create_connection('auth-tba', 'tba-x', $1, '{}')",
            &[&json!({"type": "TBA", "token_id": "t"})],
        )
        .unwrap_err();
    assert_eq!(
        db_error(error).0,
        "TBA credentials need a non-empty \"token_secret\" string"
    );
}

#[test]
fn a_wsse_signature_is_computed_reused_and_computed_again_when_expired() {
    use pg_nango_mock_api::signing::{WSSE_PASS, WSSE_USER};
    let mut client = connect();
    deploy(&mut client);
    let credentials = json!({"type": "SIGNATURE", "username": WSSE_USER, "password": WSSE_PASS});
    connection(&mut client, "signature", "wsse-1", credentials, json!({}));
    let first = whoami(&mut client, "signature", "wsse-1").unwrap();
    assert_eq!(first["headers"]["mode"], "WSSE", "{first}");
    assert_eq!(first["headers"]["username"], WSSE_USER);
    let token = first["credentials"]["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("UsernameToken Username=\"wsse-user\", PasswordDigest=\""));
    assert_eq!(first["headers"]["authorization"], format!("Bearer {token}"));
    assert!(first["credentials"]["expires_at"].is_string(), "{first}");
    let second = whoami(&mut client, "signature", "wsse-1").unwrap();
    assert_eq!(second["credentials"]["token"], token.as_str());
    expire(&mut client, "wsse-1");
    let third = whoami(&mut client, "signature", "wsse-1").unwrap();
    assert_ne!(third["credentials"]["token"], token.as_str());
    assert_eq!(third["headers"]["mode"], "WSSE");

    let wrong = json!({"type": "SIGNATURE", "username": WSSE_USER, "password": "wrong-wsse-pass"});
    connection(&mut client, "signature", "wsse-wrong", wrong, json!({}));
    assert_eq!(
        whoami(&mut client, "signature", "wsse-wrong").unwrap_err(),
        "action whoami failed: Request failed with status code 401"
    );
    assert_no_log_contains(&mut client, "wrong-wsse-pass");
}

/// No log row holds `secret`.
fn assert_no_log_contains(client: &mut Client, secret: &str) {
    let leaked: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.logs WHERE position($1 in message) > 0 OR position($1 in payload::text) > 0",
            &[&secret],
        )
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0, "{secret} reached the logs");
}

#[test]
fn create_connection_checks_each_modes_credentials() {
    let mut client = connect();
    deploy(&mut client);
    let error = client
        .execute(
            "SELECT nango.create_connection('auth-app', 'app-x', '{\"type\": \"APP\"}', '{}')",
            &[],
        )
        .unwrap_err();
    assert_eq!(
        db_error(error).0,
        "APP credentials need a non-empty \"private_key\" string"
    );
}

/// Makes the stored installation token of a CUSTOM connection look expired.
fn expire_app_token(client: &mut Client, id: &str) {
    client
        .execute(
            "UPDATE nango.credentials cr
             SET credentials = jsonb_set(cr.credentials, '{app,expires_at}', '\"2001-01-01T00:00:00Z\"')
             FROM nango.connections c WHERE c.id = cr.connection AND c.connection_id = $1",
            &[&id],
        )
        .expect("expire the installation token");
}

/// A CUSTOM connection whose user token the integration's OAuth client can refresh.
fn custom_connection(client: &mut Client, id: &str, user: Value) {
    use pg_nango_mock_api::{OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET};
    client
        .execute(
            "SELECT nango.create_integration('auth-custom', 'auth-custom-test', $1, $2)",
            &[&OAUTH_CLIENT_ID, &OAUTH_CLIENT_SECRET],
        )
        .expect("give the integration its OAuth client");
    connection(
        client,
        "custom",
        id,
        json!({"type": "CUSTOM", "private_key": app_private_key(), "user": user}),
        json!({"app_id": "42", "installation_id": "88"}),
    );
}

#[test]
fn a_custom_connection_proxies_with_the_installation_token_and_refreshes_the_users_with_it() {
    let mut client = connect();
    deploy(&mut client);
    custom_connection(
        &mut client,
        "custom-1",
        json!({"access_token": "ghu-first", "refresh_token": "rt-0", "expires_at": "2030-01-01T00:00:00Z"}),
    );
    let before = mock().auth_tokens_issued("app");
    let first = whoami(&mut client, "custom", "custom-1").unwrap();
    // As Nango: the proxy sends the installation token, the script sees the app's credentials (no private
    // key) and the user's token in connection_config.userCredentials, and getToken returns the credentials.
    let token = installation_token_sent(&first, "88");
    assert!(first["credentials"].get("private_key").is_none(), "{first}");
    assert_eq!(first["token"], first["credentials"]);
    assert_eq!(first["user"]["type"], "OAUTH2");
    // The user's token was refreshed with the installation token.
    let user_token = first["user"]["access_token"].as_str().unwrap().to_string();
    assert!(user_token.starts_with("at-"), "{first}");
    let stored = stored_credentials(&mut client, "custom-1");
    assert_eq!(stored["type"], "CUSTOM");
    assert_eq!(stored["app"]["access_token"], token.as_str());
    assert_eq!(stored["user"]["access_token"], user_token.as_str());
    assert!(
        stored["user"]["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("rt-")
    );
    assert!(
        stored["private_key"]
            .as_str()
            .is_some_and(|k| k.contains("PRIVATE KEY"))
    );

    // Reused while valid (other tests fetch installation tokens at the same time: the token, not the
    // mock's count, shows it), renewed (both tokens) once expired.
    let again = whoami(&mut client, "custom", "custom-1").unwrap();
    assert_eq!(again["credentials"]["access_token"], token.as_str());
    assert_eq!(again["user"]["access_token"], user_token.as_str());
    expire_app_token(&mut client, "custom-1");
    let renewed = whoami(&mut client, "custom", "custom-1").unwrap();
    assert!(mock().auth_tokens_issued("app") >= before + 2);
    let new_token = renewed["credentials"]["access_token"].as_str().unwrap();
    assert_ne!(new_token, token);
    assert_eq!(
        renewed["headers"]["authorization"],
        format!("Bearer {new_token}")
    );
    assert_ne!(renewed["user"]["access_token"], user_token.as_str());
    let stored = stored_credentials(&mut client, "custom-1");
    assert_eq!(stored["app"]["access_token"], new_token);
    assert_eq!(
        stored["user"]["access_token"],
        renewed["user"]["access_token"]
    );
}

#[test]
fn a_custom_connection_keeps_a_user_token_that_cannot_be_refreshed() {
    let mut client = connect();
    deploy(&mut client);
    custom_connection(
        &mut client,
        "custom-2",
        json!({"access_token": "ghu-kept", "refresh_token": "refused-refresh-secret"}),
    );
    let seen = whoami(&mut client, "custom", "custom-2").unwrap();
    installation_token_sent(&seen, "88");
    assert_eq!(seen["user"]["access_token"], "ghu-kept");
    assert_eq!(
        stored_credentials(&mut client, "custom-2")["user"]["refresh_token"],
        "refused-refresh-secret"
    );
    let warning: String = client
        .query_one(
            "SELECT level || ': ' || message FROM nango.logs
             WHERE run LIKE '%custom-2' AND message LIKE 'refreshing the user''s%'",
            &[],
        )
        .expect("a warning about the user's token")
        .get(0);
    assert_eq!(
        warning,
        "warn: refreshing the user's OAuth2 token failed, it is kept as it was: the token endpoint answered HTTP 400"
    );
    assert_no_log_contains(&mut client, "refused-refresh-secret");

    // Without a user token, only the installation's.
    custom_connection(&mut client, "custom-3", Value::Null);
    let seen = whoami(&mut client, "custom", "custom-3").unwrap();
    installation_token_sent(&seen, "88");
    assert_eq!(seen["user"], Value::Null);
}

#[test]
fn create_connection_checks_custom_credentials() {
    let mut client = connect();
    deploy(&mut client);
    let refused = |client: &mut Client, credentials: Value| {
        let error = client
            .execute(
                "SELECT nango.create_connection('auth-custom', 'custom-x', $1, '{}')",
                &[&credentials],
            )
            .unwrap_err();
        db_error(error).0
    };
    assert_eq!(
        refused(
            &mut client,
            json!({"type": "CUSTOM", "user": {"access_token": "ghu-secret"}})
        ),
        "CUSTOM credentials need a non-empty \"private_key\" string"
    );
    assert_eq!(
        refused(
            &mut client,
            json!({"type": "CUSTOM", "private_key": "key-secret", "user": {"refresh_token": "rt-secret"}})
        ),
        "CUSTOM credentials need a non-empty \"user.access_token\" string"
    );
    assert_eq!(
        refused(
            &mut client,
            json!({"type": "CUSTOM", "private_key": "key-secret", "user": "ghu-secret"})
        ),
        "CUSTOM credentials' \"user\" must be an object holding the user's OAuth2 token"
    );
}
