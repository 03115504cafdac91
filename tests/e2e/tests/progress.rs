//! A long sync shows its progress while it runs: `nango.sync_status` and `nango.jobs.progress` carry the
//! records saved so far by model, the requests made and the time of the last batch, and the run worker's
//! row of `pg_stat_activity` says which sync and connection it runs, without credentials.

use std::time::{Duration, Instant};

use pg_nango_e2e::*;
use serde_json::{Value, json};

#[test]
fn a_running_sync_shows_its_progress_and_what_it_runs() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "progress-conn");
    let items: Vec<Value> = (0..40)
        .map(|i| json!({"id": format!("p{i}"), "title": format!("item {i}")}))
        .collect();
    mock().set_dataset("progress-items", items);
    // Four pages of ten, each followed by a pause of 400 ms (a request of its own to the mock API).
    set_metadata(
        &mut client,
        "e2e",
        "progress-conn",
        &json!({"steps": [{"dataset": "progress-items", "limit": 10, "pauseMs": 400}]}),
    );
    let job: i64 = client
        .query_one(
            "SELECT nango.trigger_sync('e2e', 'records', 'progress-conn')",
            &[],
        )
        .unwrap()
        .get(0);

    // While it runs: some batches saved, not all, and the worker's activity names the run.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (saved, requests, activity) = loop {
        let row = client
            .query_one(
                "SELECT status, records_saved, requests, last_batch_at IS NOT NULL AND last_batch_at <= now()
                 FROM nango.sync_status WHERE connection_id = 'progress-conn' AND sync = 'records'",
                &[],
            )
            .unwrap();
        let status: Option<String> = row.get(0);
        let saved: Option<Value> = row.get(1);
        let requests: Option<i64> = row.get(2);
        let batch_time_set: Option<bool> = row.get(3);
        let mid_run = saved
            .as_ref()
            .and_then(|s| s["Item"].as_i64())
            .is_some_and(|n| (10..40).contains(&n));
        if status.as_deref() == Some("RUNNING") && mid_run {
            assert_eq!(batch_time_set, Some(true));
            let activity: Vec<(String, String)> = pairs(
                &mut client,
                "SELECT state, query FROM pg_stat_activity WHERE backend_type = 'pg_nango run' AND query LIKE 'pg_nango: sync%'",
                &[],
            );
            break (saved.unwrap(), requests.unwrap_or(0), activity);
        }
        assert!(
            Instant::now() < deadline,
            "never saw the run mid-way: {status:?} {saved:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        requests >= 1,
        "requests so far while {saved} were saved: {requests}"
    );
    assert_eq!(
        activity,
        [(
            "active".to_string(),
            format!("pg_nango: sync e2e/records for connection progress-conn (job {job})")
        )]
    );

    // At its end: every record, and every request (four pages and four pauses).
    assert_eq!(
        client
            .query_one("SELECT nango.wait_for_job($1)", &[&job])
            .unwrap()
            .get::<_, String>(0),
        "SUCCESS"
    );
    let progress: Value = client
        .query_one("SELECT progress FROM nango.jobs WHERE id = $1", &[&job])
        .unwrap()
        .get(0);
    assert_eq!(progress["records"], json!({"Item": 40}), "{progress}");
    assert_eq!(progress["requests"], json!(8), "{progress}");
    let idle: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'pg_nango: sync e2e/records for connection progress-conn%' AND state = 'active'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(idle, 0, "the worker no longer shows the run once it ended");
}
