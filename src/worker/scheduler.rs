//! The scheduler: one static background worker, connected to `nango.database`.
//!
//! Its loop, top to bottom: wait on the latch (set at the commit of new work, see [`super::wake`]; at
//! most half a second, for due schedules and so barriers and `DROP DATABASE` are honoured)
//! → reload settings on SIGHUP → skip the pass if pg_nango is not installed in this database → end jobs
//! whose worker died (a crash, a `kill -9`, a restart) → queue a run for every due, unpaused sync that has
//! none queued or running (a tick during a run is skipped, not queued) and move its next run to the next
//! point of its schedule grid → start run workers while more jobs wait than idle workers can take and fewer
//! than `nango.max_concurrent_syncs` run workers are alive (each takes job after job from the queue, see
//! [`super::run`]) → once a minute (and after a reload), delete jobs and logs older than
//! `nango.job_retention` and merge old record marks. Each step is its own transaction; a failing step is
//! logged and the loop goes on.

use pg_nango_core::jobs::ErrorType;
use std::time::{Duration, Instant};

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BackgroundWorkerStatus, DynamicBackgroundWorker,
    SignalWakeFlags,
};
use pgrx::prelude::*;

use crate::guc;
use crate::store::{exec, one_json, own_row};
use crate::txn::run_txn;
use crate::worker::run::{harden_session, set_application_name};

/// How often expired jobs and logs are looked for (`nango.job_retention`).
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

/// Rows one cleanup transaction deletes at most, so it never holds many locks or a long transaction.
const CLEANUP_BATCH: i64 = 5000;

/// Registers the scheduler; called from `_PG_init` while the library is preloaded.
pub fn register() {
    BackgroundWorkerBuilder::new("pg_nango scheduler")
        .set_type("pg_nango scheduler")
        .set_library("pg_nango")
        .set_function("pg_nango_scheduler_main")
        .enable_spi_access()
        .set_start_time(pgrx::bgworkers::BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_nango_scheduler_main(_argument: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = guc::database();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    harden_session();
    set_application_name("pg_nango scheduler");
    log!("pg_nango scheduler started for database \"{database}\"");

    let mut launched: Vec<DynamicBackgroundWorker> = Vec::new();
    let mut last_cleanup: Option<Instant> = None;
    while BackgroundWorker::wait_latch(Some(Duration::from_millis(500))) {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            // nango.job_retention may have changed: apply it now rather than at the next cleanup.
            last_cleanup = None;
        }
        if !run_txn(installed).unwrap_or(false) {
            continue;
        }
        if let Err(error) = end_orphaned_jobs() {
            warning!("pg_nango scheduler: could not check running jobs: {error}");
        }
        if let Err(error) = run_txn(queue_due_syncs) {
            warning!("pg_nango scheduler: could not queue due syncs: {error}");
        }
        if let Err(error) = start_run_workers(&database, &mut launched) {
            warning!("pg_nango scheduler: could not start jobs: {error}");
        }
        if last_cleanup.is_none_or(|at| at.elapsed() >= CLEANUP_EVERY) {
            last_cleanup = Some(Instant::now());
            if let Err(error) = delete_expired_jobs() {
                warning!("pg_nango scheduler: could not delete expired jobs: {error}");
            }
            if let Err(error) = merge_record_marks() {
                warning!("pg_nango scheduler: could not merge record marks: {error}");
            }
        }
    }
    // Exit code 1: the postmaster starts the scheduler again after its restart time, so that a
    // `pg_terminate_backend` of it does not end scheduling for good; at shutdown nothing is restarted.
    log!("pg_nango scheduler stopped");
    unsafe { pg_sys::proc_exit(1) };
}

/// Whether the extension is installed here (the worker starts before `CREATE EXTENSION` and outlives `DROP`).
fn installed() -> Result<bool, String> {
    Ok(one_json(
        "SELECT to_jsonb(EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_nango'))",
        &[],
    )? == Some(serde_json::Value::Bool(true)))
}

/// Ends RUNNING jobs whose process is gone (killed, or the server restarted), with a failure notification.
fn end_orphaned_jobs() -> Result<(), String> {
    let orphans: serde_json::Value = run_txn(|| {
        own_row(
            "the running jobs without a process",
            one_json(
                // A process that started after the claim is another one that got the same pid.
                "SELECT coalesce(jsonb_agg(j.id), '[]') FROM nango.jobs j
                 WHERE j.status = 'RUNNING'
                   AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                                   WHERE a.pid = j.pid AND a.backend_start <= j.started_at)",
                &[],
            )?,
        )
    })?;
    for job_id in orphans
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_i64())
    {
        run_txn(|| {
            crate::store::jobs::finish_failure(
                job_id,
                ErrorType::WorkerCrashed,
                "the run's worker ended unexpectedly",
            )
        })?;
    }
    Ok(())
}

