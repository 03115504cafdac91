//! On-event scripts and webhook handlers of a zero-YAML project: `validate-connection` refuses a connection
//! with its script's message and stores nothing, `post-connection-creation` runs after the connection is
//! committed (its failure leaves the connection and is notified), `pre-connection-deletion` runs before the
//! deletion and is waited for, and `nango.handle_webhook` runs `onWebhook` of the subscribed syncs, whose
//! records are saved and notified. Its own binary: it deploys its own project.

use std::sync::OnceLock;

use pg_nango_e2e::*;
use serde_json::{Value, json};

const INTEGRATION: &str = "events";
const OAUTH_INTEGRATION: &str = "events-oauth";

/// `exec` of the validate-connection script: the API must accept the key (the mock API echoes the
/// request's headers), and the metadata may ask for a refusal; a valid connection is marked in its
/// metadata.
const CHECK_KEY: &str = "async (nango) => {
        const echoed = await nango.get({ endpoint: '/echo' });
        if (echoed.data.headers.authorization !== 'Bearer test-key') {
            throw new Error('the demo API refused the API key');
        }
        const metadata = await nango.getMetadata();
        if (metadata.refuse) {
            throw new Error(`refused: ${metadata.refuse}`);
        }
        await nango.updateMetadata({ validated: true });
    }";

/// `exec` of the post-connection-creation script.
const WELCOME: &str = "async (nango) => {
        const metadata = await nango.getMetadata();
        if (metadata.failWelcome) {
            throw new Error(`welcome failed for ${nango.connectionId}`);
        }
        await nango.log(`welcome ${nango.connectionId}`);
        await nango.updateMetadata({ welcomed: true });
    }";

/// `exec` of the pre-connection-deletion script.
const GOODBYE: &str = "async (nango) => {
        const metadata = await nango.getMetadata();
        await nango.log(`goodbye ${nango.connectionId}, welcomed: ${metadata.welcomed === true}`);
        if (metadata.failGoodbye) {
            throw new Error('goodbye failed');
        }
    }";

/// The on-event scripts: name, event, `exec`.
const ON_EVENTS: &[(&str, &str, &str)] = &[
    ("check-key", "validate-connection", CHECK_KEY),
    ("welcome", "post-connection-creation", WELCOME),
    ("goodbye", "pre-connection-deletion", GOODBYE),
];

/// The webhook syncs: name, model, subscriptions, `onWebhook`.
const HOOKS: &[(&str, &str, &str, &str)] = &[
    (
        "ticket-hooks",
        "HookTicket",
        "['ticket.created', 'ticket.updated']",
        "async (nango, payload) => {
            await nango.batchSave([{ id: String(payload.ticket.id), title: payload.ticket.title }], 'HookTicket');
        }",
    ),
    (
        "user-hooks",
        "HookUser",
        "['user.created']",
        "async (nango, payload) => {
            if (payload.fail) throw new Error('bad user payload');
            await nango.batchSave([{ id: String(payload.user.id), title: payload.user.name }], 'HookUser');
        }",
    ),
];

/// Deploys the project once.
fn setup() -> Client {
    static DEPLOYED: OnceLock<()> = OnceLock::new();
    let mut client = connect();
    DEPLOYED.get_or_init(|| deploy(&mut client));
    client
}

