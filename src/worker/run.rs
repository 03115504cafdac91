//! The run worker: a dynamic background worker that runs queued jobs one after another, started by the
//! scheduler while jobs wait and fewer than `nango.max_concurrent_syncs` run workers are alive.
//!
//! Its whole life, top to bottom: connect → loop { take the oldest queued job (QUEUED → RUNNING, locked
//! with SKIP LOCKED so two workers never take the same one) and load its sync, connection, provider and
//! compiled code → run the script in a fresh QuickJS runtime on this thread (records, logs and metadata
//! through [`SpiHost`], each call its own short transaction) → end the job in one transaction with its
//! notifications → reload the settings if they changed } → exit once no job came for [`IDLE_EXIT`], or
//! after a SIGTERM. A thrown error, an exceeded limit, a Postgres ERROR or a Rust panic in a run ends that
//! job as failed and the worker goes on with the next; nothing of a run outlives it but the warm caches
//! of the process (catalog, plans), which is what makes the next run cheap.
//!
//! A SIGTERM (`nango.cancel_sync`, `pg_terminate_backend`, shutdown) stops the current run, which ends
//! CANCELLED, and the worker. `nango.cancel_sync` signals a worker only while holding its job's row lock
//! with the job RUNNING, and a worker ends a job under that lock, so the signal always meets the job it
//! was meant for: a worker that got it never takes another job.

use pg_nango_core::jobs::ErrorType;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use pg_nango_core::script::{Host, ScriptError, ScriptKind, ScriptRun, internal_error, run_script};
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;

use crate::store::deletes;
use crate::store::host::SpiHost;
use crate::store::jobs::{self, NextJob};
use crate::txn::run_txn;

/// A worker with no job to take for this long exits, giving its slot back (and letting `DROP DATABASE`
/// through).
pub const IDLE_EXIT: Duration = Duration::from_secs(30);

/// How long an idle worker sleeps between looks at the queue when nothing wakes it (a job's queueing
/// sets its latch at commit, see [`super::wake`]).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Set once SIGTERM (`nango.cancel_sync`, `pg_terminate_backend`, shutdown) has been received.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Entry point of the run worker; the database comes as the worker's extra.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_nango_run_worker_main(_argument: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = BackgroundWorker::get_extra().to_string();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    harden_session();
    set_application_name("pg_nango run (idle)");
    let mut first_of_worker = true;
    let mut idle_since = Instant::now();
    while !stop_requested() {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let phases = Phases::begin(first_of_worker);
        match run_txn(jobs::next_queued) {
            Ok(Some(next)) => {
                first_of_worker = false;
                run_job(next, phases);
                set_application_name("pg_nango run (idle)");
                report_activity(None);
                idle_since = Instant::now();
            }
            Ok(None) => {
                if idle_since.elapsed() >= IDLE_EXIT
                    || !BackgroundWorker::wait_latch(Some(IDLE_POLL))
                {
                    break;
                }
            }
            Err(error) => {
                // The extension dropped, the database going away: the scheduler starts workers again
                // when there is work.
                log!("pg_nango run worker: could not take a job, exiting: {error}");
                break;
            }
        }
    }
}

/// Fixes this worker's `search_path` to `pg_catalog, pg_temp` and its isolation level to read committed for
/// the rest of its life, over whatever the database's or role's settings say: no name the worker's SQL uses
/// can resolve to an object another role created. Called right after connecting, by every pg_nango worker.
pub fn harden_session() {
    // Read committed, whatever the database's or role's default: a write reads what the writers before it
    // committed while it waited for the model's lock (see `store::records::lock_model`).
    for (name, value) in [
        (c"search_path", c"pg_catalog, pg_temp"),
        (c"default_transaction_isolation", c"read committed"),
    ] {
        unsafe {
            pg_sys::SetConfigOption(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_SUSET,
                pg_sys::GucSource::PGC_S_OVERRIDE,
            );
        }
    }
}

