//! The run worker: one dynamic background worker per sync run, started by the scheduler with the job id.
//!
//! Its whole life, top to bottom: connect → claim the job (QUEUED → RUNNING) and load the sync, connection,
//! provider and compiled code → run the script in a fresh QuickJS runtime on this thread (records, logs and
//! metadata through [`SpiHost`], each call its own short transaction) → end the job in one transaction with
//! its notifications → exit. A thrown error, an exceeded limit, a Postgres ERROR or a Rust panic in the run
//! ends the job as failed; the process then exits normally and is never restarted.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pg_nango_core::providers::oauth::OAuthClient;
use pg_nango_core::providers::{ConnectionInfo, Provider};
use pg_nango_core::script::{ScriptKind, ScriptRun, StoredModule, run_script};
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;

use crate::guc;
use crate::store::deletes;
use crate::store::host::SpiHost;
use crate::store::jobs::{self, ClaimedJob};
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
    run_job(job_id);
}

fn run_job(job_id: i64) {
    let job = match run_txn(|| jobs::claim(job_id)) {
        Ok(Some(job)) => job,
        Ok(None) => {
            if run_txn(|| jobs::held_by_this_process(job_id)).unwrap_or(false) {
                end_failed(
                    job_id,
                    "script_internal_error",
                    "the sync, its connection or its provider no longer exists",
                );
            }
            return;
        }
        Err(error) => {
            end_failed(
                job_id,
                "script_internal_error",
                &format!("could not load the job: {error}"),
            );
            return;
        }
    };
    set_application_name(&format!(
        "pg_nango {}/{} {}",
        job.provider_config_key, job.sync_name, job.connection_id
    ));

    let open_windows = run_txn(|| deletes::open_windows(job.sync_id)).unwrap_or_default();
    let host = Rc::new(RefCell::new(SpiHost {
        job_id,
        sync_id: job.sync_id,
        connection: job.connection,
        open_windows: open_windows.into_iter().collect(),
    }));
    let cancelled: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(|| {
        if BackgroundWorker::sigterm_received() {
            STOP_REQUESTED.store(true, Ordering::SeqCst);
        }
        STOP_REQUESTED.load(Ordering::SeqCst)
    });
    let script = script_run(&job);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_script(script, host, cancelled)
    }));
    match outcome {
        Ok(Ok(_)) => {
            if let Err(error) = run_txn(|| jobs::finish_success(&job)) {
                end_failed(
                    job_id,
                    "script_internal_error",
                    &format!("could not record the end of the run: {error}"),
                );
            }
        }
        Ok(Err(error)) => end_failed(job_id, error.error_type(), &error.message()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            end_failed(
                job_id,
                "script_internal_error",
                &format!("internal error: {message}"),
            );
        }
    }
}

fn script_run(job: &ClaimedJob) -> ScriptRun {
    let modules: HashMap<String, StoredModule> = job
        .files
        .as_ref()
        .and_then(|f| f.as_object())
        .map(|files| {
            files
                .iter()
                .map(|(path, file)| {
                    let js = file
                        .get("js")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string();
                    let source_map = file
                        .get("source_map")
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                    (path.clone(), StoredModule { js, source_map })
                })
                .collect()
        })
        .unwrap_or_default();
    let provider: Provider = serde_json::from_value(job.provider.clone()).unwrap_or_default();
    ScriptRun {
        kind: ScriptKind::Sync,
        entry: job.entry_file.clone(),
        modules: Rc::new(modules),
        provider_name: job.provider_name.clone(),
        provider,
        connection: ConnectionInfo {
            connection_id: job.connection_id.clone(),
            provider_config_key: job.provider_config_key.clone(),
            connection_config: job.connection_config.clone(),
            credentials: job.credentials.clone().unwrap_or_default(),
        },
        oauth_client: match (&job.client_id, &job.client_secret) {
            (Some(client_id), Some(client_secret)) => Some(OAuthClient {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            }),
            _ => None,
        },
        last_sync_date: job.last_sync_date.clone(),
        models: job.models.clone(),
        limits: guc::script_limits(false),
    }
}

/// Ends the job as failed; if even that transaction fails, logs it (the scheduler will find the job's
/// worker gone and end it).
fn end_failed(job_id: i64, error_type: &str, description: &str) {
    if let Err(error) = run_txn(|| jobs::finish_failure(job_id, error_type, description)) {
        warning!("pg_nango: could not end job {job_id}: {error}");
    }
}

/// Shows the run in `pg_stat_activity.application_name`.
pub fn set_application_name(name: &str) {
    let name = std::ffi::CString::new(name.replace('\0', "")).unwrap_or_default();
    unsafe { pg_sys::pgstat_report_appname(name.as_ptr()) };
}
