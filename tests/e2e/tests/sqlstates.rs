//! Every error of the SQL surface carries a SQLSTATE a program can branch on (the table in the README and
//! in `src/error.rs`), and none carries a Rust backtrace in its DETAIL, though the test cluster's server runs
//! with `RUST_BACKTRACE=1` (see `scripts/cluster.sh`).

use std::time::Duration;

use pg_nango_e2e::*;

/// The SQLSTATE, message and DETAIL of a database error.
fn state_of(error: postgres::Error) -> (String, String, Option<String>) {
    let code = error.code().expect("a database error").code().to_string();
    let (message, detail) = db_error(error);
    (code, message, detail)
}

/// The SQLSTATE, message and DETAIL of the error a statement raises.
fn error_of(client: &mut Client, sql: &str) -> (String, String, Option<String>) {
    state_of(
        client
            .batch_execute(sql)
            .expect_err(&format!("{sql} should fail")),
    )
}

#[test]
fn each_error_has_its_sqlstate() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "states");
    let cases: &[(&str, &str, &str)] = &[
        // 22023 invalid_parameter_value: bad arguments, bad deploy input.
        (
            "SELECT nango.create_integration('bad key!', 'github')",
            "22023",
            "invalid integration key",
        ),
        (
            "SELECT nango.create_connection('e2e', '', '{\"type\": \"API_KEY\", \"apiKey\": \"k\"}')",
            "22023",
            "connection_id must be",
        ),
        (
            "SELECT nango.create_connection('e2e', 'c', '{\"type\": \"NOPE\"}')",
            "22023",
            "unsupported credentials type",
        ),
        (
            "SELECT nango.set_metadata('e2e', 'states', '[1]')",
            "22023",
            "metadata must be a JSON object",
        ),
        (
            "SELECT * FROM nango.records('Item', filter => 'bogus')",
            "22023",
            "invalid filter",
        ),
        (
            "SELECT * FROM nango.records('Item', cursor => 'x')",
            "22023",
            "invalid cursor",
        ),
        (
            "SELECT nango.set_environment_variable('bad name!', 'v')",
            "22023",
            "invalid environment variable name",
        ),
        (
            "SELECT nango.deploy('integrations: [', '{}'::jsonb)",
            "22023",
            "deploy failed",
        ),
        (
            "SELECT nango.deploy(NULL, '[1]'::jsonb)",
            "22023",
            "files must be a JSON object",
        ),
        (
            "SELECT nango.trigger_action('e2e', 'states', 'create-ticket', 'not json'::text)",
            "22023",
            "action create-ticket",
        ),
        // 42704 undefined_object: what is named does not exist.
        (
            "SELECT nango.create_integration('fine', 'no-such-provider')",
            "42704",
            "unknown provider",
        ),
        (
            "SELECT nango.create_connection('no-such', 'c', '{}')",
            "42704",
            "integration \"no-such\" does not exist",
        ),
        (
            "SELECT nango.delete_connection('e2e', 'no-such')",
            "42704",
            "connection \"no-such\" of integration \"e2e\" does not exist",
        ),
        (
            "SELECT nango.trigger_sync('e2e', 'no-such')",
            "42704",
            "sync \"no-such\" of integration \"e2e\" is not deployed",
        ),
        (
            "SELECT nango.trigger_sync('e2e', 'records', 'no-such')",
            "42704",
            "connection \"no-such\"",
        ),
        (
            "SELECT nango.wait_for_job(-1)",
            "42704",
            "job -1 does not exist",
        ),
        (
            "SELECT nango.trigger_action('e2e', 'states', 'no-such', '{}'::text)",
            "42704",
            "action \"no-such\" of integration \"e2e\" is not deployed",
        ),
        (
            "SELECT nango.trigger_action('e2e', 'no-such', 'create-ticket', '{}'::text)",
            "42704",
            "connection \"no-such\"",
        ),
        (
            "SELECT nango.dryrun('e2e', 'no-such', 'states')",
            "42704",
            "sync \"no-such\"",
        ),
        // 55000 object_not_in_prerequisite_state.
        (
            "SELECT nango.trigger_sync('e2e-other', 'records')",
            "55000",
            "has no connection yet",
        ),
        (
            "SELECT nango.wait_for_job(nango.trigger_sync('e2e', 'records', 'states'))",
            "55000",
            "was queued by this transaction",
        ),
    ];
    let mut wrong = Vec::new();
    for (sql, code, message) in cases {
        let (got_code, got_message, detail) = error_of(&mut client, sql);
        if got_code != *code || !got_message.contains(message) || detail.is_some() {
            wrong.push(format!(
                "{sql}: {got_code} {got_message:?} (DETAIL {detail:?}); expected {code} {message:?} and no DETAIL"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_privilege_a_time_limit_and_a_failed_script_have_theirs() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "states-more");
    client
        .batch_execute(
            "DROP ROLE IF EXISTS states_app; CREATE ROLE states_app LOGIN;
             GRANT USAGE ON SCHEMA nango TO states_app;
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA nango TO states_app;",
        )
        .unwrap();
    let mut app = connect_as("states_app");
    let (code, message, _) = error_of(&mut app, "SELECT nango.deploy('/tmp')");
    assert_eq!(code, "42501", "{message}");
    assert!(message.contains("pg_read_server_files"), "{message}");

    // A job still running when the wait ends: 57014, as a statement_timeout.
    set_metadata(
        &mut client,
        "e2e",
        "states-more",
        &serde_json::json!({"steps": [{"pauseMs": 3000}]}),
    );
    let job: i64 = client
        .query_one(
            "SELECT nango.trigger_sync('e2e', 'records', 'states-more')",
            &[],
        )
        .unwrap()
        .get(0);
    let (code, message, _) = error_of(
        &mut client,
        &format!("SELECT nango.wait_for_job({job}, '1 millisecond')"),
    );
    assert_eq!(code, "57014", "{message}");
    assert!(message.contains("is still"), "{message}");

    // An action past its time limit: 57014; an action that throws: 38000.
    create_connection(&mut client, "e2e", "states-spin");
    let (code, message, detail) = error_of(
        &mut client,
        "SELECT nango.trigger_action('e2e', 'states-spin', 'spin-action')",
    );
    assert_eq!(code, "57014", "{message}");
    assert_eq!(detail.as_deref(), Some("error type: execution_timeout"));
    let (code, message, _) = error_of(
        &mut client,
        "SELECT nango.trigger_action('e2e', 'states-spin', 'create-ticket', '{}'::text)",
    );
    assert_eq!(code, "38000", "{message}");
}

/// A Postgres ERROR raised while the extension's Rust code runs a statement (here a lock timeout inside
/// `nango.deploy`) reaches the client with its own SQLSTATE, and with no Rust backtrace as DETAIL.
#[test]
fn an_error_raised_under_the_extensions_code_carries_no_backtrace() {
    let mut holder = connect();
    holder
        .batch_execute("BEGIN; LOCK TABLE nango.files IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let mut client = connect();
    client.batch_execute("SET lock_timeout = '200ms'").unwrap();
    let (config, files) = fixture();
    let error = client
        .query_one(
            "SELECT nango.deploy($1::text, $2::jsonb)",
            &[&config, &files],
        )
        .expect_err("the deploy waits for the lock and times out");
    let (code, message, detail) = state_of(error);
    assert_eq!(code, "55P03", "{message}");
    assert_eq!(
        detail, None,
        "no Rust backtrace reaches the client: {detail:?}"
    );
    holder.batch_execute("ROLLBACK").unwrap();
    std::thread::sleep(Duration::from_millis(10));
}
