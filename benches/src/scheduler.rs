//! The scheduler at scale: 10,000 scheduled syncs cost the idle scheduler next to nothing, and each due
//! sync is queued and started within a second of its time.
//!
//! The connections of the small-syncs section are topped up to `total`, every one's `records` sync is
//! scheduled an hour ahead, and then:
//!
//! - **idle**: the scheduler's CPU time (user + system, from /proc) over a window where nothing is due,
//!   and the sequential scans of `nango.syncs` and `nango.jobs` the window saw (a tick must use indexes);
//! - **due**: `due` of those syncs are moved to points spread over the next `spread`, and each run's
//!   lateness is measured: queued and started against its planned time.

use std::time::Duration;

use pg_nango_e2e::Client;

/// How long the idle window lasts.
const IDLE_WINDOW: Duration = Duration::from_secs(20);

/// Tops the connections up to `total`, then prints the section.
pub fn scheduler_at_scale(client: &mut Client, existing: usize, total: usize) {
    let (due, spread) = (total / 5, Duration::from_secs(40));
    crate::small_syncs::create_connections(client, existing + 1, total);
    let scheduled = client
        .execute(
            "UPDATE nango.syncs s SET paused = false, next_run_at = now() + interval '1 hour'
             FROM nango.connections c, nango.sync_configs sc
             WHERE c.id = s.connection AND sc.id = s.sync_config AND sc.name = 'records' AND c.connection_id LIKE 'small-%'",
            &[],
        )
        .unwrap();
    client
        .batch_execute("ANALYZE nango.syncs; ANALYZE nango.jobs")
        .unwrap();
    println!("\n## The scheduler at scale ({scheduled} scheduled syncs)");

    let scans = |client: &mut Client| -> (i64, i64) {
        client
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .unwrap();
        let row = client
            .query_one(
                "SELECT (SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'nango.syncs'::regclass),
                        (SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'nango.jobs'::regclass)",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let scheduler: i32 = client
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_nango scheduler'",
            &[],
        )
        .unwrap()
        .get(0);
    // Statistics reach the views after a delay: let the setup's settle first.
    std::thread::sleep(Duration::from_secs(2));
    let (syncs_before, jobs_before) = scans(client);
    let cpu_before = cpu_seconds(scheduler);
    std::thread::sleep(IDLE_WINDOW);
    let cpu = cpu_seconds(scheduler) - cpu_before;
    std::thread::sleep(Duration::from_secs(1));
    let (syncs_after, jobs_after) = scans(client);
    println!(
        "idle: the scheduler used {:.2} s of CPU in {} s: {:.2} % of a core",
        cpu,
        IDLE_WINDOW.as_secs(),
        100.0 * cpu / IDLE_WINDOW.as_secs_f64()
    );
    println!(
        "sequential scans during the idle window: nango.syncs {}, nango.jobs {}",
        syncs_after - syncs_before,
        jobs_after - jobs_before
    );

    // Due syncs, spread over the next `spread`.
    client
        .batch_execute(&format!(
            "CREATE SCHEMA bench_scheduler;
             CREATE TABLE bench_scheduler.planned AS
             SELECT s.id AS sync, clock_timestamp() + interval '2 seconds'
                        + (row_number() OVER (ORDER BY s.id) - 1) * interval '{} milliseconds' AS due_at
             FROM nango.syncs s JOIN nango.sync_configs sc ON sc.id = s.sync_config
             WHERE sc.name = 'records' AND NOT s.paused ORDER BY s.id LIMIT {due};
             UPDATE nango.syncs s SET next_run_at = p.due_at FROM bench_scheduler.planned p WHERE p.sync = s.id;",
            spread.as_millis() as usize / due.max(1)
        ))
        .unwrap();
    std::thread::sleep(spread + Duration::from_secs(2));
    let mut waited = 0;
    loop {
        let active: i64 = client
            .query_one(
                "SELECT count(*) FROM bench_scheduler.planned p
                 WHERE NOT EXISTS (SELECT 1 FROM nango.jobs j WHERE j.sync = p.sync AND j.created_at >= p.due_at - interval '1 second'
                                   AND j.status NOT IN ('QUEUED', 'RUNNING'))",
                &[],
            )
            .unwrap()
            .get(0);
        if active == 0 || waited > 120 {
            break;
        }
        waited += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    let row = client
        .query_one(
            "WITH late AS (
                 SELECT extract(epoch FROM j.created_at - p.due_at) * 1000 AS queued,
                        extract(epoch FROM j.started_at - p.due_at) * 1000 AS started
                 FROM bench_scheduler.planned p JOIN nango.jobs j ON j.sync = p.sync AND j.created_at >= p.due_at - interval '1 second')
             SELECT count(*),
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY queued)::float8,
                    max(queued)::float8,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY started)::float8,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY started)::float8,
                    max(started)::float8
             FROM late",
            &[],
        )
        .unwrap();
    let ran: i64 = row.get(0);
    let ms = |i: usize| row.get::<_, Option<f64>>(i).unwrap_or(f64::NAN);
    println!(
        "due: {due} syncs due over {} s ({:.0}/s), {ran} ran; late by (ms) — queued: median {:.0}, max {:.0}; started: median {:.0}, p99 {:.0}, max {:.0}",
        spread.as_secs(),
        due as f64 / spread.as_secs_f64(),
        ms(1),
        ms(2),
        ms(3),
        ms(4),
        ms(5)
    );
}

/// User + system CPU seconds of a process so far (0 when it is gone).
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are the 14th and 15th fields of the line, the 12th and 13th after the command, in
    // clock ticks of USER_HZ, which Linux fixes at 100 for /proc.
    (ticks(11) + ticks(12)) / 100.0
}