fn deploy(client: &mut Client) {
    client
        .execute(
            "SELECT nango.create_integration($1, 'demo')",
            &[&INTEGRATION],
        )
        .expect("create_integration");
    let mut files = serde_json::Map::new();
    let mut index = String::new();
    for (name, event, exec) in ON_EVENTS {
        let path = format!("{INTEGRATION}/on-events/{name}.ts");
        index.push_str(&format!("import './{INTEGRATION}/on-events/{name}.js';\n"));
        files.insert(
            path,
            json!(format!(
                "import {{ createOnEvent }} from 'nango';\n\nexport default createOnEvent({{\n    description: '{name}',\n    event: '{event}',\n    exec: {exec}\n}});\n"
            )),
        );
    }
    for (name, model, subscriptions, on_webhook) in HOOKS {
        let path = format!("{INTEGRATION}/syncs/{name}.ts");
        index.push_str(&format!("import './{INTEGRATION}/syncs/{name}.js';\n"));
        files.insert(
            path,
            json!(format!(
                "import {{ createSync }} from 'nango';\nimport {{ z }} from 'zod';\n\nexport default createSync({{\n    description: '{name}',\n    frequency: 'every day',\n    autoStart: false,\n    models: {{ {model}: z.object({{ id: z.string(), title: z.string() }}) }},\n    webhookSubscriptions: {subscriptions},\n    exec: async () => {{}},\n    onWebhook: {on_webhook}\n}});\n"
            )),
        );
    }
    // A second integration, on OAuth2: its validate-connection script makes a request, which refreshes an
    // expiring token first.
    client
        .execute(
            "SELECT nango.create_integration($1, 'e2e-echo', $2, $3)",
            &[
                &OAUTH_INTEGRATION,
                &pg_nango_mock_api::OAUTH_CLIENT_ID,
                &pg_nango_mock_api::OAUTH_CLIENT_SECRET,
            ],
        )
        .expect("create_integration");
    index.push_str(&format!(
        "import './{OAUTH_INTEGRATION}/on-events/call-api.js';\n"
    ));
    files.insert(
        format!("{OAUTH_INTEGRATION}/on-events/call-api.ts"),
        json!("import { createOnEvent } from 'nango';\n\nexport default createOnEvent({\n    description: 'calls the API',\n    event: 'validate-connection',\n    exec: async (nango) => {\n        await nango.get({ endpoint: '/echo' });\n    }\n});\n"),
    );
    files.insert("index.ts".into(), json!(index));
    client
        .query_one(
            "SELECT nango.deploy(NULL, $1::jsonb, allow_destructive => true)",
            &[&Value::Object(files)],
        )
        .unwrap_or_else(|e| panic!("deploy: {:?}", e.as_db_error()));
}

/// Creates a connection to the mock API with this API key and metadata.
fn create(
    client: &mut Client,
    connection_id: &str,
    api_key: &str,
    metadata: Value,
) -> Result<(), postgres::Error> {
    client
        .execute(
            "SELECT nango.create_connection($1, $2, $3, $4, $5)",
            &[
                &INTEGRATION,
                &connection_id,
                &json!({"type": "API_KEY", "apiKey": api_key}),
                &json!({"base_url": mock().url()}),
                &metadata,
            ],
        )
        .map(|_| ())
}

/// The on-event jobs of a connection as (script, status), oldest first.
fn on_event_jobs(client: &mut Client, connection_id: &str) -> Vec<(String, String)> {
    pairs(
        client,
        "SELECT sync_name, status FROM nango.jobs WHERE type = 'ON_EVENT' AND integration = $1 AND connection_id = $2 ORDER BY id",
        &[&INTEGRATION, &connection_id],
    )
}

/// The id of the connection's last job of `script`.
fn last_job(client: &mut Client, connection_id: &str, script: &str) -> i64 {
    client
        .query_one(
            "SELECT max(id) FROM nango.jobs WHERE integration = $1 AND connection_id = $2 AND sync_name = $3",
            &[&INTEGRATION, &connection_id, &script],
        )
        .expect("job")
        .get::<_, Option<i64>>(0)
        .unwrap_or_else(|| panic!("no job of {script} for {connection_id}"))
}

fn wait(client: &mut Client, job: i64) -> String {
    client
        .query_one("SELECT nango.wait_for_job($1, '60 seconds')", &[&job])
        .expect("wait_for_job")
        .get(0)
}

fn metadata(client: &mut Client, connection_id: &str) -> Option<Value> {
    client
        .query_opt(
            "SELECT metadata FROM nango.connections WHERE provider_config_key = $1 AND connection_id = $2",
            &[&INTEGRATION, &connection_id],
        )
        .expect("connection")
        .map(|row| row.get(0))
}

fn messages(client: &mut Client, job: i64) -> Vec<String> {
    job_logs(client, job)
        .into_iter()
        .map(|(_, m, _)| m)
        .collect()
}