/// Queues a run for every due sync; moves its next run to the next point of its schedule grid.
///
/// The due rows are locked FOR NO KEY UPDATE, not FOR UPDATE: a `nango.trigger_sync` inserting a job for the
/// same sync holds its job row (the one-active index) while its foreign key takes KEY SHARE on the sync's
/// row; FOR UPDATE would wait for that insert while it waits for us, a deadlock.
fn queue_due_syncs() -> Result<(), String> {
    exec(
        // The jobs are queued, and so taken, interleaved: each connection's first due sync, then each
        // one's second, … and likewise across integrations, so that a connection or an integration with
        // many due syncs does not hold every worker while the others wait. Due rows are found through
        // `syncs_due`, never by a scan of all syncs.
        "WITH due AS (
             SELECT s.id, s.connection, s.next_run_at, sc.provider_config_key, sc.frequency, s.schedule_anchor
             FROM nango.syncs s
             JOIN nango.sync_configs sc ON sc.id = s.sync_config
             WHERE NOT s.paused AND s.next_run_at <= now()
             FOR NO KEY UPDATE OF s SKIP LOCKED),
         moved AS (
             UPDATE nango.syncs s
             SET next_run_at = d.schedule_anchor
                 + (floor(extract(epoch FROM now() - d.schedule_anchor) / extract(epoch FROM d.frequency)) + 1) * d.frequency
             FROM due d WHERE s.id = d.id
             RETURNING s.id)
         INSERT INTO nango.jobs (sync, integration, connection_id, sync_name)
         SELECT d.id, c.provider_config_key, c.connection_id, sc.name
         FROM moved m
         JOIN due d ON d.id = m.id
         JOIN nango.syncs s ON s.id = d.id
         JOIN nango.sync_configs sc ON sc.id = s.sync_config
         JOIN nango.connections c ON c.id = s.connection
         ORDER BY row_number() OVER (PARTITION BY d.connection ORDER BY d.next_run_at, d.id),
                  row_number() OVER (PARTITION BY d.provider_config_key ORDER BY d.next_run_at, d.id),
                  d.next_run_at, d.id
         ON CONFLICT (sync) WHERE status IN ('QUEUED', 'RUNNING') AND type <> 'WEBHOOK' DO NOTHING",
        &[],
    )
}

