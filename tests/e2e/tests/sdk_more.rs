//! The SDK calls beyond proxy, records and metadata, through real runs: `listRecords`, the locks,
//! `getEnvironmentVariables`, `getIntegration`/`getWebhookURL`/`getToken`, `uncontrolledFetch` and the proxy's
//! `decompress`/`responseType`. Its own binary and cluster; it deploys its own integration.

use std::collections::BTreeMap;

use pg_nango_e2e::*;
use serde_json::{Value, json};

const CONFIG: &str = "integrations:
  more:
    provider: demo
    syncs:
      listing:
        runs: every hour
        auto_start: false
        output: Item
        endpoint: GET /more/items
      merge:
        runs: every hour
        auto_start: false
        output: Merged
        endpoint: GET /more/merged
    actions:
      locks:
        endpoint: POST /more/locks
      about:
        endpoint: POST /more/about
      bodies:
        endpoint: POST /more/bodies
      fetch:
        endpoint: POST /more/fetch
      chain:
        endpoint: POST /more/chain
models:
  Merged:
    id: string
    v: number
  Item:
    id: string
    n: number
";

const LISTING: &str = "export default async function fetchData(nango: any): Promise<void> {
  await nango.batchSave(Array.from({ length: 250 }, (_, i) => ({ id: `i${i}`, n: i })), 'Item');
  await nango.batchDelete([{ id: 'i3' }], 'Item');
  let count = 0;
  let deleted = 0;
  let first: any;
  for await (const record of nango.listRecords('Item')) {
    count++;
    if (record._nango_metadata.deleted_at) deleted++;
    if (!first) first = record;
  }
  const resumed: string[] = [];
  for await (const record of nango.listRecords('Item', { cursor: first._nango_metadata.cursor })) {
    resumed.push(record.id);
    if (resumed.length === 2) break;
  }
  let bad = '';
  try {
    for await (const record of nango.listRecords('Item', { cursor: 'x' })) bad = record.id;
  } catch (e: any) {
    bad = e.message;
  }
  await nango.log('listed', { count, deleted, firstId: first.id, firstN: first.n,
                              metaKeys: Object.keys(first._nango_metadata).sort(), resumed, bad });
}
";

const LOCKS: &str = "export default async function runAction(nango: any, input: any) {
  const out: any = {};
  out.first = await nango.tryAcquireLock({ key: input.key, ttlMs: 60000 });
  out.again = await nango.tryAcquireLock({ key: input.key, ttlMs: 60000 });
  if (input.release) {
    out.released = await nango.releaseLock({ key: input.key });
    out.releasedAgain = await nango.releaseLock({ key: input.key });
  }
  out.kept = await nango.tryAcquireLock({ key: `${input.key}-kept`, ttlMs: 60000 });
  try { await nango.tryAcquireLock({ key: 'k', ttlMs: 0 }); } catch (e: any) { out.badTtl = e.message; }
  return out;
}
";

const ABOUT: &str = "export default async function runAction(nango: any) {
  return {
    integration: await nango.getIntegration({ include: ['webhook', 'credentials'] }),
    plain: Object.keys(await nango.getIntegration()).sort(),
    webhook: await nango.getWebhookURL(),
    token: await nango.getToken(),
    env: await nango.getEnvironmentVariables(),
  };
}
";

const BODIES: &str = "export default async function runAction(nango: any) {
  const gzip = await nango.get({ endpoint: '/encoded/gzip' });
  const deflate = await nango.get({ endpoint: '/encoded/deflate', decompress: true });
  const text = await nango.get({ endpoint: '/plain', responseType: 'text' });
  const bytes = await nango.get({ endpoint: '/bytes', responseType: 'arraybuffer' });
  let streamed = 0;
  for await (const chunk of (await nango.get({ endpoint: '/bytes', responseType: 'stream' })).data) streamed += chunk.length;
  return { gzip: gzip.data, deflate: deflate.data.encoded, text: text.data,
           bytes: [bytes.data.length, bytes.data[0], bytes.data[255]], streamed };
}
";

