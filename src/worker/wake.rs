//! Waking the scheduler when there is work for it, instead of leaving it to its next timed pass.
//!
//! Statement triggers on `nango.jobs` and `nango.syncs` call [`wake_scheduler_at_commit`]: a queued job
//! (`trigger_sync`, a tick of the scheduler) sets the latches of the run workers and of the scheduler, a
//! started or moved schedule the scheduler's, right after the transaction commits, when they can see the
//! change. Waking before the commit would let
//! it look too early and then sleep through the work.

use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::prelude::*;
use pgrx::{PgXactCallbackEvent, register_xact_callback};

/// Whether this transaction already asked for a wake-up of the scheduler, and of the run workers (one
/// each is enough, however many rows it touched).
static SCHEDULER_ARMED: AtomicBool = AtomicBool::new(false);
static RUN_WORKERS_ARMED: AtomicBool = AtomicBool::new(false);

/// Sets the scheduler's latch when the current transaction commits, and with `run_workers` the latches of
/// the run workers too, so that an idle one takes a queued job at once.
#[pg_extern(name = "_wake_scheduler_at_commit")]
#[search_path(pg_catalog, pg_temp)]
fn wake_scheduler_at_commit(run_workers: bool) {
    let (armed, backend_type) = if run_workers {
        (&RUN_WORKERS_ARMED, "pg_nango run")
    } else {
        (&SCHEDULER_ARMED, "pg_nango scheduler")
    };
    if armed.swap(true, Ordering::Relaxed) {
        return;
    }
    let me = unsafe { pg_sys::MyProcPid };
    let pids: Vec<i32> = Spi::get_one_with_args::<Vec<i32>>(
        "SELECT coalesce(array_agg(pid), '{}') FROM pg_catalog.pg_stat_activity WHERE backend_type = $1",
        &[backend_type.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default()
    .into_iter()
    // A worker's own writes need no wake-up: it acts on them in the same pass. Waking itself would also
    // make the scheduler spin, since statement triggers fire for statements that change no row.
    .filter(|pid| *pid != me)
    .collect();
    register_xact_callback(PgXactCallbackEvent::Commit, move || {
        armed.store(false, Ordering::Relaxed);
        for pid in &pids {
            set_latch_of(*pid);
        }
    });
    register_xact_callback(PgXactCallbackEvent::Abort, move || {
        armed.store(false, Ordering::Relaxed);
    });
}

/// Sets the process latch of backend `pid`, if it still exists. A recycled pid only costs that process a
/// spurious wake-up, which every latch waiter tolerates.
fn set_latch_of(pid: i32) {
    unsafe {
        let process = pg_sys::BackendPidGetProc(pid);
        if !process.is_null() {
            pg_sys::SetLatch(&mut (*process).procLatch);
        }
    }
}

extension_sql!(
    r#"
CREATE FUNCTION nango._wake_scheduler() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- A queued job: an idle run worker takes it, or the scheduler starts one.
    IF TG_TABLE_NAME = 'jobs' THEN
        PERFORM nango._wake_scheduler_at_commit(true);
    END IF;
    PERFORM nango._wake_scheduler_at_commit(false);
    RETURN NULL;
END
$$;
CREATE TRIGGER wake_scheduler AFTER INSERT ON nango.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION nango._wake_scheduler();
CREATE TRIGGER wake_scheduler AFTER INSERT OR UPDATE OF paused, next_run_at ON nango.syncs
    FOR EACH STATEMENT EXECUTE FUNCTION nango._wake_scheduler();
"#,
    name = "wake_scheduler_triggers",
    requires = ["bootstrap", wake_scheduler_at_commit],
);
