//! Waking the scheduler when there is work for it, instead of leaving it to its next timed pass.
//!
//! Statement triggers on `nango.jobs` and `nango.syncs` call [`wake_scheduler_at_commit`]: a queued job
//! (`trigger_sync`), a finished one (a slot is free) or a started schedule sets the scheduler's latch right
//! after the transaction commits, when the scheduler can see the change. Waking before the commit would let
//! it look too early and then sleep through the work.

use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::prelude::*;
use pgrx::{PgXactCallbackEvent, register_xact_callback};

/// Whether this transaction already asked for a wake-up (one is enough, however many rows it touched).
static ARMED: AtomicBool = AtomicBool::new(false);

/// Sets the scheduler's latch when the current transaction commits.
#[pg_extern(name = "_wake_scheduler_at_commit")]
#[search_path(pg_catalog, pg_temp)]
fn wake_scheduler_at_commit() {
    if ARMED.swap(true, Ordering::Relaxed) {
        return;
    }
    let scheduler = Spi::get_one::<i32>(
        "SELECT pid FROM pg_catalog.pg_stat_activity WHERE backend_type = 'pg_nango scheduler' LIMIT 1",
    )
    .ok()
    .flatten();
    // The scheduler's own writes need no wake-up: it acts on them in the same pass. Waking itself would
    // also make it spin, since statement triggers fire for statements that change no row.
    let scheduler = scheduler.filter(|pid| *pid != unsafe { pg_sys::MyProcPid });
    register_xact_callback(PgXactCallbackEvent::Commit, move || {
        ARMED.store(false, Ordering::Relaxed);
        if let Some(pid) = scheduler {
            set_latch_of(pid);
        }
    });
    register_xact_callback(PgXactCallbackEvent::Abort, || {
        ARMED.store(false, Ordering::Relaxed);
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
    PERFORM nango._wake_scheduler_at_commit();
    RETURN NULL;
END
$$;
CREATE TRIGGER wake_scheduler AFTER INSERT OR UPDATE OF status ON nango.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION nango._wake_scheduler();
CREATE TRIGGER wake_scheduler AFTER INSERT OR UPDATE OF paused, next_run_at ON nango.syncs
    FOR EACH STATEMENT EXECUTE FUNCTION nango._wake_scheduler();
"#,
    name = "wake_scheduler_triggers",
    requires = ["bootstrap", wake_scheduler_at_commit],
);
