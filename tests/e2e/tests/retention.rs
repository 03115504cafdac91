//! Bounded growth: `nango.max_logs_per_run` caps the log rows of one run (one row then says how many were
//! dropped, and the run goes on), log payloads are capped, and `nango.job_retention` makes the scheduler
//! delete old finished jobs and their logs.

use std::time::{Duration, Instant};

use pg_nango_e2e::*;
use serde_json::json;

#[test]
fn a_run_past_the_log_limit_keeps_going_and_says_how_many_lines_it_dropped() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "log-limit");
    set_server_setting(&mut client, "nango.max_logs_per_run = 5");
    // 1 line for the lastSyncDate, then one line per batch: 21 lines in all.
    let steps: Vec<_> = (0..20)
        .map(|i| json!({"save": [{"id": format!("r{i}"), "title": "t"}]}))
        .collect();
    let (job, status) = run_steps(&mut client, "e2e", "log-limit", json!(steps));
    set_server_setting(&mut client, "nango.max_logs_per_run = 10000");
    assert_eq!(status, "SUCCESS");
    assert_eq!(record_ids(&mut client, "Item", "log-limit").len(), 20);
    let logs = job_logs(&mut client, job);
    assert_eq!(logs.len(), 6, "{logs:?}");
    assert_eq!(logs[0].1, "lastSyncDate");
    let (level, message, payload) = &logs[5];
    assert_eq!(level, "warn");
    assert_eq!(
        message,
        "16 log lines of this run were dropped (nango.max_logs_per_run = 5)"
    );
    assert_eq!(payload.as_ref(), Some(&json!({"dropped": 16})));
}

#[test]
fn finished_jobs_past_the_retention_are_deleted_with_their_logs_but_each_syncs_last_one_stays() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "retention");
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let (job, status) = run_steps(&mut client, "e2e", "retention", json!([]));
        assert_eq!(status, "SUCCESS");
        jobs.push(job);
    }
    client
        .batch_execute(
            "INSERT INTO nango.logs (job, run, level, message, time)
             VALUES (NULL, 'action e2e/create-ticket retention', 'info', 'old action line', now() - interval '3 days'),
                    (NULL, 'action e2e/create-ticket retention', 'info', 'new action line', now())",
        )
        .unwrap();
    // The first two jobs, and the last one, ended long ago.
    client
        .execute(
            "UPDATE nango.jobs SET ended_at = now() - interval '3 days' WHERE id = ANY($1)",
            &[&jobs],
        )
        .unwrap();
    assert!(!job_logs(&mut client, jobs[0]).is_empty());
    set_server_setting(&mut client, "nango.job_retention = 2");

    let deadline = Instant::now() + Duration::from_secs(30);
    let remaining = loop {
        let remaining: Vec<i64> = client
            .query(
                "SELECT id FROM nango.jobs WHERE id = ANY($1) ORDER BY id",
                &[&jobs],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        if remaining.len() < 3 || Instant::now() > deadline {
            break remaining;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    set_server_setting(&mut client, "nango.job_retention = 30");
    // The sync's last finished job stays, however old, so sync_status still shows its last run.
    assert_eq!(remaining, vec![jobs[2]]);
    assert!(job_logs(&mut client, jobs[0]).is_empty());
    assert!(job_logs(&mut client, jobs[1]).is_empty());
    assert!(!job_logs(&mut client, jobs[2]).is_empty());
    let action_lines: Vec<String> = client
        .query(
            "SELECT message FROM nango.logs WHERE run = 'action e2e/create-ticket retention' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(action_lines, vec!["new action line".to_string()]);
    let status: String = client
        .query_one(
            "SELECT last_job_status FROM nango.sync_status WHERE connection_id = 'retention' AND sync = 'records'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(status, "SUCCESS");
}
