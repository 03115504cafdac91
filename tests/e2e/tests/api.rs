//! The SQL surface's guarantees: bad input gets a clear error and changes nothing; secrets stay private.

use pg_nango_e2e::*;
use serde_json::json;

fn error_of(result: Result<Vec<postgres::Row>, postgres::Error>) -> String {
    let error = result.expect_err("the call should fail");
    let db = error.as_db_error().expect("a database error");
    format!(
        "{}{}",
        db.message(),
        db.hint().map(|h| format!(" HINT: {h}")).unwrap_or_default()
    )
}

#[test]
fn a_bad_deploy_names_file_and_line_and_keeps_the_previous_deployment() {
    let mut client = connect();
    let (config, files) = fixture();
    let before: i64 = client
        .query_one("SELECT count(*) FROM nango.deployments", &[])
        .unwrap()
        .get(0);

    let bad_runs = config.replace(
        "runs: every hour\n                auto_start: false\n                output: Thing",
        "runs: every banana\n                auto_start: false\n                output: Thing",
    );
    let message = error_of(client.query(
        "SELECT nango.deploy($1::text, $2::jsonb)",
        &[&bad_runs, &files],
    ));
    let line = bad_runs
        .lines()
        .position(|l| l.contains("every banana"))
        .unwrap()
        + 1;
    assert!(
        message.starts_with(&format!(
            "deploy failed: nango.yaml:{line}: sync throws: Sync interval is invalid"
        )),
        "{message}"
    );
    assert!(
        message.contains("the previous deployment keeps running"),
        "{message}"
    );

    let mut broken = files.clone();
    broken["e2e/syncs/throws.ts"] =
        json!("export default async function fetchData(nango) {\n  const x = ;\n}\n");
    let message = error_of(client.query(
        "SELECT nango.deploy($1::text, $2::jsonb)",
        &[&config, &broken],
    ));
    assert!(
        message.starts_with("deploy failed: e2e/syncs/throws.ts:2:"),
        "{message}"
    );

    let mut missing_import = files.clone();
    missing_import["e2e/syncs/throws.ts"] = json!(
        "import { x } from '../helpers/nope.js';\nexport default async function f() { x(); }\n"
    );
    let message = error_of(client.query(
        "SELECT nango.deploy($1::text, $2::jsonb)",
        &[&config, &missing_import],
    ));
    assert!(
        message.starts_with("deploy failed: e2e/syncs/throws.ts: imports '../helpers/nope.js'"),
        "{message}"
    );

    let without_spin = config.replace("            spin:\n", "            gone:\n");
    let message = error_of(client.query(
        "SELECT nango.deploy($1::text, $2::jsonb)",
        &[&without_spin, &files],
    ));
    assert!(message.contains("no script for sync gone"), "{message}");

    let after: i64 = client
        .query_one("SELECT count(*) FROM nango.deployments", &[])
        .unwrap()
        .get(0);
    assert_eq!(before, after);
    let syncs: i64 = client
        .query_one("SELECT count(*) FROM nango.sync_configs", &[])
        .unwrap()
        .get(0);
    assert_eq!(syncs, 13);
}

#[test]
fn removing_a_sync_needs_allow_destructive() {
    let mut client = connect();
    let (config, files) = fixture();
    let without: String = config.replace("            spin:\n                runs: every hour\n                auto_start: false\n                output: Other\n                endpoint: GET /things/spin\n", "");
    let message = error_of(client.query(
        "SELECT nango.deploy($1::text, $2::jsonb)",
        &[&without, &files],
    ));
    assert!(
        message.contains("it would remove sync e2e/spin"),
        "{message}"
    );
    assert!(message.contains("allow_destructive => true"), "{message}");
}

#[test]
fn credentials_are_not_readable_by_other_roles() {
    let mut client = connect();
    create_connection(&mut client, "demo", "secret-holder");
    client.batch_execute("DO $$ BEGIN CREATE ROLE nango_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$; GRANT USAGE ON SCHEMA nango TO nango_reader").unwrap();
    let mut tx = client.transaction().unwrap();
    tx.batch_execute("SET LOCAL ROLE nango_reader").unwrap();
    let error = tx
        .query("SELECT * FROM nango.credentials", &[])
        .unwrap_err();
    assert!(
        error
            .as_db_error()
            .unwrap()
            .message()
            .contains("permission denied for table credentials")
    );
    drop(tx);
    let mut tx = client.transaction().unwrap();
    tx.batch_execute("SET LOCAL ROLE nango_reader").unwrap();
    let error = tx
        .query("SELECT nango.trigger_sync('demo', 'tickets')", &[])
        .unwrap_err();
    assert!(
        error
            .as_db_error()
            .unwrap()
            .message()
            .contains("permission denied for function trigger_sync")
    );
}

#[test]
fn bad_connection_input_is_refused() {
    let mut client = connect();
    let message = error_of(client.query(
        "SELECT nango.create_connection('nope', 'c', '{\"type\":\"API_KEY\",\"apiKey\":\"k\"}')",
        &[],
    ));
    assert!(
        message.starts_with("integration \"nope\" does not exist"),
        "{message}"
    );
    let message = error_of(client.query(
        "SELECT nango.create_connection('demo', 'c', '{\"type\":\"API_KEY\",\"apiKey\":\"\"}')",
        &[],
    ));
    assert_eq!(
        message,
        "API_KEY credentials need a non-empty \"apiKey\" string"
    );
    let message = error_of(client.query("SELECT nango.create_connection('demo', 'c', '{\"type\":\"TOKEN\",\"secret\":\"hunter2\"}')", &[]));
    assert!(
        message.starts_with("unsupported credentials type \"TOKEN\""),
        "{message}"
    );
    assert!(!message.contains("hunter2"));
    let message = error_of(client.query(
        "SELECT * FROM nango.records('Ticket', filter => 'changed')",
        &[],
    ));
    assert!(
        message.starts_with("invalid filter \"changed\""),
        "{message}"
    );
    let message = error_of(client.query(
        "SELECT * FROM nango.records('Ticket', cursor => 'abc')",
        &[],
    ));
    assert!(message.starts_with("invalid cursor \"abc\""), "{message}");
}
