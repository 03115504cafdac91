//! Backups: `pg_dump` of a database with pg_nango, restored with `pg_restore` into another database, keeps
//! every integration, custom provider, connection with its credentials and metadata, deployment, schedule,
//! checkpoint, job, log and record with its `_nango_metadata`, and the sequences behind them.

use std::process::Command;

use pg_nango_e2e::*;
use serde_json::{Value, json};

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// What must survive, one query per kind of state, each returning one jsonb value.
const STATE: &[(&str, &str)] = &[
    (
        "custom providers",
        "SELECT jsonb_agg(to_jsonb(p) - 'updated_at' ORDER BY name) FROM nango.providers p WHERE custom",
    ),
    (
        "bundled providers",
        "SELECT jsonb_build_object('count', count(*), 'github', bool_or(name = 'github')) FROM nango.providers WHERE NOT custom",
    ),
    (
        "integrations",
        "SELECT jsonb_agg(to_jsonb(i) ORDER BY unique_key) FROM nango.integrations i",
    ),
    (
        "client secrets",
        "SELECT jsonb_agg(to_jsonb(s) ORDER BY unique_key) FROM nango.integration_secrets s",
    ),
    (
        "connections",
        "SELECT jsonb_agg(to_jsonb(c) ORDER BY id) FROM nango.connections c",
    ),
    (
        "credentials",
        "SELECT jsonb_agg(to_jsonb(c) ORDER BY connection) FROM nango.credentials c",
    ),
    (
        "deployments",
        "SELECT jsonb_agg(to_jsonb(d) ORDER BY id) FROM nango.deployments d",
    ),
    (
        "files",
        "SELECT jsonb_agg(jsonb_build_object('path', path, 'md5', md5(js)) ORDER BY path) FROM nango.files",
    ),
    (
        "models",
        "SELECT jsonb_agg(to_jsonb(m) ORDER BY name) FROM nango.models m",
    ),
    (
        "syncs",
        "SELECT jsonb_agg(to_jsonb(s) ORDER BY id) FROM nango.syncs s",
    ),
    (
        "sync configs",
        "SELECT jsonb_agg(to_jsonb(s) ORDER BY id) FROM nango.sync_configs s",
    ),
    (
        "action configs",
        "SELECT jsonb_agg(to_jsonb(a) ORDER BY id) FROM nango.action_configs a",
    ),
    (
        "checkpoints",
        "SELECT jsonb_agg(to_jsonb(c) ORDER BY sync) FROM nango.checkpoints c",
    ),
    (
        "deletion windows",
        "SELECT jsonb_build_object(
             'windows', (SELECT jsonb_agg(to_jsonb(w) ORDER BY sync, model) FROM nango.delete_windows w),
             'seen', (SELECT jsonb_agg(to_jsonb(r) ORDER BY sync, model, external_id) FROM nango.seen_records r))",
    ),
    (
        "jobs",
        "SELECT jsonb_agg(to_jsonb(j) - 'pid' ORDER BY id) FROM nango.jobs j",
    ),
    (
        "logs",
        "SELECT jsonb_agg(to_jsonb(l) ORDER BY id) FROM nango.logs l",
    ),
    (
        "records",
        "SELECT jsonb_agg(jsonb_build_object('id', id, 'data', data, 'meta', _nango_metadata) ORDER BY cursor::bigint)
         FROM nango.records('Item')",
    ),
    (
        "typed view",
        "SELECT jsonb_agg(to_jsonb(v) ORDER BY v.id) FROM nango_records.item v",
    ),
    (
        "sequences",
        "SELECT jsonb_object_agg(sequencename, last_value) FROM pg_sequences WHERE schemaname = 'nango'",
    ),
];

fn state(client: &mut Client) -> Vec<(String, Value)> {
    STATE
        .iter()
        .map(|(what, sql)| {
            let value: Option<Value> = client
                .query_one(*sql, &[])
                .unwrap_or_else(|e| panic!("{what}: {e}"))
                .get(0);
            (what.to_string(), value.unwrap_or(Value::Null))
        })
        .collect()
}