const FETCH: &str = "export default async function runAction(nango: any, input: any) {
  const response = await nango.uncontrolledFetch({ url: input.url, headers: { 'x-from': 'script' } });
  const body = await response.json();
  return { status: response.status, ok: response.ok, type: response.headers.get('content-type'),
           from: body.headers['x-from'], authorization: body.headers.authorization ?? null };
}
";

const CHAIN: &str = "export default async function runAction(nango: any, input: any) {
  return await nango.triggerAction('more', 'more-conn', input.action, input.input);
}
";

const MERGE: &str = "export default async function fetchData(nango: any): Promise<void> {
  const metadata = await nango.getMetadata();
  await nango.setMergingStrategy({ strategy: 'ignore_if_modified_after' }, 'Merged');
  await nango.setMergingStrategy({ strategy: 'override' }, 'Merged');
  if (metadata.phase === 'seed') {
    await nango.batchSave([{ id: 'a', v: 1 }, { id: 'b', v: 1 }], 'Merged');
    return;
  }
  await nango.batchSave([{ id: 'a', v: 2 }], 'Merged');
  await nango.log('waiting');
  await nango.get({ endpoint: '/slow', params: { ms: 2000 } });
  await nango.batchSave([{ id: 'a', v: 3 }, { id: 'b', v: 3 }], 'Merged');
  await nango.batchUpdate([{ id: 'b', v: 4 }], 'Merged');
  let late = '';
  try { await nango.setMergingStrategy({ strategy: 'override' }, 'Merged'); } catch (e: any) { late = e.message; }
  await nango.log(late);
}
";

fn deploy_more(client: &mut Client) {
    let files: BTreeMap<&str, &str> = [
        ("more/syncs/listing.ts", LISTING),
        ("more/actions/locks.ts", LOCKS),
        ("more/actions/about.ts", ABOUT),
        ("more/actions/bodies.ts", BODIES),
        ("more/actions/fetch.ts", FETCH),
        ("more/actions/chain.ts", CHAIN),
        ("more/syncs/merge.ts", MERGE),
    ]
    .into_iter()
    .collect();
    let files = serde_json::to_value(files).unwrap();
    client
        .query_one(
            "SELECT nango.deploy($1::text, $2::jsonb, allow_destructive => true)",
            &[&CONFIG, &files],
        )
        .expect("deploy the integration");
}

fn setup() -> Client {
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let client = connect();
    READY.get_or_init(|| {
        let mut client = connect();
        deploy_more(&mut client);
        create_connection(&mut client, "more", "more-conn");
    });
    client
}

fn action(client: &mut Client, name: &str, input: Value) -> Result<Value, postgres::Error> {
    client
        .query_one(
            "SELECT nango.trigger_action('more', 'more-conn', $1, $2::jsonb)",
            &[&name, &input],
        )
        .map(|row| row.get(0))
}

#[test]
fn list_records_pages_through_the_stored_records_with_their_metadata() {
    let mut client = setup();
    let (job, status) = run_sync(&mut client, "more", "listing", "more-conn");
    let logs = job_logs(&mut client, job);
    assert_eq!(status, "SUCCESS", "{logs:?}");
    let (_, _, payload) = logs.iter().find(|(_, m, _)| m == "listed").unwrap();
    assert_eq!(
        payload.clone().unwrap(),
        json!({
            "count": 250, "deleted": 1, "firstId": "i0", "firstN": 0,
            "metaKeys": ["cursor", "deleted_at", "first_seen_at", "last_action", "last_modified_at"],
            "resumed": ["i1", "i2"],
            "bad": "nango.listRecords: invalid cursor \"x\"",
        })
    );
}