/// Runs one job taken from the queue and ends it.
fn run_job(next: NextJob, mut phases: Phases) {
    let job_id = match next {
        NextJob::OnEvent(job_id) => {
            super::on_event::run_queued(job_id);
            return;
        }
        NextJob::Sync(job_id) => job_id,
    };
    let claimed = run_txn(|| jobs::claim(job_id));
    let gone = "the sync, its connection or its provider no longer exists";
    let Some(job) = claimed_or_ended(job_id, claimed, gone) else {
        return;
    };
    phases.claimed = Some(Instant::now());
    set_application_name(&format!(
        "pg_nango {}/{} {}",
        job.context.provider_config_key, job.sync_name, job.context.connection_id
    ));
    report_activity(Some(&format!(
        "pg_nango: sync {}/{} for connection {} (job {job_id})",
        job.context.provider_config_key, job.sync_name, job.context.connection_id
    )));

    let open_windows = match run_txn(|| deletes::open_windows(job.sync_id)) {
        Ok(models) => models,
        Err(error) => {
            end_failed(
                job_id,
                ErrorType::Internal,
                &format!("could not read the sync's deletion windows: {error}"),
            );
            return;
        }
    };
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
                ErrorType::Internal,
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
    phases.script_started = host.borrow().script_started_at;
    phases.script_ended = Some(Instant::now());
    host.borrow_mut().finish();
    let requests = host.borrow().requests;
    let (phases, claim_started) = (phases.to_json(), phases.claim_started_epoch());
    match outcome {
        Ok(_) => {
            let ended = run_txn(|| {
                jobs::record_phases(job_id, &phases, claim_started, requests)?;
                jobs::finish_success(&job)
            });
            if let Err(error) = ended {
                end_failed(
                    job_id,
                    ErrorType::Internal,
                    &format!("could not record the end of the run: {error}"),
                );
            }
        }
        Err(error) => {
            let ended = run_txn(|| {
                jobs::record_phases(job_id, &phases, claim_started, requests)?;
                jobs::finish_failure(job_id, error.error_type(), &error.message())
            });
            if ended.is_err() {
                end_failed(job_id, error.error_type(), &error.message());
            }
        }
    }
}

/// When each phase of a run began, for `nango.jobs.phases`.
struct Phases {
    /// The worker process's start, on its first run.
    worker_started: Option<SystemTime>,
    claim_started: SystemTime,
    claim_started_at: Instant,
    claimed: Option<Instant>,
    script_started: Option<Instant>,
    script_ended: Option<Instant>,
}

impl Phases {
    /// Phases of a run whose claim begins now; `first_of_worker` counts the worker's start in.
    fn begin(first_of_worker: bool) -> Phases {
        // MyStartTimestamp: microseconds since 2000-01-01, Postgres's epoch.
        let postgres_epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800);
        let started_micros = unsafe { pg_sys::MyStartTimestamp };
        Phases {
            worker_started: (first_of_worker && started_micros > 0)
                .then(|| postgres_epoch + Duration::from_micros(started_micros as u64)),
            claim_started: SystemTime::now(),
            claim_started_at: Instant::now(),
            claimed: None,
            script_started: None,
            script_ended: None,
        }
    }

    /// When the claim began, in seconds since the Unix epoch: the end of the job's wait.
    fn claim_started_epoch(&self) -> f64 {
        self.claim_started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    }

    /// Milliseconds per phase the worker measured (the wait is measured against the job's row).
    fn to_json(&self) -> serde_json::Value {
        let ms = |from: Option<Instant>, to: Option<Instant>| match (from, to) {
            (Some(from), Some(to)) => {
                serde_json::json!(round_ms(to.saturating_duration_since(from)))
            }
            _ => serde_json::Value::Null,
        };
        let connect = self.worker_started.map(|started| {
            round_ms(
                self.claim_started
                    .duration_since(started)
                    .unwrap_or_default(),
            )
        });
        serde_json::json!({
            "connect": connect,
            "claim": ms(Some(self.claim_started_at), self.claimed),
            "start": ms(self.claimed, self.script_started),
            "script": ms(self.script_started, self.script_ended),
        })
    }
}

fn round_ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
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
                end_failed(job_id, ErrorType::Internal, gone);
            }
            None
        }
        Err(error) => {
            end_failed(
                job_id,
                ErrorType::Internal,
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
    .unwrap_or_else(|panic| Err(internal_error(panic)))
}

/// Whether this worker was told to stop (SIGTERM, or `also_stop` of [`run_isolated`]).
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst) || BackgroundWorker::sigterm_received()
}

/// Ends the job as failed; if even that transaction fails, logs it (the scheduler will find the job's
/// worker gone and end it).
pub fn end_failed(job_id: i64, error_type: ErrorType, description: &str) {
    if let Err(error) = run_txn(|| jobs::finish_failure(job_id, error_type, description)) {
        warning!("pg_nango: could not end job {job_id}: {error}");
    }
}

/// Shows what the worker runs in `pg_stat_activity` (`state` active, `query` the text, `query_start` now), or
/// that it is idle. The text names the run, never its credentials.
pub fn report_activity(running: Option<&str>) {
    match running {
        Some(text) => {
            let text = c_text(text);
            // SAFETY: pgstat copies the text into the backend's status entry.
            unsafe {
                pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, text.as_ptr())
            };
        }
        // SAFETY: as above; an idle state has no text.
        None => unsafe {
            pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null())
        },
    }
}

/// Shows the run in `pg_stat_activity.application_name`.
pub fn set_application_name(name: &str) {
    let name = c_text(name);
    unsafe { pg_sys::pgstat_report_appname(name.as_ptr()) };
}

/// `text` for pgstat, which takes a C string: without the NULs it cannot hold.
fn c_text(text: &str) -> std::ffi::CString {
    std::ffi::CString::new(text.replace('\0', "")).unwrap_or_default()
}
