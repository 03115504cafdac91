//! The run worker: one dynamic background worker per sync run, started by the scheduler with the job id.
//!
//! Its whole life, top to bottom: connect → claim the job (QUEUED → RUNNING) and load the sync, connection,
//! provider and compiled code → run the script in a fresh QuickJS runtime on this thread (records, logs and
//! metadata through [`SpiHost`], each call its own short transaction) → end the job in one transaction with
//! its notifications → exit. A thrown error, an exceeded limit, a Postgres ERROR or a Rust panic in the run
//! ends the job as failed; the process then exits normally and is never restarted.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pg_nango_core::script::{Host, ScriptError, ScriptKind, ScriptRun, run_script};
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;

use crate::store::deletes;
use crate::store::host::SpiHost;
use crate::store::jobs;
use crate::txn::run_txn;

/// Set once SIGTERM (`nango.cancel_sync`, `pg_terminate_backend`, shutdown) has been received.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Entry point of the run worker; the job id comes as the worker's argument, the database as its extra.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_nango_run_worker_main(argument: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let job_id = argument.value() as i64;
    let database = BackgroundWorker::get_extra().to_string();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    harden_session();
    run_job(job_id);
}

/// Fixes this worker's `search_path` to `pg_catalog, pg_temp` for the rest of its life, over whatever the
/// database's or role's settings say: no name the worker's SQL uses can resolve to an object another role
/// created. Called right after connecting, by every pg_nango worker.
pub fn harden_session() {
    unsafe {
        pg_sys::SetConfigOption(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
        );
    }
}

fn run_job(job_id: i64) {
    if run_txn(|| jobs::job_type(job_id)).ok().flatten().as_deref() == Some("ON_EVENT") {
        super::on_event::run_queued(job_id);
        return;
    }
    let claimed = run_txn(|| jobs::claim(job_id));
    let gone = "the sync, its connection or its provider no longer exists";
    let Some(job) = claimed_or_ended(job_id, claimed, gone) else {
        return;
    };
    set_application_name(&format!(
        "pg_nango {}/{} {}",
        job.context.provider_config_key, job.sync_name, job.context.connection_id
    ));

    let open_windows = run_txn(|| deletes::open_windows(job.sync_id)).unwrap_or_default();
    let host = Rc::new(RefCell::new(SpiHost::for_job(
        job_id,
        job.sync_id,
        job.context.connection,
        open_windows,
    )));
    let kind = match (&job.payload, job.is_webhook()) {
        (_, false) => ScriptKind::Sync,
        (Some(payload), true) => ScriptKind::Webhook {
            payload_json: payload.clone(),
        },
        (None, true) => {
            end_failed(
                job_id,
                "script_internal_error",
                "the webhook's payload is gone (the run was queued before a restore?)",
            );
            return;
        }
    };
    let script = job.context.script_run(
        kind,
        &job.entry_file,
        job.models.clone(),
        job.last_sync_date.clone(),
    );
    let outcome = run_isolated(script, host.clone(), None);
    host.borrow_mut().finish();
    match outcome {
        Ok(_) => {
            if let Err(error) = run_txn(|| jobs::finish_success(&job)) {
                end_failed(
                    job_id,
                    "script_internal_error",
                    &format!("could not record the end of the run: {error}"),
                );
            }
        }
        Err(error) => end_failed(job_id, error.error_type(), &error.message()),
    }
}

/// What a claim of `job_id` loaded; `None` when there is nothing to run, after ending the job as failed if
/// this process holds it (`gone` says why) or could not load it.
pub fn claimed_or_ended<T>(
    job_id: i64,
    claimed: Result<Option<T>, String>,
    gone: &str,
) -> Option<T> {
    match claimed {
        Ok(Some(claimed)) => Some(claimed),
        Ok(None) => {
            if run_txn(|| jobs::held_by_this_process(job_id)).unwrap_or(false) {
                end_failed(job_id, "script_internal_error", gone);
            }
            None
        }
        Err(error) => {
            end_failed(
                job_id,
                "script_internal_error",
                &format!("could not load the job: {error}"),
            );
            None
        }
    }
}

/// Runs a script on this thread, stopping it when SIGTERM arrives or `also_stop` says so; a Rust panic
/// becomes an internal error.
pub fn run_isolated(
    script: ScriptRun,
    host: Rc<RefCell<dyn Host>>,
    also_stop: Option<fn() -> bool>,
) -> Result<Option<serde_json::Value>, ScriptError> {
    let cancelled: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(move || {
        if BackgroundWorker::sigterm_received() || also_stop.is_some_and(|stop| stop()) {
            STOP_REQUESTED.store(true, Ordering::SeqCst);
        }
        STOP_REQUESTED.load(Ordering::SeqCst)
    });
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_script(script, host, cancelled)
    }))
    .unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Err(ScriptError::Setup(format!("internal error: {message}")))
    })
}

/// Whether this worker was told to stop (SIGTERM, or `also_stop` of [`run_isolated`]).
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst) || BackgroundWorker::sigterm_received()
}

/// Ends the job as failed; if even that transaction fails, logs it (the scheduler will find the job's
/// worker gone and end it).
pub fn end_failed(job_id: i64, error_type: &str, description: &str) {
    if let Err(error) = run_txn(|| jobs::finish_failure(job_id, error_type, description)) {
        warning!("pg_nango: could not end job {job_id}: {error}");
    }
}

/// Shows the run in `pg_stat_activity.application_name`.
pub fn set_application_name(name: &str) {
    let name = std::ffi::CString::new(name.replace('\0', "")).unwrap_or_default();
    unsafe { pg_sys::pgstat_report_appname(name.as_ptr()) };
}