#[test]
fn locks_are_held_per_connection_until_released_expired_or_the_run_ends() {
    let mut client = setup();
    let output = action(&mut client, "locks", json!({"key": "a", "release": true})).unwrap();
    assert_eq!(
        output,
        json!({"first": true, "again": true, "released": true, "releasedAgain": false, "kept": true,
               "badTtl": "nango.tryAcquireLock: ttlMs must be a number of milliseconds greater than 0 (at most 31536000000)"})
    );
    // The run's locks went with its end.
    let held: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.locks WHERE key IN ('a', 'a-kept', 'b', 'b-kept')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(held, 0);

    // A lock another run holds is refused until it expires.
    client
        .execute(
            "INSERT INTO nango.locks (connection, key, owner, expires_at)
             SELECT id, 'b', 'job 0', now() + interval '1 hour' FROM nango.connections WHERE connection_id = 'more-conn'",
            &[],
        )
        .unwrap();
    let output = action(&mut client, "locks", json!({"key": "b"})).unwrap();
    assert_eq!(output["first"], false);
    assert_eq!(output["again"], false);
    let owner: String = client
        .query_one("SELECT owner FROM nango.locks WHERE key = 'b'", &[])
        .unwrap()
        .get(0);
    assert_eq!(owner, "job 0");
    client
        .execute(
            "UPDATE nango.locks SET expires_at = now() - interval '1 second' WHERE key = 'b'",
            &[],
        )
        .unwrap();
    let output = action(&mut client, "locks", json!({"key": "b"})).unwrap();
    assert_eq!(
        (&output["first"], &output["again"]),
        (&json!(true), &json!(true))
    );
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.locks WHERE key IN ('a', 'a-kept', 'b', 'b-kept')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[test]
fn integration_token_and_environment_variables_are_what_scripts_see() {
    let mut client = setup();
    client
        .batch_execute(
            "SELECT nango.create_integration('more', 'demo', 'the-client-id', 'the-client-secret');
             SELECT nango.set_environment_variable('REGION', 'eu');
             SELECT nango.set_environment_variable('API_BASE', 'https://example.com');
             SELECT nango.set_environment_variable('GONE', 'x');
             SELECT nango.set_environment_variable('GONE', NULL);",
        )
        .unwrap();
    let output = action(&mut client, "about", Value::Null).unwrap();
    assert!(
        !output.to_string().contains("the-client-secret"),
        "{output}"
    );
    let integration = &output["integration"];
    assert_eq!(integration["unique_key"], "more");
    assert_eq!(integration["provider"], "demo");
    assert_eq!(
        integration["display_name"],
        "Demo help desk (bundled mock API)"
    );
    assert_eq!(integration["webhook_url"], Value::Null);
    assert_eq!(integration["credentials"], Value::Null);
    assert_eq!(
        output["plain"],
        json!([
            "created_at",
            "display_name",
            "forward_webhooks",
            "logo",
            "provider",
            "unique_key",
            "updated_at"
        ])
    );
    assert_eq!(output["webhook"], Value::Null);
    assert_eq!(
        output["token"],
        json!({"type": "API_KEY", "apiKey": API_KEY})
    );
    assert_eq!(
        output["env"],
        json!([{"name": "API_BASE", "value": "https://example.com"}, {"name": "REGION", "value": "eu"}])
    );
    let names: Vec<String> = client
        .query("SELECT nango.environment_variable_names()", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(names, ["API_BASE", "REGION"]);

    let error = client
        .batch_execute("SELECT nango.set_environment_variable('no spaces', 'x')")
        .unwrap_err();
    assert_eq!(
        db_error(error).0,
        "invalid environment variable name \"no spaces\""
    );

    // A role granted the schema, but nothing else, reads no values and sets none.
    client
        .batch_execute(
            "DROP ROLE IF EXISTS more_reader; CREATE ROLE more_reader LOGIN;
             GRANT USAGE ON SCHEMA nango TO more_reader;",
        )
        .unwrap();
    let mut reader = connect_as("more_reader");
    for sql in [
        "SELECT * FROM nango.environment_variables",
        "SELECT nango.set_environment_variable('REGION', 'us')",
        "SELECT * FROM nango.locks",
    ] {
        let error = reader.batch_execute(sql).unwrap_err();
        assert!(db_error(error).0.starts_with("permission denied"), "{sql}");
    }
}

#[test]
fn proxy_bodies_come_decompressed_as_text_or_as_bytes() {
    let mut client = setup();
    let output = action(&mut client, "bodies", Value::Null).unwrap();
    assert_eq!(
        output,
        json!({
            "gzip": {"encoded": "gzip", "items": [1, 2, 3]},
            "deflate": "deflate",
            "text": pg_nango_mock_api::PLAIN_TEXT,
            "bytes": [256, 0, 255],
            "streamed": 256,
        })
    );
}

#[test]
fn uncontrolled_fetch_sends_no_credentials_and_keeps_the_egress_rules() {
    let mut client = setup();
    let url = format!("{}/echo", mock().url());
    let output = action(&mut client, "fetch", json!({ "url": url })).unwrap();
    assert_eq!(
        output,
        json!({"status": 200, "ok": true, "type": "application/json", "from": "script", "authorization": null})
    );

    // 127.0.0.2 is loopback and not in nango.allowed_hosts.
    let url = format!("http://127.0.0.2:{}/echo", mock().addr.port());
    let (message, detail) =
        db_error(action(&mut client, "fetch", json!({ "url": url })).unwrap_err());
    assert!(
        message.starts_with(
            "request to 127.0.0.2 refused: it resolves to a private address (loopback)"
        ),
        "{message}"
    );
    let detail: Value = serde_json::from_str(&detail.unwrap()).unwrap();
    assert_eq!(detail["code"], "url_not_allowed");
}

#[test]
fn trigger_action_returns_the_output_of_another_action_of_the_integration() {
    let mut client = setup();
    let output = action(
        &mut client,
        "chain",
        json!({"action": "locks", "input": {"key": "chained", "release": true}}),
    )
    .unwrap();
    assert_eq!(output["first"], true);
    assert_eq!(output["released"], true);
    let (message, _) =
        db_error(action(&mut client, "chain", json!({"action": "nope", "input": {}})).unwrap_err());
    assert!(
        message.contains("nango.triggerAction: this integration has no action named 'nope'"),
        "{message}"
    );
}

#[test]
fn ignore_if_modified_after_leaves_records_changed_by_others_during_the_run() {
    let mut client = setup();
    set_metadata(&mut client, "more", "more-conn", &json!({"phase": "seed"}));
    let (_, status) = run_sync(&mut client, "more", "merge", "more-conn");
    assert_eq!(status, "SUCCESS");
    set_metadata(&mut client, "more", "more-conn", &json!({"phase": "go"}));
    let job: i64 = client
        .query_one(
            "SELECT nango.trigger_sync('more', 'merge', 'more-conn')",
            &[],
        )
        .unwrap()
        .get(0);
    // While the run waits on the API, someone else changes record b.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !job_logs(&mut client, job)
        .iter()
        .any(|(_, m, _)| m == "waiting")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never got to its wait"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    client
        .execute(
            "UPDATE nango.stored_records SET data = '{\"id\": \"b\", \"v\": 99}', data_hash = md5('b99')::uuid,
                    cursor = nextval('nango.record_cursor'), last_job = NULL, last_modified_at = now()
             WHERE model = 'Merged' AND external_id = 'b'",
            &[],
        )
        .unwrap();
    let status: String = client
        .query_one("SELECT nango.wait_for_job($1, '60 seconds')", &[&job])
        .unwrap()
        .get(0);
    let logs = job_logs(&mut client, job);
    assert_eq!(status, "SUCCESS", "{logs:?}");
    let values: Vec<(String, Value)> = pairs(
        &mut client,
        "SELECT id, data -> 'v' FROM nango.records('Merged', connection_id => 'more-conn') ORDER BY id",
        &[],
    );
    assert_eq!(
        values,
        [("a".to_string(), json!(3)), ("b".to_string(), json!(99))]
    );
    let messages: Vec<&str> = logs.iter().map(|(_, m, _)| m.as_str()).collect();
    for expected in [
        "Merging strategy set to 'ignore_if_modified_after' for model Merged.",
        "Merging strategy for model Merged is already set. Skipping",
        "batchSave Merged: 1 records were changed after the merging strategy was set and were not overwritten: b",
        "batchUpdate Merged: 1 records were changed after the merging strategy was set and were not overwritten: b",
        "nango.setMergingStrategy must be called before any proxy call",
    ] {
        assert!(messages.contains(&expected), "{expected}: {messages:?}");
    }
}