/// Starts run workers for the queued jobs that the idle ones cannot take, within
/// `nango.max_concurrent_syncs` run workers alive. `launched` holds the workers this scheduler started
/// that have not stopped; run workers it did not start (before a restart of the scheduler) are counted
/// from `pg_stat_activity`, where a worker the postmaster has not started yet is not.
fn start_run_workers(
    database: &str,
    launched: &mut Vec<DynamicBackgroundWorker>,
) -> Result<(), String> {
    launched.retain(|worker| {
        matches!(
            worker.pid(),
            Ok(_) | Err(BackgroundWorkerStatus::NotYetStarted)
        )
    });
    let state: serde_json::Value = run_txn(|| {
        own_row(
            "the queue's state",
            one_json(
                "SELECT jsonb_build_object(
                     'queued', (SELECT count(*) FROM nango.jobs WHERE status = 'QUEUED'),
                     'running', (SELECT count(*) FROM nango.jobs WHERE status = 'RUNNING'),
                     'workers', (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_nango run'))",
                &[],
            )?,
        )
    })?;
    let count = |key: &str| state[key].as_u64().unwrap_or(0) as usize;
    let alive = count("workers").max(launched.len());
    // Jobs of one-off workers count as running too: at worst a worker more is started than needed.
    let idle = alive.saturating_sub(count("running"));
    let allowed = (guc::MAX_CONCURRENT_SYNCS.get().max(1) as usize).saturating_sub(alive);
    let wanted = count("queued").saturating_sub(idle).min(allowed);
    for _ in 0..wanted {
        let worker = BackgroundWorkerBuilder::new("pg_nango run")
            .set_type("pg_nango run")
            .set_library("pg_nango")
            .set_function("pg_nango_run_worker_main")
            .enable_spi_access()
            .set_extra(database)
            .set_restart_time(None)
            .load_dynamic();
        match worker {
            Ok(worker) => launched.push(worker),
            Err(_) => {
                warning!(
                    "pg_nango scheduler: no background worker slot for a run worker; raise max_worker_processes"
                );
                break;
            }
        }
    }
    Ok(())
}

/// Merges the record marks (see `nango.record_marks`) older than an hour into hourly ones and those older
/// than a day into daily ones (hours and days of UTC, whatever the session's time zone), each step its own
/// transaction. A merged mark keeps the latest `until` of its marks (rounded up to its hour or day) and
/// their least cursor, so it still covers every write they did.
fn merge_record_marks() -> Result<(), String> {
    const MERGE_SQL: &str = "
        WITH merged AS (
            DELETE FROM nango.record_marks m
            WHERE m.until < now() - $2::interval AND m.until <> date_trunc($1, m.until, 'UTC')
            RETURNING m.model, m.until, m.after_cursor)
        INSERT INTO nango.record_marks AS m (model, until, after_cursor)
        SELECT model, date_trunc($1, until - interval '1 microsecond', 'UTC') + $2::interval, min(after_cursor)
        FROM merged GROUP BY 1, 2
        ON CONFLICT (model, until) DO UPDATE SET after_cursor = least(m.after_cursor, excluded.after_cursor)";
    for unit in ["hour", "day"] {
        run_txn(|| exec(MERGE_SQL, &[unit.into(), format!("1 {unit}").into()]))?;
    }
    Ok(())
}

/// Deletes finished jobs that ended more than `nango.job_retention` days ago, with their logs, and the logs
/// of actions and dry runs as old, in batches of [`CLEANUP_BATCH`] rows, each its own transaction. The last
/// finished job of each sync is kept, so `nango.sync_status` still shows how its last run ended.
fn delete_expired_jobs() -> Result<(), String> {
    let retention_secs = guc::job_retention().as_secs_f64();
    // Finished jobs past the retention, but each sync's last run of its own (not a webhook run), which
    // `nango.sync_status` shows ($1: the retention in seconds).
    let expired_jobs = "SELECT j.id FROM nango.jobs j
         WHERE j.status IN ('SUCCESS', 'ERROR', 'CANCELLED')
           AND j.ended_at < now() - make_interval(secs => $1)
           AND (j.sync IS NULL OR j.type = 'WEBHOOK' OR EXISTS (
                SELECT 1 FROM nango.jobs newer
                WHERE newer.sync = j.sync AND newer.id > j.id AND newer.type <> 'WEBHOOK'
                  AND newer.status IN ('SUCCESS', 'ERROR', 'CANCELLED')))";
    let steps = [
        // Logs of expired jobs first, so that deleting a job never cascades to an unbounded number of rows.
        format!(
            "WITH expired AS (SELECT l.id FROM nango.logs l WHERE l.job IN ({expired_jobs}) LIMIT $2)
             DELETE FROM nango.logs l USING expired e WHERE l.id = e.id RETURNING 1"
        ),
        format!(
            "WITH expired AS ({expired_jobs} AND NOT EXISTS (SELECT 1 FROM nango.logs l WHERE l.job = j.id) LIMIT $2)
             DELETE FROM nango.jobs j USING expired e WHERE j.id = e.id RETURNING 1"
        ),
        "WITH expired AS (
             SELECT l.id FROM nango.logs l
             WHERE l.job IS NULL AND l.time < now() - make_interval(secs => $1)
             LIMIT $2)
         DELETE FROM nango.logs l USING expired e WHERE l.id = e.id RETURNING 1"
            .to_string(),
    ];
    for sql in steps {
        // Each batch is its own transaction; stop after a bounded number of them per pass.
        for _ in 0..20 {
            let deleted = run_txn(|| {
                Spi::connect_mut(|client| {
                    client
                        .update(
                            sql.as_str(),
                            None,
                            &[retention_secs.into(), CLEANUP_BATCH.into()],
                        )
                        .map(|table| table.len() as i64)
                })
                .map_err(|e| e.to_string())
            })?;
            if deleted < CLEANUP_BATCH {
                break;
            }
        }
    }
    Ok(())
}
