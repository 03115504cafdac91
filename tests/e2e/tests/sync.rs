//! Syncs end to end: deploy, connection, scheduler, run worker, records, metadata, notifications.

use std::time::Duration;

use pg_nango_e2e::*;
use pg_nango_mock_api::DEMO_TICKETS;
use serde_json::{Value, json};

/// A demo connection created now gets a successful first run: the scheduler and workers are fine.
fn assert_a_new_run_succeeds(client: &mut Client, connection_id: &str) {
    create_connection(client, "demo", connection_id);
    let job = wait_first_job(client, connection_id);
    let status: String = client
        .query_one("SELECT status FROM nango.jobs WHERE id = $1", &[&job])
        .unwrap()
        .get(0);
    assert_eq!(status, "SUCCESS");
}

#[test]
fn demo_sync_writes_records_with_metadata_and_notifies() {
    let mut client = connect();
    let mut listener = connect();
    listener.batch_execute("LISTEN nango").unwrap();
    create_connection(&mut client, "demo", "demo-e2e");
    let job = wait_first_job(&mut client, "demo-e2e");

    let row = client
        .query_one(
            "SELECT status, type, result FROM nango.jobs WHERE id = $1",
            &[&job],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "SUCCESS");
    assert_eq!(row.get::<_, String>(1), "INITIAL");
    assert_eq!(
        row.get::<_, Value>(2),
        json!({"Ticket": {"added": DEMO_TICKETS, "updated": 0, "deleted": 0}})
    );

    let rows = client
        .query("SELECT id, data, _nango_metadata, cursor FROM nango.records('Ticket', connection_id => 'demo-e2e')", &[])
        .unwrap();
    assert_eq!(rows.len(), DEMO_TICKETS);
    let first_data: Value = rows[0].get(1);
    assert_eq!(rows[0].get::<_, String>(0), "1");
    assert_eq!(first_data["subject"], "Invoice is wrong (#1)");
    assert_eq!(first_data["requester_email"], "customer1@example.com");
    assert!(first_data.get("_nango_metadata").is_none());
    let metadata: Value = rows[0].get(2);
    assert_eq!(metadata["last_action"], "ADDED");
    assert_eq!(metadata["deleted_at"], Value::Null);
    assert_eq!(metadata["first_seen_at"], metadata["last_modified_at"]);
    assert_eq!(metadata["cursor"], json!(rows[0].get::<_, String>(3)));

    // Paging by cursor returns the same rows in the same order.
    let first_page = client.query("SELECT cursor FROM nango.records('Ticket', connection_id => 'demo-e2e', \"limit\" => 100)", &[]).unwrap();
    let last: String = first_page[99].get(0);
    let rest = client
        .query(
            "SELECT id FROM nango.records('Ticket', connection_id => 'demo-e2e', cursor => $1)",
            &[&last],
        )
        .unwrap();
    assert_eq!(rest.len(), DEMO_TICKETS - 100);
    assert_eq!(rest[0].get::<_, String>(0), "101");

    let bodies = notifications_for(&mut listener, job, 1);
    assert_eq!(bodies.len(), 1, "one notification for the one model");
    let body = &bodies[0];
    let started: String = client
        .query_one(
            "SELECT to_json(started_at) #>> '{}' FROM nango.jobs WHERE id = $1",
            &[&job],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        body,
        &json!({
            "from": "nango", "type": "sync", "connectionId": "demo-e2e", "providerConfigKey": "demo",
            "syncName": "tickets", "model": "Ticket", "syncType": "INITIAL", "success": true,
            "responseResults": {"added": DEMO_TICKETS, "updated": 0, "deleted": 0},
            "modifiedAfter": started, "queryTimeStamp": started, "jobId": job,
        })
    );
    let last_sync_date: String = client
        .query_one("SELECT to_json(last_sync_date) #>> '{}' FROM nango.sync_status WHERE connection_id = 'demo-e2e'", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        last_sync_date, started,
        "lastSyncDate is the start of the run"
    );

    // The typed view reads the same records with typed columns.
    let typed = client
        .query_one("SELECT subject, priority, created_at::text, tags, _nango_last_action FROM nango_records.ticket WHERE id = '2' AND _nango_connection_id = 'demo-e2e'", &[])
        .unwrap();
    assert_eq!(typed.get::<_, String>(0), "Feature request: dark mode (#2)");
    assert_eq!(typed.get::<_, f64>(1), 3.0);
    assert_eq!(typed.get::<_, String>(2), "2026-01-03 02:00:00+00");
    assert_eq!(typed.get::<_, Value>(3), json!(["billing"]));
    assert_eq!(typed.get::<_, String>(4), "ADDED");
}

