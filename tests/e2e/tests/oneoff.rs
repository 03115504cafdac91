//! `nango.trigger_action` and `nango.dryrun`: a script run now for one connection, its result returned.

use pg_nango_e2e::*;
use serde_json::{Value, json};

#[test]
fn an_action_returns_its_output_and_an_action_error_becomes_a_sql_error() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "action-conn");

    let output: Value = client
        .query_one(
            "SELECT nango.trigger_action('e2e', 'action-conn', 'create-ticket', '{\"subject\": \"Printer on fire\"}')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        output,
        json!({"id": "new-1", "subject": "Printer on fire", "method": "POST", "connection": "action-conn"})
    );
    let logged: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.logs WHERE run = 'action e2e/create-ticket action-conn' AND message = 'created'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(logged, 1);

    let error = client
        .query_one(
            "SELECT nango.trigger_action('e2e', 'action-conn', 'create-ticket', '{}')",
            &[],
        )
        .unwrap_err();
    let (message, detail) = db_error(error);
    assert_eq!(message, "subject is required");
    let payload: Value = serde_json::from_str(&detail.expect("the payload as DETAIL")).unwrap();
    assert_eq!(
        payload,
        json!({"message": "subject is required", "field": "subject"})
    );

    let (message, _) = db_error(
        client
            .query_one(
                "SELECT nango.trigger_action('e2e', 'action-conn', 'nope')",
                &[],
            )
            .unwrap_err(),
    );
    assert_eq!(
        message,
        "action \"nope\" of integration \"e2e\" is not deployed"
    );
    let (message, _) = db_error(
        client
            .query_one(
                "SELECT nango.trigger_action('e2e', 'nobody', 'create-ticket')",
                &[],
            )
            .unwrap_err(),
    );
    assert_eq!(
        message,
        "connection \"nobody\" of integration \"e2e\" does not exist"
    );
}

#[test]
fn the_demo_action_creates_a_ticket_through_the_proxy() {
    let mut client = connect();
    create_connection(&mut client, "demo", "demo-action-conn");
    let ticket: Value = client
        .query_one(
            "SELECT nango.trigger_action('demo', 'demo-action-conn', 'create-ticket',
                 '{\"subject\": \"Printer on fire\", \"requester_name\": \"Ada\", \"requester_email\": \"ada@example.com\"}')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ticket["subject"], "Printer on fire");
    assert_eq!(ticket["status"], "open");
    assert_eq!(ticket["requester_email"], "ada@example.com");
    assert!(
        ticket["id"].as_str().unwrap().parse::<u32>().unwrap() > 250,
        "{ticket}"
    );
    let (message, detail) = db_error(
        client
            .query_one(
                "SELECT nango.trigger_action('demo', 'demo-action-conn', 'create-ticket', '{}')",
                &[],
            )
            .unwrap_err(),
    );
    assert_eq!(message, "subject is required");
    assert_eq!(
        detail.as_deref(),
        Some(r#"{"field":"subject","message":"subject is required"}"#)
    );
}

#[test]
fn an_action_has_its_own_time_limit() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "spin-action-conn");
    let (message, detail) = db_error(
        client
            .query_one(
                "SELECT nango.trigger_action('e2e', 'spin-action-conn', 'spin-action')",
                &[],
            )
            .unwrap_err(),
    );
    // nango.action_timeout is 2 s in the test cluster, nango.script_timeout 5 s.
    assert_eq!(
        message,
        "action spin-action failed: the script ran longer than its time limit of 2 seconds"
    );
    assert_eq!(detail.as_deref(), Some("error type: execution_timeout"));
}

#[test]
fn an_action_imports_a_package_from_node_modules() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "package-conn");
    let output: Value = client
        .query_one(
            "SELECT nango.trigger_action('e2e', 'package-conn', 'subscribe', '{\"email\": \"ada@example.com\"}')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(output, json!({"subscribed": "ada@example.com"}));

    let (message, detail) = db_error(
        client
            .query_one(
                "SELECT nango.trigger_action('e2e', 'package-conn', 'subscribe', '{\"email\": 42}')",
                &[],
            )
            .unwrap_err(),
    );
    assert_eq!(message, "Invalid input provided");
    assert_eq!(
        detail.as_deref(),
        Some(r#"{"message":"Invalid input provided"}"#)
    );
    let logged: String = client
        .query_one(
            "SELECT level || ': ' || message FROM nango.logs WHERE run = 'action e2e/subscribe package-conn' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        logged,
        "error: Invalid input provided: Expected string at path email"
    );

    // Without the package in the deployed files, the deploy names the import and how to fix it.
    let (config, mut files) = fixture();
    files
        .as_object_mut()
        .unwrap()
        .retain(|path, _| !path.starts_with("node_modules/"));
    let (message, _) = db_error(
        client
            .query_one(
                "SELECT nango.deploy($1::text, $2::jsonb)",
                &[&config, &files],
            )
            .unwrap_err(),
    );
    assert!(
        message.starts_with("deploy failed: e2e/actions/subscribe.ts: imports the package 'tiny-schema', which is not installed in the folder's node_modules (run npm install in the folder)"),
        "{message}"
    );
}

#[test]
fn a_dry_run_returns_what_a_sync_would_save_and_stores_nothing() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "dry-conn");
    mock().set_dataset(
        "dry-a",
        vec![
            json!({"id": "x1"}),
            json!({"id": "x2"}),
            json!({"id": "x3"}),
        ],
    );
    set_metadata(&mut client, "e2e", "dry-conn", &json!({"dataset": "dry-a"}));
    let jobs_before: i64 = client
        .query_one("SELECT count(*) FROM nango.jobs", &[])
        .unwrap()
        .get(0);

    let output: Value = client
        .query_one("SELECT nango.dryrun('e2e', 'legacy', 'dry-conn')", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        output,
        json!({"LegacyItem": [{"id": "x1"}, {"id": "x2"}, {"id": "x3"}]})
    );
    assert!(record_actions(&mut client, "LegacyItem", "dry-conn").is_empty());
    let jobs_after: i64 = client
        .query_one("SELECT count(*) FROM nango.jobs", &[])
        .unwrap()
        .get(0);
    assert_eq!(jobs_before, jobs_after);

    // A failing script fails the dry run with the script's message and location.
    set_metadata(
        &mut client,
        "e2e",
        "dry-conn",
        &json!({"dataset": "dry-a", "failAfterFirstPage": true}),
    );
    let (message, detail) = db_error(
        client
            .query_one("SELECT nango.dryrun('e2e', 'legacy', 'dry-conn')", &[])
            .unwrap_err(),
    );
    assert!(
        message.starts_with(
            "dry run of sync legacy failed: failing after the first page (at e2e/syncs/legacy.ts:"
        ),
        "{message}"
    );
    assert_eq!(detail.as_deref(), Some("error type: script_error"));
}
