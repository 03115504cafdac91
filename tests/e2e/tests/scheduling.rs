//! How runs are handed out: run workers that take job after job, the phases each run records, and due syncs
//! queued fairly across connections.

use std::time::{Duration, Instant};

use pg_nango_e2e::*;
use serde_json::{Value, json};

#[test]
fn runs_are_served_by_long_lived_workers_and_record_where_their_time_went() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "phases");
    let jobs: Vec<i64> = (0..6)
        .map(|i| {
            let steps = json!([{"save": [{"id": format!("p{i}"), "title": "t"}]}]);
            let (job, status) = run_steps(&mut client, "e2e", "phases", steps);
            assert_eq!(status, "SUCCESS");
            job
        })
        .collect();
    let pids: i64 = client
        .query_one(
            "SELECT count(DISTINCT pid) FROM nango.jobs WHERE id = ANY($1)",
            &[&jobs],
        )
        .unwrap()
        .get(0);
    let max: String = client
        .query_one("SHOW nango.max_concurrent_syncs", &[])
        .unwrap()
        .get(0);
    assert!(
        pids <= max.parse::<i64>().unwrap(),
        "6 runs one after another took {pids} worker processes"
    );
    for job in &jobs {
        let phases: Value = client
            .query_one("SELECT phases FROM nango.jobs WHERE id = $1", &[job])
            .unwrap()
            .get(0);
        for phase in ["wait", "claim", "start", "script"] {
            let ms = phases[phase].as_f64();
            assert!(
                ms.is_some_and(|ms| ms >= 0.0),
                "job {job}: phase {phase} in {phases}"
            );
        }
    }
    // Between runs a worker waits for the next job, and says so.
    let idle: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_nango run' AND application_name = 'pg_nango run (idle)'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(idle >= 1, "no idle run worker after the runs");
}

#[test]
fn due_syncs_of_a_big_connection_do_not_go_before_every_other_connections() {
    let mut client = connect();
    // The big connection is created first: its schedules are the oldest rows.
    for connection in ["fair-big", "fair-b", "fair-c"] {
        create_connection(&mut client, "e2e", connection);
    }
    let syncs: Vec<i64> = client
        .query(
            "SELECT s.id FROM nango.syncs s
             JOIN nango.connections c ON c.id = s.connection
             JOIN nango.sync_configs sc ON sc.id = s.sync_config
             WHERE (c.connection_id = 'fair-big' AND sc.name IN ('contacts', 'pages', 'records'))
                OR (c.connection_id IN ('fair-b', 'fair-c') AND sc.name = 'records')
             ORDER BY s.id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(syncs.len(), 5);
    // All due at once: one tick of the scheduler queues the five.
    client
        .execute(
            "UPDATE nango.syncs SET paused = false, next_run_at = now() - interval '1 second' WHERE id = ANY($1)",
            &[&syncs],
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let order: Vec<String> = loop {
        let queued: Vec<String> = client
            .query(
                "SELECT connection_id FROM nango.jobs WHERE sync = ANY($1) ORDER BY id",
                &[&syncs],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        if queued.len() == 5 {
            break queued;
        }
        assert!(
            Instant::now() < deadline,
            "the due syncs were not queued: {queued:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    client
        .execute(
            "UPDATE nango.syncs SET paused = true WHERE id = ANY($1)",
            &[&syncs],
        )
        .unwrap();
    assert_eq!(
        order,
        ["fair-big", "fair-b", "fair-c", "fair-big", "fair-big"],
        "each connection's first due sync is queued before any connection's second"
    );
}