fn run(command: &mut Command) {
    let output = command.output().expect("run a PostgreSQL client program");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn pg_dump_and_pg_restore_keep_everything() {
    let mut client = connect();
    // A custom provider that replaces a bundled one, with an integration that uses it.
    let github = "github:\n    display_name: GitHub (custom)\n    auth_mode: API_KEY\n    proxy:\n        base_url: ${connectionConfig.base_url}\n";
    client
        .query_one("SELECT nango.upsert_providers($1)", &[&github])
        .unwrap();
    client
        .execute(
            "SELECT nango.create_integration('gh', 'github', 'client-id', 'client-secret')",
            &[],
        )
        .unwrap();
    create_connection(&mut client, "e2e", "backup");
    create_connection_with(
        &mut client,
        "e2e",
        "backup-oauth",
        json!({"type": "OAUTH2", "access_token": "at", "refresh_token": "rt", "expires_at": "2030-01-01T00:00:00Z"}),
        json!({"tenant": "t1"}),
    );
    set_metadata(&mut client, "e2e", "backup-oauth", &json!({"team": "core"}));
    let steps = json!([
        {"save": [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}, {"id": "c", "title": "C"}]},
        {"update": [{"id": "a", "title": "A2"}]},
        {"delete": [{"id": "b"}]},
    ]);
    let (_, status) = run_steps(&mut client, "e2e", "backup", steps);
    assert_eq!(status, "SUCCESS");
    // A resumable sync that stops half-way: its checkpoint and open deletion window must survive too.
    let contacts: Vec<Value> = (1..=5)
        .map(|i| json!({"id": format!("c{i}"), "name": format!("Contact {i}")}))
        .collect();
    mock().set_dataset("backup-contacts", contacts);
    set_metadata(
        &mut client,
        "e2e",
        "backup",
        &json!({"dataset": "backup-contacts", "failAtCursor": "2"}),
    );
    let (_, status) = run_sync(&mut client, "e2e", "contacts", "backup");
    assert_eq!(status, "ERROR");
    client
        .batch_execute("SELECT nango.pause_sync('e2e', 'records', 'backup-oauth')")
        .unwrap();
    let before = state(&mut client);
    let of = |what: &str| before.iter().find(|(w, _)| w == what).unwrap().1.clone();
    assert_eq!(
        of("records").as_array().map(Vec::len),
        Some(3),
        "{}",
        of("records")
    );
    assert_eq!(of("checkpoints")[0]["checkpoint"], json!({"cursor": "2"}));
    assert_eq!(
        of("deletion windows")["seen"].as_array().map(Vec::len),
        Some(2)
    );

    let dump = cluster().datadir.with_extension("dump");
    let port = cluster().port.to_string();
    let connection = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
    run(Command::new(format!("{BIN}/pg_dump"))
        .args(connection)
        .args(["-d", "postgres", "-Fc", "-f"])
        .arg(&dump));
    client.batch_execute("CREATE DATABASE restored").unwrap();
    run(Command::new(format!("{BIN}/pg_restore"))
        .args(connection)
        .args(["-d", "restored", "--exit-on-error"])
        .arg(&dump));
    let _ = std::fs::remove_file(&dump);

    let mut restored = Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=restored",
            cluster().port
        ),
        NoTls,
    )
    .unwrap();
    let after = state(&mut restored);
    for ((what, was), (_, is)) in before.iter().zip(&after) {
        assert_eq!(was, is, "{what} differ after the restore");
    }
    // The restored catalog is usable: new ids continue after the restored ones.
    restored
        .execute(
            "SELECT nango.create_connection('e2e', 'after-restore', '{\"type\": \"API_KEY\", \"apiKey\": \"k\"}')",
            &[],
        )
        .unwrap();
    let newest: bool = restored
        .query_one(
            "SELECT id > (SELECT max(id) FROM nango.connections WHERE connection_id <> 'after-restore')
             FROM nango.connections WHERE connection_id = 'after-restore'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(newest);
}
