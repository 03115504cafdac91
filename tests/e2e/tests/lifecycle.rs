//! A sync's life: INITIAL and INCREMENTAL runs and `lastSyncDate`, failed runs, full resync, pause, start
//! and cancel, `auto_start: false`, the schedule grid with ticks skipped during a run, and deleting a
//! connection in the middle of a run.

use std::time::{Duration, Instant};

use pg_nango_e2e::*;
use serde_json::{Value, json};

/// The `lastSyncDate` the fixture's `records` script saw (its first log).
fn seen_last_sync_date(client: &mut Client, job: i64) -> Value {
    let logs = job_logs(client, job);
    let (_, message, payload) = logs.first().expect("a log");
    assert_eq!(message, "lastSyncDate");
    payload.as_ref().expect("a payload")["lastSyncDate"].clone()
}

/// A job's start in the form JavaScript's `toISOString` gives (milliseconds, `Z`).
fn start_as_js(client: &mut Client, job: i64) -> Value {
    let text: String = client
        .query_one(
            "SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM nango.jobs WHERE id = $1",
            &[&job],
        )
        .unwrap()
        .get(0);
    json!(text)
}

fn job_type(client: &mut Client, job: i64) -> String {
    client
        .query_one("SELECT type FROM nango.jobs WHERE id = $1", &[&job])
        .unwrap()
        .get(0)
}

fn last_sync_date(client: &mut Client, connection_id: &str) -> Option<String> {
    client
        .query_one(
            "SELECT to_json(last_sync_date) #>> '{}' FROM nango.sync_status WHERE connection_id = $1 AND sync = 'records'",
            &[&connection_id],
        )
        .unwrap()
        .get(0)
}

#[test]
fn last_sync_date_is_the_start_of_the_last_successful_run() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "life-inc");
    let (first, status) = run_steps(
        &mut client,
        "e2e",
        "life-inc",
        json!([{"save": [{"id": "x"}]}]),
    );
    assert_eq!(status, "SUCCESS");
    assert_eq!(job_type(&mut client, first), "INITIAL");
    assert_eq!(seen_last_sync_date(&mut client, first), Value::Null);
    let first_start = job_started_at(&mut client, first);
    assert_eq!(
        last_sync_date(&mut client, "life-inc"),
        Some(first_start.clone())
    );

    // A failed run keeps what it saved and does not move lastSyncDate.
    let steps = json!([{"save": [{"id": "y"}]}, {"fail": "boom"}]);
    let (failed, status) = run_steps(&mut client, "e2e", "life-inc", steps);
    assert_eq!(status, "ERROR");
    assert_eq!(job_type(&mut client, failed), "INCREMENTAL");
    assert_eq!(
        seen_last_sync_date(&mut client, failed),
        start_as_js(&mut client, first)
    );
    assert_eq!(last_sync_date(&mut client, "life-inc"), Some(first_start));
    assert_eq!(record_ids(&mut client, "Item", "life-inc"), ["x", "y"]);

    // The next run still starts from the last success.
    let (third, status) = run_steps(
        &mut client,
        "e2e",
        "life-inc",
        json!([{"save": [{"id": "z"}]}]),
    );
    assert_eq!(status, "SUCCESS");
    assert_eq!(job_type(&mut client, third), "INCREMENTAL");
    assert_eq!(
        seen_last_sync_date(&mut client, third),
        start_as_js(&mut client, first)
    );
    let third_start = job_started_at(&mut client, third);
    assert_eq!(last_sync_date(&mut client, "life-inc"), Some(third_start));

    // A full resync forgets lastSyncDate, the checkpoint and any deletion window, and runs as INITIAL.
    let sync_id: i64 = client
        .query_one(
            "SELECT s.id FROM nango.syncs s JOIN nango.connections c ON c.id = s.connection
             JOIN nango.sync_configs sc ON sc.id = s.sync_config
             WHERE c.connection_id = 'life-inc' AND sc.name = 'records'",
            &[],
        )
        .unwrap()
        .get(0);
    client
        .execute(
            "INSERT INTO nango.checkpoints (sync, checkpoint) VALUES ($1, '{\"page\": 7}')",
            &[&sync_id],
        )
        .unwrap();
    client
        .execute(
            "INSERT INTO nango.delete_windows (sync, connection, model, implicit)
             SELECT s.id, s.connection, 'Item', false FROM nango.syncs s WHERE s.id = $1",
            &[&sync_id],
        )
        .unwrap();
    let resync: i64 = client
        .query_one(
            "SELECT nango.trigger_sync('e2e', 'records', 'life-inc', full_resync => true)",
            &[],
        )
        .unwrap()
        .get(0);
    let status: String = client
        .query_one("SELECT nango.wait_for_job($1, '60 seconds')", &[&resync])
        .unwrap()
        .get(0);
    assert_eq!(status, "SUCCESS");
    assert_eq!(job_type(&mut client, resync), "INITIAL");
    assert_eq!(seen_last_sync_date(&mut client, resync), Value::Null);
    let left: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM nango.checkpoints WHERE sync = $1) + (SELECT count(*) FROM nango.delete_windows WHERE sync = $1)",
            &[&sync_id],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let resync_start = job_started_at(&mut client, resync);
    assert_eq!(last_sync_date(&mut client, "life-inc"), Some(resync_start));
}