/// `(id, cursor)` of a connection's Ticket records, in cursor order.
fn ids_and_cursors(client: &mut Client, connection_id: &str) -> Vec<(String, String)> {
    pairs(
        client,
        "SELECT id, cursor FROM nango.records('Ticket', connection_id => $1)",
        &[&connection_id],
    )
}

#[test]
fn unchanged_records_are_not_rewritten() {
    let mut client = connect();
    create_connection(&mut client, "demo", "demo-again");
    wait_first_job(&mut client, "demo-again");
    let before = ids_and_cursors(&mut client, "demo-again");
    let (job, status) = run_sync(&mut client, "demo", "tickets", "demo-again");
    assert_eq!(status, "SUCCESS");
    let result: Value = client
        .query_one("SELECT result FROM nango.jobs WHERE id = $1", &[&job])
        .unwrap()
        .get(0);
    assert_eq!(
        result,
        json!({"Ticket": {"added": 0, "updated": 0, "deleted": 0}})
    );
    let after = ids_and_cursors(&mut client, "demo-again");
    assert_eq!(before, after, "cursors are unchanged");
}

#[test]
fn a_throwing_script_fails_its_job_and_the_next_job_still_runs() {
    let mut client = connect();
    let mut listener = connect();
    listener.batch_execute("LISTEN nango").unwrap();
    create_connection(&mut client, "e2e", "throws-1");
    let (job, status) = run_sync(&mut client, "e2e", "throws", "throws-1");
    assert_eq!(status, "ERROR");
    let error: Value = client
        .query_one("SELECT error FROM nango.jobs WHERE id = $1", &[&job])
        .unwrap()
        .get(0);
    assert_eq!(error["type"], "script_error");
    let description = error["description"].as_str().unwrap();
    assert!(
        description.starts_with("upstream said no (at e2e/syncs/throws.ts:6:"),
        "{description}"
    );

    // What the run saved before failing stays; lastSyncDate does not move.
    let saved: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.records('Thing', connection_id => 'throws-1')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(saved, 1);
    // auto_start: false keeps the schedule paused; the last run's failure still shows.
    let row = client
        .query_one("SELECT status, last_sync_date IS NULL, last_error, last_job_status FROM nango.sync_status WHERE connection_id = 'throws-1' AND sync = 'throws'", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "PAUSED");
    assert_eq!(row.get::<_, String>(3), "ERROR");
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, String>(2), description);

    let bodies = notifications_for(&mut listener, job, 1);
    assert_eq!(bodies[0]["success"], false);
    assert_eq!(bodies[0]["model"], "Thing");
    assert_eq!(
        bodies[0]["error"],
        json!({"type": "script_error", "description": description})
    );

    assert_a_new_run_succeeds(&mut client, "after-throw");
}

#[test]
fn an_infinite_loop_is_stopped_by_the_time_limit() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "spin-1");
    let started = std::time::Instant::now();
    let (job, status) = run_sync(&mut client, "e2e", "spin", "spin-1");
    assert_eq!(status, "ERROR");
    assert!(started.elapsed() < Duration::from_secs(30));
    let error: Value = client
        .query_one("SELECT error FROM nango.jobs WHERE id = $1", &[&job])
        .unwrap()
        .get(0);
    assert_eq!(
        error,
        json!({"type": "execution_timeout", "description": "the script ran longer than its time limit of 5 seconds"})
    );

    // The scheduler lives on: another run succeeds.
    assert_a_new_run_succeeds(&mut client, "after-spin");
}

#[test]
fn trigger_returns_the_active_job_instead_of_a_second_one() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "spin-2");
    let first: i64 = client
        .query_one("SELECT nango.trigger_sync('e2e', 'spin', 'spin-2')", &[])
        .unwrap()
        .get(0);
    let second: i64 = client
        .query_one("SELECT nango.trigger_sync('e2e', 'spin', 'spin-2')", &[])
        .unwrap()
        .get(0);
    assert_eq!(first, second);
    client
        .execute("SELECT nango.cancel_sync('e2e', 'spin', 'spin-2')", &[])
        .unwrap();
    let status: String = client
        .query_one("SELECT nango.wait_for_job($1, '30 seconds')", &[&first])
        .unwrap()
        .get(0);
    assert_eq!(status, "CANCELLED");
}