#[test]
fn a_new_connection_is_validated_then_welcomed() {
    let mut client = setup();
    let mut listener = connect();
    listener.batch_execute("LISTEN nango").unwrap();
    create(&mut client, "ev-ok", API_KEY, json!({"plan": "pro"})).expect("create_connection");

    // validate-connection ran before the connection was stored, and what it set was stored with it.
    let validated = last_job(&mut client, "ev-ok", "check-key");
    assert_eq!(job_outcome(&mut client, validated).0, "SUCCESS");
    // post-connection-creation runs once the connection is committed, in its own job.
    let welcome = last_job(&mut client, "ev-ok", "welcome");
    assert_eq!(
        wait(&mut client, welcome),
        "SUCCESS",
        "{:?}",
        job_outcome(&mut client, welcome)
    );
    assert_eq!(messages(&mut client, welcome), vec!["welcome ev-ok"]);
    assert_eq!(
        metadata(&mut client, "ev-ok"),
        Some(json!({"plan": "pro", "validated": true, "welcomed": true}))
    );
    assert_eq!(
        on_event_jobs(&mut client, "ev-ok"),
        vec![
            ("check-key".into(), "SUCCESS".into()),
            ("welcome".into(), "SUCCESS".into())
        ]
    );
    // A job row of an on-event script names it, and has no sync.
    let row = client
        .query_one(
            "SELECT j.sync IS NULL, oc.event FROM nango.jobs j JOIN nango.on_event_configs oc ON oc.id = j.on_event WHERE j.id = $1",
            &[&welcome],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, String>(1), "post-connection-creation");
    // Success is not notified.
    assert!(notifications_for(&mut listener, welcome, 0).is_empty());
}

#[test]
fn a_refused_connection_fails_with_the_scripts_message_and_stores_nothing() {
    let mut client = setup();
    let refused = create(&mut client, "ev-bad-key", "wrong-key", json!({})).unwrap_err();
    let (message, detail) = db_error(refused);
    assert!(
        message.contains("the demo API refused the API key"),
        "{message}"
    );
    assert!(detail.unwrap_or_default().contains("check-key"));
    let refused = create(
        &mut client,
        "ev-refused",
        API_KEY,
        json!({"refuse": "no pro plan"}),
    )
    .unwrap_err();
    assert!(db_error(refused).0.contains("refused: no pro plan"));

    for connection_id in ["ev-bad-key", "ev-refused"] {
        assert_eq!(
            metadata(&mut client, connection_id),
            None,
            "{connection_id} was stored"
        );
        // The refusal shows as the validate job's error; no other script ran.
        assert_eq!(
            on_event_jobs(&mut client, connection_id),
            vec![("check-key".into(), "ERROR".into())]
        );
    }
    let job = last_job(&mut client, "ev-refused", "check-key");
    let error = job_outcome(&mut client, job).2.expect("error");
    assert!(
        error["description"]
            .as_str()
            .unwrap()
            .contains("refused: no pro plan"),
        "{error}"
    );
    // The refused credentials never reach a job row or log.
    let leaked: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.jobs j LEFT JOIN nango.logs l ON l.job = j.id
             WHERE j.connection_id = 'ev-bad-key' AND (j::text LIKE '%wrong-key%' OR l::text LIKE '%wrong-key%')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0);
}

#[test]
fn a_failed_welcome_leaves_the_connection_and_is_notified() {
    let mut client = setup();
    let mut listener = connect();
    listener.batch_execute("LISTEN nango").unwrap();
    create(
        &mut client,
        "ev-unwelcome",
        API_KEY,
        json!({"failWelcome": true}),
    )
    .expect("create_connection");
    let welcome = last_job(&mut client, "ev-unwelcome", "welcome");
    assert_eq!(wait(&mut client, welcome), "ERROR");
    let error = job_outcome(&mut client, welcome).2.expect("error");
    assert!(
        error["description"]
            .as_str()
            .unwrap()
            .contains("welcome failed for ev-unwelcome"),
        "{error}"
    );
    assert_eq!(
        metadata(&mut client, "ev-unwelcome"),
        Some(json!({"failWelcome": true, "validated": true}))
    );
    let notified = notifications_for(&mut listener, welcome, 1);
    assert_eq!(notified.len(), 1, "{notified:?}");
    let body = &notified[0];
    assert_eq!(body["type"], "on-event");
    assert_eq!(body["success"], false);
    assert_eq!(body["name"], "welcome");
    assert_eq!(body["event"], "post-connection-creation");
    assert_eq!(body["connectionId"], "ev-unwelcome");
    assert!(
        body["error"]["description"]
            .as_str()
            .unwrap()
            .contains("welcome failed")
    );
}