/// `(status, next_run_at is set, seconds from the schedule anchor to the next run)` of a sync.
fn schedule(client: &mut Client, connection_id: &str) -> (String, Option<f64>) {
    let row = client
        .query_one(
            "SELECT st.status, extract(epoch FROM s.next_run_at - s.schedule_anchor)::float8
             FROM nango.sync_status st
             JOIN nango.connections c ON c.connection_id = st.connection_id AND c.provider_config_key = st.integration
             JOIN nango.sync_configs sc ON sc.provider_config_key = st.integration AND sc.name = st.sync
             JOIN nango.syncs s ON s.connection = c.id AND s.sync_config = sc.id
             WHERE st.connection_id = $1 AND st.sync = 'records'",
            &[&connection_id],
        )
        .unwrap();
    (
        row.get::<_, Option<String>>(0).unwrap_or_default(),
        row.get(1),
    )
}

fn jobs_of(client: &mut Client, connection_id: &str) -> Vec<(i64, String)> {
    pairs(
        client,
        "SELECT id, status FROM nango.jobs WHERE connection_id = $1 AND sync_name = 'records' ORDER BY id",
        &[&connection_id],
    )
}

#[test]
fn pause_start_and_cancel_and_auto_start_false_stays_paused() {
    let mut client = connect();
    create_connection_with_metadata(
        &mut client,
        "e2e",
        "life-pause",
        &json!({"steps": [{"save": [{"id": "p"}]}]}),
    );
    // auto_start: false: paused from the start, nothing runs.
    let (status, next) = schedule(&mut client, "life-pause");
    assert_eq!((status.as_str(), next), ("PAUSED", None));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(jobs_of(&mut client, "life-pause").is_empty());

    // start_sync: runs now, then on the hourly grid.
    client
        .execute(
            "SELECT nango.start_sync('e2e', 'records', 'life-pause')",
            &[],
        )
        .unwrap();
    let job = wait_first_job(&mut client, "life-pause");
    assert_eq!(job_outcome(&mut client, job).0, "SUCCESS");
    let (status, next) = schedule(&mut client, "life-pause");
    assert_eq!(status, "SUCCESS");
    let offset = next.expect("a next run");
    assert!(
        offset > 0.0 && offset % 3600.0 == 0.0,
        "next run on the grid: {offset}"
    );

    // pause_sync stops the schedule; trigger_sync still runs it.
    client
        .execute(
            "SELECT nango.pause_sync('e2e', 'records', 'life-pause')",
            &[],
        )
        .unwrap();
    assert_eq!(
        schedule(&mut client, "life-pause"),
        ("PAUSED".to_string(), None)
    );
    let (_, status) = run_sync(&mut client, "e2e", "records", "life-pause");
    assert_eq!(status, "SUCCESS");
    assert_eq!(schedule(&mut client, "life-pause").1, None, "still paused");

    // cancel_sync stops a running run: CANCELLED, what it saved stays.
    set_metadata(
        &mut client,
        "e2e",
        "life-pause",
        &json!({"steps": [{"save": [{"id": "q"}]}, {"pauseMs": 4000}, {"save": [{"id": "never"}]}]}),
    );
    let job: i64 = client
        .query_one(
            "SELECT nango.trigger_sync('e2e', 'records', 'life-pause')",
            &[],
        )
        .unwrap()
        .get(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !record_ids(&mut client, "Item", "life-pause").contains(&"q".to_string()) {
        assert!(
            Instant::now() < deadline,
            "the run never saved its first batch"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    client
        .execute(
            "SELECT nango.cancel_sync('e2e', 'records', 'life-pause')",
            &[],
        )
        .unwrap();
    let status: String = client
        .query_one("SELECT nango.wait_for_job($1, '30 seconds')", &[&job])
        .unwrap()
        .get(0);
    assert_eq!(status, "CANCELLED");
    assert_eq!(record_ids(&mut client, "Item", "life-pause"), ["p", "q"]);
}

#[test]
fn a_tick_during_a_run_is_skipped_and_runs_stay_on_the_grid() {
    let mut client = connect();
    // `tick` runs every 2 seconds; each run takes 3.
    client
        .execute(
            "SELECT nango.create_connection('ticker', 'tick-1', $1, $2, '{\"waitMs\": 3000}')",
            &[
                &json!({"type": "API_KEY", "apiKey": API_KEY}),
                &json!({"base_url": mock().url()}),
            ],
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ended: i64 = client
            .query_one(
                "SELECT count(*) FROM nango.jobs WHERE connection_id = 'tick-1' AND status = 'SUCCESS'",
                &[],
            )
            .unwrap()
            .get(0);
        if ended >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the ticker did not run twice");
        std::thread::sleep(Duration::from_millis(100));
    }
    let next: f64 = client
        .query_one(
            "SELECT extract(epoch FROM s.next_run_at - s.schedule_anchor)::float8 FROM nango.syncs s
             JOIN nango.connections c ON c.id = s.connection WHERE c.connection_id = 'tick-1'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        next % 2.0,
        0.0,
        "the next run is a point of the grid: {next}"
    );
    client
        .execute("SELECT nango.pause_sync('ticker', 'tick')", &[])
        .unwrap();
    let rows = client
        .query(
            "SELECT extract(epoch FROM j.created_at - s.schedule_anchor)::float8,
                    extract(epoch FROM j.started_at - s.schedule_anchor)::float8,
                    extract(epoch FROM j.ended_at - s.schedule_anchor)::float8
             FROM nango.jobs j JOIN nango.syncs s ON s.id = j.sync
             WHERE j.connection_id = 'tick-1' AND j.status = 'SUCCESS' ORDER BY j.id LIMIT 2",
            &[],
        )
        .unwrap();
    let times: Vec<(f64, f64, f64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let ((_, _, first_end), (second_created, second_start, _)) = (times[0], times[1]);
    assert!(
        first_end >= 3.0,
        "the first run took its 3 seconds: {times:?}"
    );
    assert!(second_start >= first_end, "runs never overlap: {times:?}");
    // The tick at 2 s fell inside the first run and was skipped, not queued: the next run was created at
    // a later point of the 2-second grid, after the first run ended.
    assert!(
        second_created >= first_end,
        "no run was queued during the first: {times:?}"
    );
    // Created when the scheduler saw the grid point pass (it looks at least every half second).
    let off_grid = second_created % 2.0;
    assert!(
        off_grid < 0.9,
        "the second run starts on the grid: {times:?}"
    );
}

#[test]
fn deleting_a_connection_stops_its_syncs_and_removes_its_records() {
    let mut client = connect();
    create_connection_with_metadata(
        &mut client,
        "e2e",
        "life-gone",
        &json!({"steps": [{"save": [{"id": "a"}, {"id": "b"}]}, {"pauseMs": 4000}, {"save": [{"id": "c"}]}]}),
    );
    let connection: i64 = client
        .query_one(
            "SELECT id FROM nango.connections WHERE connection_id = 'life-gone'",
            &[],
        )
        .unwrap()
        .get(0);
    let job: i64 = client
        .query_one(
            "SELECT nango.trigger_sync('e2e', 'records', 'life-gone')",
            &[],
        )
        .unwrap()
        .get(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while record_ids(&mut client, "Item", "life-gone").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the run never saved its first batch"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    client
        .execute("SELECT nango.delete_connection('e2e', 'life-gone')", &[])
        .unwrap();
    let status: String = client
        .query_one("SELECT nango.wait_for_job($1, '30 seconds')", &[&job])
        .unwrap()
        .get(0);
    assert_eq!(status, "CANCELLED");
    let left: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM nango.stored_records WHERE connection = $1)
                  + (SELECT count(*) FROM nango.syncs WHERE connection = $1)",
            &[&connection],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "no records and no schedule are left");
    std::thread::sleep(Duration::from_millis(1000));
    let jobs: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.jobs WHERE connection_id = 'life-gone'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(jobs, 1, "nothing runs for it any more");
}

#[test]
fn waiting_for_a_job_queued_by_the_same_transaction_fails_at_once() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "life-same-txn");
    // `records` does not start by itself (auto_start: false): the trigger below queues a new job.
    let started = Instant::now();
    let error = client
        .query_one(
            "SELECT nango.wait_for_job(nango.trigger_sync('e2e', 'records', 'life-same-txn'), '60 seconds')",
            &[],
        )
        .unwrap_err();
    let db = error.as_db_error().expect("a database error");
    assert!(
        db.message().ends_with(
            "was queued by this transaction, and no worker can start it before it commits"
        ),
        "{}",
        db.message()
    );
    assert!(
        db.hint()
            .unwrap_or_default()
            .contains("separate statements")
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it did not wait for the timeout"
    );
    // In two statements the same job runs.
    let (job, status) = run_sync(&mut client, "e2e", "records", "life-same-txn");
    assert_eq!(status, "SUCCESS", "job {job}");
}
