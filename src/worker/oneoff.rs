//! One-off runs for a SQL caller: `nango.trigger_action` and `nango.dryrun`.
//!
//! The script runs in its own dynamic background worker, as a sync run does, not in the caller's backend:
//! a token refreshed during the run is committed at once (a caller that then rolls back, e.g. because the
//! action threw `ActionError`, must not lose a rotated refresh token), the run has its own time and memory
//! limits, and a crash of the engine cannot take the caller's session with it.
//!
//! The caller hands the request over in a file under the data directory (`pg_nango/oneoff-<id>.request.json`,
//! readable by the server's OS user only), because the worker cannot see the caller's uncommitted rows,
//! starts the worker, waits for it to exit, and reads `…response.json`. The id is random and the files are
//! created exclusively (O_EXCL), so no file planted in advance is ever read or overwritten; the request
//! carries a random nonce that the answer must echo. Files left by a crash are removed after an hour. If
//! the caller is cancelled while waiting, it stops the worker; if it is terminated, the worker notices
//! that its caller is gone and stops itself.

use pg_nango_core::jobs::ErrorType;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pg_nango_core::script::{ScriptError, ScriptKind};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::store::host::SpiHost;
use crate::store::jobs::ScriptContext;
use crate::store::one_json;
use crate::txn::run_txn;
use crate::worker::run::{harden_session, run_isolated, set_application_name, stop_requested};

/// What a caller asks a one-off worker to run.
#[derive(Debug, Serialize, Deserialize)]
pub struct OneOffRequest {
    /// `action`, `dryrun`, `on-event` (an on-event script of a stored connection) or `validate-connection`
    /// (a validate-connection script of the connection in `connection`).
    pub kind: String,
    pub integration: String,
    pub connection_id: String,
    /// The action's or the sync's name.
    pub name: String,
    /// An action's input as JSON text, passed to the script unparsed (keys in their order).
    pub input: Option<String>,
    pub last_sync_date: Option<String>,
    /// A connection that is not stored yet (`validate-connection`): credentials, connection_config, metadata.
    #[serde(default)]
    pub connection: Option<Value>,
}

/// How a one-off run ended.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OneOffResponse {
    Output {
        output: Value,
    },
    Failed {
        error_type: ErrorType,
        message: String,
        payload: Option<Value>,
    },
}

/// Where hand-over files live, relative to the data directory (the server's working directory).
const HANDOVER_DIR: &str = "pg_nango";

/// Hand-over files older than this are left over from a crash or a killed caller and are removed.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A request's id names its files (`pg_nango/oneoff-<id>.request.json`); random, so no other process can
/// guess it and plant or read a file in its place.
fn request_path(id: i64) -> PathBuf {
    PathBuf::from(format!("{HANDOVER_DIR}/oneoff-{id:016x}.request.json"))
}

fn response_path(id: i64) -> PathBuf {
    PathBuf::from(format!("{HANDOVER_DIR}/oneoff-{id:016x}.response.json"))
}