#[test]
fn a_deleted_connection_says_goodbye_first() {
    let mut client = setup();
    create(&mut client, "ev-leaving", API_KEY, json!({})).expect("create_connection");
    let welcome = last_job(&mut client, "ev-leaving", "welcome");
    assert_eq!(wait(&mut client, welcome), "SUCCESS");
    client
        .execute(
            "SELECT nango.delete_connection($1, $2)",
            &[&INTEGRATION, &"ev-leaving"],
        )
        .expect("delete_connection");
    // The script ran before the connection was deleted (it read its metadata), and was waited for.
    let goodbye = last_job(&mut client, "ev-leaving", "goodbye");
    assert_eq!(job_outcome(&mut client, goodbye).0, "SUCCESS");
    assert_eq!(
        messages(&mut client, goodbye),
        vec!["goodbye ev-leaving, welcomed: true"]
    );
    assert_eq!(metadata(&mut client, "ev-leaving"), None);

    // A failing one is logged and the connection is deleted all the same, as on Nango.
    create(
        &mut client,
        "ev-stubborn",
        API_KEY,
        json!({"failGoodbye": true}),
    )
    .expect("create_connection");
    client
        .execute(
            "SELECT nango.delete_connection($1, $2)",
            &[&INTEGRATION, &"ev-stubborn"],
        )
        .expect("delete_connection");
    let goodbye = last_job(&mut client, "ev-stubborn", "goodbye");
    let (status, _, error) = job_outcome(&mut client, goodbye);
    assert_eq!(status, "ERROR");
    assert!(
        error.unwrap()["description"]
            .as_str()
            .unwrap()
            .contains("goodbye failed")
    );
    assert_eq!(metadata(&mut client, "ev-stubborn"), None);
}

/// Sends a webhook and waits for its runs; returns their job ids.
fn webhook(
    client: &mut Client,
    connection_id: &str,
    payload: Value,
    subscription: Option<&str>,
) -> Vec<i64> {
    let jobs: Vec<i64> = client
        .query(
            "SELECT nango.handle_webhook($1, $2, $3, $4)",
            &[&INTEGRATION, &connection_id, &payload, &subscription],
        )
        .expect("handle_webhook")
        .iter()
        .map(|row| row.get(0))
        .collect();
    for job in &jobs {
        wait(client, *job);
    }
    jobs
}

#[test]
fn webhooks_run_the_subscribed_syncs() {
    let mut client = setup();
    let mut listener = connect();
    listener.batch_execute("LISTEN nango").unwrap();
    create(&mut client, "ev-hooks", API_KEY, json!({})).expect("create_connection");

    let ticket = json!({"ticket": {"id": 7, "title": "printer on fire"}});
    let jobs = webhook(&mut client, "ev-hooks", ticket, Some("ticket.created"));
    assert_eq!(jobs.len(), 1);
    let (status, result, _) = job_outcome(&mut client, jobs[0]);
    assert_eq!(status, "SUCCESS");
    assert_eq!(result["HookTicket"]["added"], 1);
    assert_eq!(record_ids(&mut client, "HookTicket", "ev-hooks"), vec!["7"]);
    let row = client
        .query_one(
            "SELECT type, sync_name FROM nango.jobs WHERE id = $1",
            &[&jobs[0]],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("WEBHOOK".into(), "ticket-hooks".into())
    );
    let notified = notifications_for(&mut listener, jobs[0], 1);
    assert_eq!(notified.len(), 1, "{notified:?}");
    assert_eq!(notified[0]["syncName"], "ticket-hooks");
    assert_eq!(notified[0]["model"], "HookTicket");
    assert_eq!(notified[0]["syncType"], "WEBHOOK");
    assert_eq!(notified[0]["responseResults"]["added"], 1);
    assert_eq!(notified[0]["success"], true);

    // Only subscribed syncs run: none for an unknown subscription, the user sync for its own.
    assert!(webhook(&mut client, "ev-hooks", json!({}), Some("invoice.paid")).is_empty());
    let user = json!({"user": {"id": 1, "name": "Ada"}});
    let jobs = webhook(&mut client, "ev-hooks", user, Some("user.created"));
    assert_eq!(jobs.len(), 1);
    assert_eq!(record_ids(&mut client, "HookUser", "ev-hooks"), vec!["1"]);
    assert_eq!(record_ids(&mut client, "HookTicket", "ev-hooks"), vec!["7"]);

    // Without a subscription, every subscribed sync gets the payload.
    let both =
        json!({"ticket": {"id": 8, "title": "paper jam"}, "user": {"id": 2, "name": "Grace"}});
    let jobs = webhook(&mut client, "ev-hooks", both, None);
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        record_ids(&mut client, "HookTicket", "ev-hooks"),
        vec!["7", "8"]
    );
    assert_eq!(
        record_ids(&mut client, "HookUser", "ev-hooks"),
        vec!["1", "2"]
    );

    // A failing handler ends its job ERROR with a failure notification; the sync's status is its own.
    let jobs = webhook(
        &mut client,
        "ev-hooks",
        json!({"fail": true}),
        Some("user.created"),
    );
    let (status, _, error) = job_outcome(&mut client, jobs[0]);
    assert_eq!(status, "ERROR");
    assert!(
        error.unwrap()["description"]
            .as_str()
            .unwrap()
            .contains("bad user payload")
    );
    let notified = notifications_for(&mut listener, jobs[0], 1);
    assert_eq!(notified[0]["success"], false);
    assert_eq!(notified[0]["syncType"], "WEBHOOK");
    let row = client
        .query_one(
            "SELECT status, last_job_id FROM nango.sync_status WHERE integration = $1 AND sync = 'user-hooks' AND connection_id = 'ev-hooks'",
            &[&INTEGRATION],
        )
        .unwrap();
    let (status, last_job): (Option<String>, Option<i64>) = (row.get(0), row.get(1));
    assert_eq!(
        (status.as_deref(), last_job),
        (Some("PAUSED"), None),
        "a webhook run is not the sync's run"
    );
}

#[test]
fn handle_webhook_needs_a_connection_and_its_grant() {
    let mut client = setup();
    let missing = client
        .query(
            "SELECT nango.handle_webhook($1, 'ev-nobody', '{}')",
            &[&INTEGRATION],
        )
        .unwrap_err();
    assert!(db_error(missing).0.contains("does not exist"));
    client
        .batch_execute("DROP ROLE IF EXISTS ev_app; CREATE ROLE ev_app LOGIN; GRANT USAGE ON SCHEMA nango TO ev_app")
        .unwrap();
    let mut app = connect_as("ev_app");
    let denied = app
        .query(
            "SELECT nango.handle_webhook($1, 'ev-hooks', '{}')",
            &[&INTEGRATION],
        )
        .unwrap_err();
    assert!(db_error(denied).0.contains("permission denied"));
    client
        .batch_execute(
            "GRANT EXECUTE ON FUNCTION nango.handle_webhook(text, text, jsonb, text) TO ev_app",
        )
        .unwrap();
    create(&mut client, "ev-granted", API_KEY, json!({})).expect("create_connection");
    let jobs = app
        .query(
            "SELECT nango.handle_webhook($1, 'ev-granted', '{}', 'nothing.here')",
            &[&INTEGRATION],
        )
        .expect("handle_webhook with the grant");
    assert!(jobs.is_empty());
}

#[test]
fn a_token_refreshed_by_validation_is_the_one_stored() {
    let mut client = setup();
    let expires_soon = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let credentials = json!({"type": "OAUTH2", "access_token": "at-0", "refresh_token": "rt-0", "expires_at": expires_soon});
    client
        .execute(
            "SELECT nango.create_connection($1, 'ev-oauth', $2, $3)",
            &[
                &OAUTH_INTEGRATION,
                &credentials,
                &json!({"base_url": mock().url(), "tenant": "acme"}),
            ],
        )
        .expect("create_connection");
    let job: i64 = client
        .query_one(
            "SELECT max(id) FROM nango.jobs WHERE integration = $1 AND connection_id = 'ev-oauth' AND sync_name = 'call-api'",
            &[&OAUTH_INTEGRATION],
        )
        .unwrap()
        .get(0);
    assert_eq!(job_outcome(&mut client, job).0, "SUCCESS");
    // The refresh rotated the refresh token: the connection keeps the new pair, not the one it was given.
    let stored: Value = client
        .query_one(
            "SELECT cr.credentials FROM nango.credentials cr JOIN nango.connections c ON c.id = cr.connection
             WHERE c.provider_config_key = $1 AND c.connection_id = 'ev-oauth'",
            &[&OAUTH_INTEGRATION],
        )
        .unwrap()
        .get(0);
    let access = stored["access_token"].as_str().unwrap();
    assert_ne!(access, "at-0", "{stored}");
    assert_eq!(
        stored["refresh_token"].as_str().unwrap(),
        access.replace("at-", "rt-")
    );
}