/// `N` random bytes from the kernel.
fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    use std::io::Read;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Writes a file only the server's OS user can read, failing if the name exists (O_CREAT | O_EXCL): a file
/// planted under that name is never used nor overwritten. It appears whole, through a rename.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)?;
    let written = file.write_all(contents.as_bytes()).and_then(|_| {
        if path.exists() {
            Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ))
        } else {
            std::fs::rename(&partial, path)
        }
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Removes hand-over files left behind by runs that ended without cleaning up (a crash, a killed caller).
fn remove_stale_files() {
    let Ok(entries) = std::fs::read_dir(HANDOVER_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        let ours = entry.file_name().to_string_lossy().starts_with("oneoff-");
        if stale && ours {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Runs `request` in a one-off worker and waits for its answer. Called from a SQL function.
pub fn run_in_worker(request: &OneOffRequest) -> OneOffResponse {
    remove_stale_files();
    let pid = unsafe { pg_sys::MyProcPid };
    let (id, nonce) = match (random_bytes::<8>(), random_bytes::<16>()) {
        // Positive, so it travels unchanged as the worker's Datum argument.
        (Ok(id), Ok(nonce)) => (
            i64::from_ne_bytes(id) & i64::MAX,
            nonce.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        ),
        _ => ApiError::internal("could not read random bytes for the run's hand-over").raise(),
    };
    let envelope = Envelope {
        nonce: nonce.clone(),
        body: serde_json::to_value(request).unwrap_or_default(),
    };
    let text = serde_json::to_string(&envelope).unwrap_or_default();
    if let Err(error) = create_handover_dir().and_then(|_| write_private(&request_path(id), &text))
    {
        ApiError::internal(format!("could not hand the run over to a worker: {error}")).raise();
    }
    let cleanup = move || {
        let _ = std::fs::remove_file(request_path(id));
        let _ = std::fs::remove_file(response_path(id));
    };
    let database = Spi::get_one::<String>("SELECT current_database()::text")
        .ok()
        .flatten()
        .unwrap_or_default();
    let worker =
        BackgroundWorkerBuilder::new(&format!("pg_nango {} {}", request.kind, request.name))
            .set_type("pg_nango one-off run")
            .set_library("pg_nango")
            .set_function("pg_nango_oneoff_worker_main")
            .enable_spi_access()
            .set_argument(Some(pg_sys::Datum::from(id)))
            .set_extra(&database)
            .set_notify_pid(pid)
            .set_restart_time(None)
            .load_dynamic();
    let worker = match worker {
        Ok(worker) => worker,
        Err(_) => {
            cleanup();
            ApiError::no_capacity("no background worker slot for the run")
                .hint("Raise max_worker_processes (a restart is needed), or wait for running work to end.")
                .raise();
        }
    };
    let worker_pid = worker.wait_for_startup().ok();
    PgTryBuilder::new(std::panic::AssertUnwindSafe(|| worker.wait_for_shutdown()))
        .catch_others(|caught| {
            // The caller was cancelled (or failed) while waiting: stop the run too. A caller that is
            // terminated instead never gets here; its worker notices that it is gone (`caller_gone`).
            if let Some(worker_pid) = worker_pid {
                unsafe { libc::kill(worker_pid, libc::SIGTERM) };
            }
            cleanup();
            caught.rethrow()
        })
        .execute()
        .ok();
    let response = std::fs::read_to_string(response_path(id));
    cleanup();
    let answer = response
        .ok()
        .and_then(|t| serde_json::from_str::<Envelope>(&t).ok())
        .filter(|envelope| envelope.nonce == nonce)
        .and_then(|envelope| serde_json::from_value(envelope.body).ok());
    match answer {
        Some(response) => response,
        None => OneOffResponse::Failed {
            error_type: ErrorType::Internal,
            message: "the run's worker ended without an answer: it was stopped, or it failed (see the server log)".into(),
            payload: None,
        },
    }
}

/// A request or response as written to its file: the body with the caller's nonce, which the worker
/// echoes, so the caller only takes an answer written for its own request.
#[derive(Serialize, Deserialize)]
struct Envelope {
    nonce: String,
    body: Value,
}

fn create_handover_dir() -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(HANDOVER_DIR) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// True once the backend that started this worker (and waits for it) has exited: a caller terminated
/// while waiting cannot stop its worker itself. Checked at most every 100 ms.
pub fn caller_gone() -> bool {
    static LAST_CHECK_MS: AtomicU64 = AtomicU64::new(0);
    static START: OnceLock<Instant> = OnceLock::new();
    let now = START.get_or_init(Instant::now).elapsed().as_millis() as u64;
    if now.saturating_sub(LAST_CHECK_MS.load(Ordering::Relaxed)) < 100 {
        return false;
    }
    LAST_CHECK_MS.store(now, Ordering::Relaxed);
    caller_exited()
}

/// True when the backend that started this worker has exited.
fn caller_exited() -> bool {
    let caller = unsafe {
        pg_sys::MyBgworkerEntry
            .as_ref()
            .map_or(0, |entry| entry.bgw_notify_pid)
    };
    caller > 0
        && unsafe { libc::kill(caller, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Entry point of a one-off worker: the request id comes as its argument, the database as its extra.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_nango_oneoff_worker_main(argument: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let id = argument.value() as i64;
    let database = BackgroundWorker::get_extra().to_string();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    harden_session();
    let envelope = std::fs::read_to_string(request_path(id))
        .map_err(|error| format!("no request: {error}"))
        .and_then(|text| {
            serde_json::from_str::<Envelope>(&text).map_err(|e| format!("unreadable request: {e}"))
        });
    let _ = std::fs::remove_file(request_path(id));
    let (nonce, response) = match envelope {
        Ok(envelope) => {
            let response = match serde_json::from_value::<OneOffRequest>(envelope.body) {
                Ok(request) => serve(&request),
                Err(error) => failed(ErrorType::Internal, format!("unreadable request: {error}")),
            };
            (envelope.nonce, response)
        }
        Err(message) => (String::new(), failed(ErrorType::Internal, message)),
    };
    if caller_exited() || stop_requested() {
        // Nobody is left to read the answer (or remove its file): the caller is gone, or it was cancelled
        // and stopped this worker; a worker stopped by anyone else leaves its caller "without an answer".
        return;
    }
    let answer = Envelope {
        nonce,
        body: serde_json::to_value(&response).unwrap_or_default(),
    };
    if let Err(error) = write_private(
        &response_path(id),
        &serde_json::to_string(&answer).unwrap_or_default(),
    ) {
        warning!("pg_nango: could not answer one-off run {id:016x}: {error}");
    }
}

pub fn failed(error_type: ErrorType, message: String) -> OneOffResponse {
    OneOffResponse::Failed {
        error_type,
        message,
        payload: None,
    }
}

/// What a one-off run needs: the script and its settings, and the connection's context.
#[derive(Deserialize)]
struct Loaded {
    entry_file: String,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    sync_id: Option<i64>,
    #[serde(flatten)]
    context: ScriptContext,
}

fn load(request: &OneOffRequest) -> Result<Option<Loaded>, String> {
    let sql = if request.kind == "action" {
        "SELECT jsonb_build_object('entry_file', ac.entry_file) || nango._script_context(c.id)
         FROM nango.action_configs ac
         JOIN nango.connections c ON c.provider_config_key = ac.provider_config_key
         WHERE ac.provider_config_key = $1 AND ac.name = $2 AND c.connection_id = $3"
    } else {
        "SELECT jsonb_build_object('entry_file', sc.entry_file, 'models', to_jsonb(sc.models), 'sync_id', s.id)
                || nango._script_context(c.id)
         FROM nango.sync_configs sc
         JOIN nango.connections c ON c.provider_config_key = sc.provider_config_key
         LEFT JOIN nango.syncs s ON s.sync_config = sc.id AND s.connection = c.id
         WHERE sc.provider_config_key = $1 AND sc.name = $2 AND c.connection_id = $3"
    };
    let loaded = run_txn(|| {
        one_json(
            sql,
            &[
                request.integration.as_str().into(),
                request.name.as_str().into(),
                request.connection_id.as_str().into(),
            ],
        )
    })?;
    loaded
        .map(|value| serde_json::from_value(value).map_err(|e| e.to_string()))
        .transpose()
}

/// Names the run (`action github/write-file acme`, also in `pg_stat_activity`) and loads what it needs with
/// `load`; the answer to send instead when that is not found or fails.
pub fn start_request<T>(
    request: &OneOffRequest,
    load: impl FnOnce(&OneOffRequest) -> Result<Option<T>, String>,
) -> Result<(String, T), OneOffResponse> {
    let label = format!(
        "{} {}/{} {}",
        request.kind, request.integration, request.name, request.connection_id
    );
    set_application_name(&format!("pg_nango {label}"));
    match load(request) {
        Ok(Some(loaded)) => Ok((label, loaded)),
        Ok(None) => Err(failed(
            ErrorType::Internal,
            format!("{label}: not found among committed data (the run happens in another session)"),
        )),
        Err(error) => Err(failed(
            ErrorType::Internal,
            format!("could not load {label}: {error}"),
        )),
    }
}

fn serve(request: &OneOffRequest) -> OneOffResponse {
    if matches!(request.kind.as_str(), "on-event" | "validate-connection") {
        return super::on_event::serve(request);
    }
    let (label, loaded) = match start_request(request, load) {
        Ok(started) => started,
        Err(response) => return response,
    };
    let dry_run = request.kind != "action";
    let kind = if dry_run {
        ScriptKind::Sync
    } else {
        ScriptKind::Action {
            input_json: request.input.clone(),
        }
    };
    let script = loaded.context.script_run(
        kind,
        &loaded.entry_file,
        loaded.models.clone(),
        request.last_sync_date.clone(),
    );
    let host = Rc::new(RefCell::new(SpiHost {
        job_id: None,
        run_label: Some(label),
        sync_id: loaded.sync_id.unwrap_or(0),
        connection: loaded.context.connection,
        open_windows: Default::default(),
        changing: Default::default(),
        dry_run: dry_run.then(BTreeMap::new),
        logs: Default::default(),
        fresh: Default::default(),
        merging: Default::default(),
        script_started_at: None,
        requests: 0,
    }));
    let outcome = run_isolated(script, host.clone(), Some(caller_gone));
    host.borrow_mut().finish();
    match outcome {
        Ok(_) if dry_run => {
            let collected = host.borrow_mut().take_dry_run();
            OneOffResponse::Output {
                output: json!(collected),
            }
        }
        Ok(output) => OneOffResponse::Output {
            output: output.unwrap_or(Value::Null),
        },
        Err(ScriptError::Action { message, payload }) => OneOffResponse::Failed {
            error_type: ErrorType::ActionRuntime,
            message,
            payload: Some(payload),
        },
        Err(error) => failed(error.error_type(), error.message()),
    }
}
