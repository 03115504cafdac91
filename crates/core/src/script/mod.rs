//! The script runtime: one QuickJS runtime per run, on a tokio current-thread runtime, on the engine's
//! thread ([`engine_thread`]), which the runs of a worker share.
//!
//! A run imports the entry module (compiled at deploy) from memory, builds the `nango` object from
//! `sdk.js` over a few native functions, and awaits `export default async function fetchData(nango)` (or
//! `runAction(nango, input)`). Postgres is reached only through the [`Host`] trait, whose calls the
//! caller's thread serves, record writes made while the script goes on ([`deferred`]); HTTP goes through
//! the provider proxy with reqwest, on the process's HTTP thread (`http`). So a sync's writes, its script
//! and its requests each have a thread.
//! Limits: a wall-clock deadline (checked by QuickJS' interrupt handler while JS runs and by a timer while
//! it waits on HTTP), a heap limit, and a cancel flag the caller can raise.

pub mod body;
pub mod bundled;
pub mod checks;
pub mod compile;
mod credentials;
pub mod deferred;
pub mod definitions;
pub mod engine_thread;
pub mod http;
pub mod json;
pub mod messages;
pub mod modules;
pub mod nango_module;
pub mod node;
pub mod sandbox;
pub mod sdk_calls;
pub mod stringify;
pub mod validate;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rquickjs::prelude::Async;
use rquickjs::{
    AsyncContext, AsyncRuntime, CatchResultExt, CaughtError, Ctx, Exception, Function, Module,
    Object, Value,
};
use serde_json::json;

use crate::providers::oauth::OAuthClient;
use crate::providers::{ConnectionInfo, PreparedRequest, Provider, ProxyCall, build_request};
use crate::records::batch::RecordBatch;
use credentials::fresh_connection;
pub use modules::{ModuleMap, StoredModule};

const SDK_JS: &str = include_str!("sdk.js");

/// The stack QuickJS may use, counted from where the run starts. A backend's stack is 8 MB (the usual
/// `ulimit -s`); Rust code called from JS (record writing, at most [`stringify::MAX_RECORD_DEPTH`] levels
/// of a few hundred bytes) runs below this, so 1 MB leaves several megabytes spare.
pub(crate) const JS_STACK_SIZE: usize = 1 << 20;
const SDK_MODULE: &str = "pg_nango:sdk";

/// What a script's record call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOp {
    Save,
    Update,
    Delete,
}

impl SaveOp {
    /// The SDK method of the write, as logs and errors name it.
    pub fn method(self) -> &'static str {
        match self {
            SaveOp::Save => "batchSave",
            SaveOp::Update => "batchUpdate",
            SaveOp::Delete => "batchDelete",
        }
    }
}

/// The script's window on Postgres. Every call is made on the run's thread, in the order the script made it.
///
/// The calls only a sync makes (checkpoints, deletion windows, stored records) default to an error, so a
/// host for actions leaves them out. A new call must also be forwarded by [`deferred::DeferredWrites`]
/// to the run's thread, or scripts get its default.
pub trait Host {
    /// Called once the engine is ready and the entry module loaded, right before the script's function is
    /// called: the end of a run's fixed start-up cost (see `nango.jobs.phases`).
    fn script_started(&mut self) {}
    /// Writes one validated batch of `model` (ids unique).
    fn save(&mut self, op: SaveOp, model: &str, batch: RecordBatch) -> Result<(), String>;
    /// Writes the batch now or later ([`deferred::DeferredWrites`]); `stack` is the script's stack at the
    /// call, for the error of a later write.
    fn defer_save(
        &mut self,
        op: SaveOp,
        model: &str,
        batch: RecordBatch,
        _stack: String,
    ) -> Result<(), String> {
        self.save(op, model, batch)
    }
    /// Waits for the writes [`Host::defer_save`] deferred; the error of the first that failed.
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// The error of a deferred write known to have failed by now, without waiting for the one in flight.
    fn failed_write(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Whether the next batchSave of `model` will send its records' contents to the database (most of
    /// its last batch was written), so that their `jsonb` is worth building with the batch
    /// ([`crate::records::jsonb`]). A batch whose records mostly are stored unchanged is sent as ids and
    /// hashes first, and building it would be wasted.
    fn builds_jsonb(&mut self, _model: &str) -> bool {
        false
    }
    /// Appends a line to the run's log.
    fn log(&mut self, level: &str, message: &str, payload_json: Option<&str>);
    /// The script sent a request through the proxy (counted in the run's progress).
    fn request_made(&mut self) {}
    /// The connection's metadata as JSON.
    fn metadata(&mut self) -> Result<String, String>;
    /// Replaces (`merge = false`) or shallow-merges the connection's metadata.
    fn set_metadata(&mut self, metadata_json: &str, merge: bool) -> Result<(), String>;
    /// Starts an OAuth2 refresh of the connection: takes a lock that serialises refreshes (held until
    /// [`Host::store_credentials`] or [`Host::release_credentials`]) and returns the credentials as they are
    /// now, since another run may have refreshed them while this one waited.
    fn lock_credentials(&mut self) -> Result<serde_json::Value, String>;
    /// Stores refreshed credentials and releases the lock.
    fn store_credentials(&mut self, credentials: &serde_json::Value) -> Result<(), String>;
    /// Releases the lock without storing anything.
    fn release_credentials(&mut self);
    /// The sync's checkpoint for this connection (JSON `null` when there is none).
    fn checkpoint(&mut self) -> Result<serde_json::Value, String> {
        Err(SYNC_ONLY.into())
    }
    /// Stores the checkpoint (`Some`) or clears it (`None`).
    fn set_checkpoint(&mut self, _checkpoint: Option<&serde_json::Value>) -> Result<(), String> {
        Err(SYNC_ONLY.into())
    }
    /// Opens a deletion window for `model` unless one is open (it may come from an earlier run).
    fn track_deletes_start(&mut self, _model: &str) -> Result<(), String> {
        Err(SYNC_ONLY.into())
    }
    /// Closes the window of `model`: its records not saved since the window opened are marked deleted.
    /// Returns their ids.
    fn track_deletes_end(&mut self, _model: &str) -> Result<Vec<String>, String> {
        Err(SYNC_ONLY.into())
    }
    /// The stored records of `model` among `ids`, as id → record (with `_nango_metadata`).
    fn records_by_ids(
        &mut self,
        _model: &str,
        _ids: &[String],
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        Err(SYNC_ONLY.into())
    }
    /// A page of at most `limit` stored records of `model` (deleted ones included) after `cursor`, in cursor
    /// order, as `{records, next_cursor}` (`next_cursor` null on the last page).
    fn list_records(
        &mut self,
        _model: &str,
        _cursor: Option<&str>,
        _limit: usize,
    ) -> Result<serde_json::Value, String> {
        Err(SYNC_ONLY.into())
    }
    /// Takes the connection's lock `key` for this run for `ttl_ms` (or extends it when this run holds it);
    /// false when another run holds it unexpired.
    fn try_acquire_lock(&mut self, _key: &str, _ttl_ms: u64) -> Result<bool, String> {
        Err(NOT_HERE.into())
    }
    /// Releases the connection's lock `key` if this run holds it; false otherwise.
    fn release_lock(&mut self, _key: &str) -> Result<bool, String> {
        Err(NOT_HERE.into())
    }
    /// The run's integration: `unique_key`, `provider`, `display_name`, `auth_mode`, `client_id`,
    /// `created_at`.
    fn integration(&mut self) -> Result<serde_json::Value, String> {
        Err(NOT_HERE.into())
    }
    /// The environment variables, as `[{name, value}]`.
    fn environment_variables(&mut self) -> Result<serde_json::Value, String> {
        Err(NOT_HERE.into())
    }
    /// Sets how the run's later writes of `model` merge: `override` (the default), or
    /// `ignore_if_modified_after`, which leaves alone every stored record modified after this call by
    /// anything but this run.
    fn set_merging_strategy(&mut self, _model: &str, _strategy: &str) -> Result<(), String> {
        Err(SYNC_ONLY.into())
    }
    /// The entry module of action `name` of the run's integration, `None` when there is no such action.
    fn action_entry(&mut self, _name: &str) -> Result<Option<String>, String> {
        Err(NOT_HERE.into())
    }
}

const NOT_HERE: &str = "this call is not available in this run";
const SYNC_ONLY: &str = "this call is only available in a sync";

/// The synchronous host calls `sdk.js` makes through `host.call(op, argsJson)`: the arguments come as a JSON
/// array and the result goes back as JSON text.
fn dispatch(
    host: &mut dyn Host,
    connection: &ConnectionInfo,
    op: &str,
    args: &str,
) -> Result<String, String> {
    let args: Vec<serde_json::Value> =
        serde_json::from_str(args).map_err(|e| format!("invalid arguments to {op}: {e}"))?;
    let text = |i: usize| args.get(i).and_then(|v| v.as_str()).unwrap_or_default();
    let result = match op {
        "getMetadata" => serde_json::from_str(&host.metadata()?).unwrap_or_default(),
        "setMetadata" | "updateMetadata" => {
            let metadata = args.first().cloned().unwrap_or_default();
            host.set_metadata(&metadata.to_string(), op == "updateMetadata")?;
            serde_json::Value::Null
        }
        "getConnection" => {
            let seen = crate::providers::auth::as_seen(connection.clone());
            json!({
                "connection_id": seen.connection_id,
                "provider_config_key": seen.provider_config_key,
                "connection_config": seen.connection_config,
                "credentials": seen.credentials,
                "metadata": serde_json::from_str::<serde_json::Value>(&host.metadata()?).unwrap_or_default(),
            })
        }
        "getCheckpoint" => host.checkpoint()?,
        "saveCheckpoint" => {
            host.set_checkpoint(args.first())?;
            serde_json::Value::Null
        }
        "clearCheckpoint" => {
            host.set_checkpoint(None)?;
            serde_json::Value::Null
        }
        "trackDeletesStart" => {
            host.track_deletes_start(text(0))?;
            serde_json::Value::Null
        }
        "trackDeletesEnd" => json!(host.track_deletes_end(text(0))?),
        "getRecordsByIds" => {
            let ids: Vec<String> = args
                .get(1)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .map(|id| id.as_str().map_or_else(|| id.to_string(), str::to_string))
                .collect();
            serde_json::Value::Object(host.records_by_ids(text(0), &ids)?)
        }
        _ => match sdk_calls::dispatch(host, op, &args) {
            Some(result) => result?,
            None => return Err(format!("unknown host call {op}")),
        },
    };
    Ok(result.to_string())
}

/// What a run calls in its entry module.
#[derive(Debug, Clone)]
pub enum ScriptKind {
    /// A sync: `exec(nango)` of a zero-YAML definition, or the default export function.
    Sync,
    /// An action, with its input as JSON text.
    Action { input_json: Option<String> },
    /// A sync's webhook handler, with the webhook's payload as JSON text: `onWebhook(nango, payload)`, or
    /// the `onWebhookPayloadReceived` export of the yaml format.
    Webhook { payload_json: String },
    /// An on-event script (`post-connection-creation`, …): `exec(nango)`, or the default export function.
    OnEvent,
}

impl ScriptKind {
    /// The definition `type` a zero-YAML entry module must export for this kind of run.
    fn definition_type(&self) -> &'static str {
        match self {
            ScriptKind::Sync | ScriptKind::Webhook { .. } => "sync",
            ScriptKind::Action { .. } => "action",
            ScriptKind::OnEvent => "onEvent",
        }
    }

    /// The run's kind as Nango's messages name it.
    fn label(&self) -> &'static str {
        match self {
            ScriptKind::Sync => "sync",
            ScriptKind::Action { .. } => "action",
            ScriptKind::Webhook { .. } => "webhook",
            ScriptKind::OnEvent => "on-event",
        }
    }
}

/// The limits of one run (the `nango.*` settings of the same names).
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub http_timeout: Duration,
    pub retry_base_delay: Duration,
    /// Largest record a batch accepts, as JSON text (`nango.max_record_size`).
    pub max_record_size: usize,
    /// Largest HTTP response body a proxy call reads (`nango.max_response_size`).
    pub max_response_size: usize,
    /// Hosts (names or addresses, optional `:port`) a script may reach besides its provider's base URL host
    /// even when they resolve to private addresses (`nango.allowed_hosts`, split at commas).
    pub allowed_hosts: Vec<String>,
}

impl Default for Limits {
    /// The settings' defaults.
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(86400),
            memory_bytes: 256 << 20,
            http_timeout: Duration::from_secs(30),
            retry_base_delay: Duration::from_millis(3000),
            max_record_size: 16 << 20,
            max_response_size: 256 << 20,
            allowed_hosts: Vec::new(),
        }
    }
}

/// Everything a run needs besides the host.
pub struct ScriptRun {
    pub kind: ScriptKind,
    /// Path of the entry module, e.g. `github/syncs/issues.ts`.
    pub entry: String,
    pub modules: ModuleMap,
    pub provider_name: String,
    pub provider: Provider,
    pub connection: ConnectionInfo,
    /// The integration's OAuth2 client, for refreshing tokens.
    pub oauth_client: Option<OAuthClient>,
    /// ISO time of the start of the last successful run.
    pub last_sync_date: Option<String>,
    /// The models a sync may write.
    pub models: Vec<String>,
    pub limits: Limits,
}

/// How a run failed. `error_type` and `message` are what users see in jobs and notifications.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptError {
    /// The wall-clock limit passed.
    Timeout(Duration),
    /// The cancel flag was raised.
    Cancelled,
    /// The heap limit was hit.
    OutOfMemory(usize),
    /// The script threw (or a promise it awaited rejected). `location` is `file:line:column` in the source.
    Thrown {
        message: String,
        location: Option<String>,
        stack: String,
        http_status: Option<u16>,
    },
    /// An action threw `ActionError`; `payload` is what it carried.
    Action {
        message: String,
        payload: serde_json::Value,
    },
    /// The run could not start (engine, entry module, runtime set-up).
    Setup(String),
}

impl ScriptError {
    /// A short machine-readable kind, after Nango's runner error types.
    pub fn error_type(&self) -> &'static str {
        match self {
            ScriptError::Timeout(_) => "execution_timeout",
            ScriptError::Cancelled => "script_aborted",
            ScriptError::OutOfMemory(_) => "script_out_of_memory",
            ScriptError::Thrown {
                http_status: Some(_),
                ..
            } => "script_http_error",
            ScriptError::Thrown { .. } => "script_error",
            ScriptError::Action { .. } => "action_script_runtime_error",
            ScriptError::Setup(_) => "script_internal_error",
        }
    }

    /// The human message, with the source location when known.
    pub fn message(&self) -> String {
        match self {
            ScriptError::Timeout(limit) => format!(
                "the script ran longer than its time limit of {} seconds",
                limit.as_secs_f64()
            ),
            ScriptError::Cancelled => "the run was cancelled".into(),
            ScriptError::OutOfMemory(bytes) => {
                format!("the script ran out of memory (limit {} MB)", bytes >> 20)
            }
            ScriptError::Thrown {
                message,
                location: Some(location),
                ..
            } => format!("{message} (at {location})"),
            ScriptError::Thrown { message, .. }
            | ScriptError::Action { message, .. }
            | ScriptError::Setup(message) => message.clone(),
        }
    }
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// Runs a script to completion. Returns the action's output (JSON), or `None` for a sync.
///
/// The engine runs on a thread of its own ([`engine_thread`]) while this thread serves its calls to `host`
/// (see [`deferred`]): `host` is only ever used here. `cancelled` is called from the engine's thread. A
/// panic of the engine becomes an internal error; one of `host` is raised again here once the engine has
/// stopped.
pub fn run_script(
    run: ScriptRun,
    host: Rc<RefCell<dyn Host>>,
    cancelled: Arc<dyn Fn() -> bool + Send + Sync>,
) -> Result<Option<serde_json::Value>, ScriptError> {
    let (requests, served) = std::sync::mpsc::sync_channel(deferred::MAX_QUEUED_REQUESTS);
    // Raised when this thread stops serving on a panic: the engine then stops as if cancelled.
    let abandoned = Arc::new(AtomicBool::new(false));
    let stop_engine = abandoned.clone();
    let engine_cancelled: Arc<dyn Fn() -> bool + Send + Sync> =
        Arc::new(move || stop_engine.load(Ordering::SeqCst) || cancelled());
    let finished = Arc::new(AtomicBool::new(false));
    let engine_finished = finished.clone();
    let (done, outcome) = std::sync::mpsc::sync_channel(1);
    engine_thread::submit(Box::new(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let host = deferred::DeferredWrites::new(requests);
            engine_thread::block_on(run_async(run, host, engine_cancelled))
                .unwrap_or_else(|e| Err(ScriptError::Setup(e)))
        }));
        let sound = outcome.is_ok();
        engine_finished.store(true, Ordering::SeqCst);
        let _ = done.send(outcome);
        sound
    }))
    .map_err(ScriptError::Setup)?;
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        deferred::serve(&mut *host.borrow_mut(), served, || {
            finished.load(Ordering::SeqCst)
        })
    }));
    if served.is_err() {
        abandoned.store(true, Ordering::SeqCst);
    }
    let outcome = outcome.recv();
    if !matches!(outcome, Ok(Ok(_))) {
        engine_thread::forget();
    }
    if let Err(panic) = served {
        std::panic::resume_unwind(panic);
    }
    match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(internal_error(panic)),
        Err(_) => Err(ScriptError::Setup(
            "internal error: the script's thread stopped".into(),
        )),
    }
}

/// The run's error for a Rust panic that ended it.
pub fn internal_error(panic: Box<dyn std::any::Any + Send>) -> ScriptError {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    ScriptError::Setup(format!("internal error: {message}"))
}

/// An error caught inside the engine, turned into owned data before leaving it.
pub(crate) enum Caught {
    Thrown {
        message: String,
        stack: String,
        http_status: Option<u16>,
    },
    Action {
        message: String,
        payload: String,
    },
}

async fn run_async(
    run: ScriptRun,
    host: deferred::DeferredWrites,
    cancelled: Arc<dyn Fn() -> bool + Send + Sync>,
) -> Result<Option<serde_json::Value>, ScriptError> {
    let setup = |e: rquickjs::Error| {
        ScriptError::Setup(format!("could not start the JavaScript engine: {e}"))
    };
    let limits = run.limits.clone();
    let deadline = Instant::now() + limits.timeout;
    let runtime = AsyncRuntime::new().map_err(setup)?;
    runtime.set_memory_limit(limits.memory_bytes).await;
    // Deep JS recursion must end as a thrown "stack overflow", not overflow the backend's stack (8 MB
    // usually, Postgres' own frames above). Set here rather than left to the engine's default.
    runtime.set_max_stack_size(JS_STACK_SIZE).await;
    let interrupt_cancelled = cancelled.clone();
    runtime
        .set_interrupt_handler(Some(Box::new(move || {
            Instant::now() >= deadline || interrupt_cancelled()
        })))
        .await;
    runtime
        .set_loader(
            modules::MemoryResolver(run.modules.clone()),
            modules::MemoryLoader(run.modules.clone()),
        )
        .await;
    let context = AsyncContext::full(&runtime).await.map_err(setup)?;
    let client = Rc::new(http::HttpClient::new(&limits).map_err(ScriptError::Setup)?);

    let modules = run.modules.clone();
    let memory_limit = limits.memory_bytes;
    let deferred = Rc::new(RefCell::new(host));
    let host: Rc<RefCell<dyn Host>> = deferred.clone();
    let work = context.async_with(async move |ctx| {
        let outcome = execute(&ctx, &run, host, client).await;
        match outcome.catch(&ctx) {
            Ok(output) => Ok(output),
            Err(caught) => Err(own_caught(&ctx, caught)),
        }
    });
    let watch_cancel = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if cancelled() {
                return;
            }
        }
    };
    let outcome = tokio::select! {
        outcome = work => Ok(outcome),
        _ = tokio::time::sleep_until(deadline.into()) => Err(ScriptError::Timeout(limits.timeout)),
        _ = watch_cancel => Err(ScriptError::Cancelled),
    };
    // The writes the script was told were made are made, whatever ended the run; a write that failed
    // (then or earlier) fails the run with the error its call would have thrown.
    let mut deferred = deferred.borrow_mut();
    let _ = deferred.flush();
    let outcome = match deferred.failure() {
        Some(failed) => Err(Caught::Thrown {
            message: failed.message.clone(),
            stack: failed.stack.clone(),
            http_status: None,
        }),
        None => outcome?,
    };
    drop(deferred);
    // When the heap is full QuickJS cannot even allocate its "out of memory" error and throws a bare `null`
    // (no stack). A script that throws `null` itself is reported the same way; nothing tells the two apart
    // once the heap has been freed.
    let heap_full = matches!(&outcome, Err(Caught::Thrown { message, stack, .. }) if stack.is_empty() && message == "null");
    match outcome {
        Err(_) if heap_full => Err(ScriptError::OutOfMemory(memory_limit)),
        Ok(output) => {
            Ok(output.map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)))
        }
        // An interrupt surfaces as a thrown "interrupted"; say why it happened.
        Err(_) if Instant::now() >= deadline => Err(ScriptError::Timeout(limits.timeout)),
        Err(_) if cancelled() => Err(ScriptError::Cancelled),
        Err(Caught::Action { message, payload }) => Err(ScriptError::Action {
            message,
            payload: serde_json::from_str(&payload).unwrap_or_else(|_| json!({})),
        }),
        Err(Caught::Thrown { message, .. }) if message == "out of memory" => {
            Err(ScriptError::OutOfMemory(memory_limit))
        }
        Err(Caught::Thrown {
            message,
            stack,
            http_status,
        }) => {
            let (location, stack) = map_stack(&stack, &modules);
            Err(ScriptError::Thrown {
                message,
                location,
                stack,
                http_status,
            })
        }
    }
}

/// Imports the entry module, builds `nango`, calls the default export and awaits it.
async fn execute<'js>(
    ctx: &Ctx<'js>,
    run: &ScriptRun,
    host: Rc<RefCell<dyn Host>>,
    client: Rc<http::HttpClient>,
) -> rquickjs::Result<Option<String>> {
    let (sdk, evaluated) = Module::declare(ctx.clone(), SDK_MODULE, SDK_JS)?.eval()?;
    evaluated.into_future::<()>().await?;
    let create_nango: Function = sdk.get("createNango")?;
    let console_host = host.clone();
    let host_for_start = host.clone();
    let console = Rc::new(move |level: &str, message: &str| {
        console_host.borrow_mut().log(level, message, None)
    });
    node::install(ctx, run.limits.memory_bytes, console).await?;
    let host_object = host_functions(ctx, run, host, client)?;
    let context = json!({
        "connectionId": run.connection.connection_id,
        "providerConfigKey": run.connection.provider_config_key,
        "provider": run.provider_name,
        // A webhook run writes records as a sync does; an on-event script gets an action's SDK, as on Nango.
        "scriptType": match run.kind { ScriptKind::Sync | ScriptKind::Webhook { .. } => "sync", ScriptKind::Action { .. } | ScriptKind::OnEvent => "action" },
        "lastSyncDate": run.last_sync_date,
        "models": run.models,
        "paginate": run.provider.proxy.as_ref().and_then(|p| p.paginate.clone()),
    });
    let context = ctx.json_parse(context.to_string())?;
    let nango: Object = create_nango.call((host_object, context))?;

    let namespace: Object = Module::import(ctx, run.entry.as_str())?
        .into_future()
        .await?;
    host_for_start.borrow_mut().script_started();
    let returned = call_entry(ctx, run, &namespace, nango)?;
    let value: Value = match returned.as_promise() {
        Some(promise) => promise.clone().into_future::<Value>().await?,
        None => returned,
    };
    match run.kind {
        ScriptKind::Sync | ScriptKind::Webhook { .. } | ScriptKind::OnEvent => Ok(None),
        ScriptKind::Action { .. } => Ok(Some(
            ctx.json_stringify(value)?
                .map_or(Ok("null".to_string()), |s| s.to_string())?,
        )),
    }
}

/// Calls what the entry module exports for this kind of run and returns what it returned (a promise, or
/// not). A zero-YAML module exports its definition object (`createSync({…})`), whose `type` must match the
/// run, as Nango's runner checks; a yaml-era module exports a function (and `onWebhookPayloadReceived`).
fn call_entry<'js>(
    ctx: &Ctx<'js>,
    run: &ScriptRun,
    namespace: &Object<'js>,
    nango: Object<'js>,
) -> rquickjs::Result<Value<'js>> {
    let fail = |message: String| Err(Exception::throw_message(ctx, &message));
    let default: Value = namespace.get("default")?;
    let definition = default.as_object().filter(|_| !default.is_function());
    let (function, this) = match (definition, &run.kind) {
        (Some(definition), kind) => {
            let kind_of: Value = definition.get("type")?;
            if kind_of
                .as_string()
                .and_then(|s| s.to_string().ok())
                .as_deref()
                != Some(kind.definition_type())
            {
                return fail(format!("Incorrect script loaded for {}", kind.label()));
            }
            let member = if matches!(kind, ScriptKind::Webhook { .. }) {
                "onWebhook"
            } else {
                "exec"
            };
            match definition.get::<_, Value>(member)?.into_function() {
                Some(function) => (function, Value::from(definition.clone())),
                None if member == "onWebhook" => return fail("Missing onWebhook function".into()),
                None => return fail(format!("Missing exec function for {}", kind.label())),
            }
        }
        (None, ScriptKind::Webhook { .. }) => {
            match namespace
                .get::<_, Value>("onWebhookPayloadReceived")?
                .into_function()
            {
                Some(function) => (function, Value::new_undefined(ctx.clone())),
                None => return fail("There is no onWebhookPayloadReceived export".into()),
            }
        }
        (None, _) => match default.into_function() {
            Some(function) => (function, Value::new_undefined(ctx.clone())),
            None => return fail(format!("{} has no default export function", run.entry)),
        },
    };
    let zero_yaml = !this.is_undefined();
    let call = |argument: Option<Value<'js>>| -> rquickjs::Result<Value<'js>> {
        let mut args = rquickjs::function::Args::new(ctx.clone(), 2);
        args.this(this.clone())?;
        args.push_arg(nango.clone())?;
        if let Some(argument) = argument {
            args.push_arg(argument)?;
        }
        function.call_arg(args)
    };
    match &run.kind {
        ScriptKind::Sync | ScriptKind::OnEvent => call(None),
        ScriptKind::Webhook { payload_json } => call(Some(ctx.json_parse(payload_json.as_str())?)),
        ScriptKind::Action { input_json } => {
            let input = match input_json {
                Some(json) => ctx.json_parse(json.as_str())?,
                None => Value::new_undefined(ctx.clone()),
            };
            // Nango's runner passes a yaml-era action an input with no keys (`{}`, and `[]`) as
            // `undefined`; a zero-YAML action gets its input as given.
            let empty = input
                .as_object()
                .is_some_and(|object| object.keys::<Value>().next().is_none());
            if empty && !zero_yaml {
                call(Some(Value::new_undefined(ctx.clone())))
            } else {
                call(Some(input))
            }
        }
    }
}

/// The native functions under `sdk.js`: `request` (async), `save`, `log`, and `call` for the other
/// synchronous host calls (see [`dispatch`]).
fn host_functions<'js>(
    ctx: &Ctx<'js>,
    run: &ScriptRun,
    host: Rc<RefCell<dyn Host>>,
    client: Rc<http::HttpClient>,
) -> rquickjs::Result<Object<'js>> {
    let object = Object::new(ctx.clone())?;
    let connection = Rc::new(RefCell::new(run.connection.clone()));
    let refreshing = Rc::new(tokio::sync::Mutex::new(()));
    let proxy = Rc::new((
        run.provider.clone(),
        run.oauth_client.clone(),
        run.limits.retry_base_delay,
    ));
    let request_connection = connection.clone();
    sdk_calls::install(
        ctx,
        &object,
        run,
        host.clone(),
        client.clone(),
        connection.clone(),
        refreshing.clone(),
    )?;
    let max_response_size = run.limits.max_response_size;

    let request_host = host.clone();
    object.set(
        "request",
        Function::new(
            ctx.clone(),
            Async(move |ctx: Ctx<'js>, call_json: String| {
                let proxy = proxy.clone();
                let client = client.clone();
                let host = request_host.clone();
                let connection = request_connection.clone();
                let refreshing = refreshing.clone();
                async move {
                    // A write that failed already stops the script here; one still being made does not hold
                    // the request back.
                    let failed = host.borrow_mut().failed_write();
                    failed.map_err(|e| Exception::throw_message(&ctx, &e))?;
                    let (provider, oauth_client, base_delay) = &*proxy;
                    let call: ProxyCall = serde_json::from_str(&call_json)
                        .map_err(|e| Exception::throw_message(&ctx, &format!("invalid proxy configuration: {e}")))?;
                    let connection = fresh_connection(&client, provider, oauth_client.as_ref(), &connection, &refreshing, &host)
                        .await
                        .map_err(|e| Exception::throw_message(&ctx, &e))?;
                    let request = build_request(provider, &connection, &call).map_err(|e| Exception::throw_message(&ctx, &e.to_string()))?;
                    let sign = |request: &mut PreparedRequest| {
                        crate::providers::auth::sign_request(request, &connection, oauth_client.as_ref(), chrono::Utc::now())
                    };
                    let mut on_retry = |reason: &str, wait: Duration, attempt: u32| {
                        host.borrow_mut().log(
                            "warn",
                            &format!("Retrying HTTP call (reason: {reason}). Waiting for {}ms [{attempt}/{}]", wait.as_millis(), call.retries),
                            None,
                        );
                    };
                    host.borrow_mut().request_made();
                    let sent = http::send_with_retries(&client, &request, provider, &call, *base_delay, &sign, &mut on_retry).await;
                    let mut response = sent.map_err(|e| Exception::throw_message(&ctx, &e))?;
                    if call.decompress != Some(false) {
                        body::decompress(&mut response, max_response_size).map_err(|e| Exception::throw_message(&ctx, &e))?;
                    }
                    response_object(&ctx, response, body::ResponseType::parse(call.response_type.as_deref()))
                }
            }),
        )?,
    )?;

    let save_host = host.clone();
    let max_record_size = run.limits.max_record_size;
    // A batch's JSON text lives outside the JS heap (one string in the heap can be referenced by every
    // record of a batch): it is held to the same size as the heap.
    let max_batch_size = run.limits.memory_bytes;
    object.set(
        "save",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>,
                  op: String,
                  model: String,
                  records: rquickjs::Array<'js>|
                  -> rquickjs::Result<()> {
                let op = match op.as_str() {
                    "update" => SaveOp::Update,
                    "delete" => SaveOp::Delete,
                    _ => SaveOp::Save,
                };
                let checked = validate::checked_records(
                    &ctx,
                    op.method(),
                    &model,
                    &records,
                    &mut |warning| save_host.borrow_mut().log("warn", warning, None),
                )?;
                if checked.is_empty() {
                    return Ok(());
                }
                let build_jsonb = op == SaveOp::Save && save_host.borrow_mut().builds_jsonb(&model);
                let batch = stringify::record_batch(
                    &ctx,
                    (op, build_jsonb),
                    checked,
                    (max_record_size, max_batch_size),
                )?;
                // Where the script called, for the error of a write made later.
                let stack = Exception::from_message(ctx.clone(), "")?
                    .stack()
                    .unwrap_or_default();
                save_host
                    .borrow_mut()
                    .defer_save(op, &model, batch, stack)
                    .map_err(|e| Exception::throw_message(&ctx, &e))
            },
        )?,
    )?;

    let log_host = host.clone();
    object.set(
        "log",
        Function::new(
            ctx.clone(),
            move |level: String, message: String, payload: Option<String>| {
                let payload = payload.map(stringify::log_payload);
                log_host
                    .borrow_mut()
                    .log(&level, &message, payload.as_deref());
            },
        )?,
    )?;

    let call_host = host;
    object.set(
        "call",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, op: String, args: String| -> rquickjs::Result<String> {
                let connection = connection.borrow().clone();
                dispatch(&mut *call_host.borrow_mut(), &connection, &op, &args)
                    .map_err(|e| Exception::throw_message(&ctx, &e))
            },
        )?,
    )?;
    Ok(object)
}

/// `{status, headers, data}` with `data` as `response_type` asks: by default parsed as JSON by the engine
/// when it is JSON, else text; the bytes as a `Uint8Array` for `arraybuffer` and `stream` (which `sdk.js`
/// turns into an async iterable).
fn response_object<'js>(
    ctx: &Ctx<'js>,
    response: http::HttpResponse,
    response_type: body::ResponseType,
) -> rquickjs::Result<Object<'js>> {
    let object = Object::new(ctx.clone())?;
    object.set("status", response.status)?;
    let headers = Object::new(ctx.clone())?;
    let mut content_type = String::new();
    for (name, value) in &response.headers {
        if name == "content-type" {
            content_type = value.clone();
        }
        headers.set(name.as_str(), value.as_str())?;
    }
    object.set("headers", headers)?;
    let looks_json = content_type.contains("json")
        || matches!(
            response.body.iter().find(|b| !b.is_ascii_whitespace()),
            Some(b'{' | b'[')
        );
    let data: Value = if matches!(
        response_type,
        body::ResponseType::Bytes | body::ResponseType::Stream
    ) {
        sdk_calls::bytes_value(ctx, response.body)?
    } else if response.body.is_empty() && response_type == body::ResponseType::Json {
        Value::new_undefined(ctx.clone())
    } else if looks_json && response_type == body::ResponseType::Json {
        match json::parse(ctx, &response.body) {
            Ok(value) => value,
            Err(_) => {
                let _ = ctx.catch();
                rquickjs::String::from_str(ctx.clone(), &String::from_utf8_lossy(&response.body))?
                    .into_value()
            }
        }
    } else {
        rquickjs::String::from_str(ctx.clone(), &String::from_utf8_lossy(&response.body))?
            .into_value()
    };
    object.set("data", data)?;
    Ok(object)
}

pub(crate) fn own_caught<'js>(ctx: &Ctx<'js>, caught: CaughtError<'js>) -> Caught {
    match caught {
        CaughtError::Exception(exception) => {
            let message = exception.message().unwrap_or_default();
            let stack = exception.stack().unwrap_or_default();
            let name: Option<String> = exception.get("name").ok();
            if name.as_deref() == Some("ActionError") {
                let payload: Value = exception
                    .get("payload")
                    .unwrap_or_else(|_| Value::new_undefined(ctx.clone()));
                let payload = ctx
                    .json_stringify(payload)
                    .ok()
                    .flatten()
                    .and_then(|s| s.to_string().ok())
                    .unwrap_or_else(|| "{}".into());
                return Caught::Action { message, payload };
            }
            let message = messages::node_wording(name.as_deref(), &message);
            let http_status = exception
                .get::<_, Option<u16>>("status")
                .ok()
                .flatten()
                .filter(|_| name.as_deref() == Some("AxiosError"));
            Caught::Thrown {
                message,
                stack,
                http_status,
            }
        }
        CaughtError::Value(value) => {
            let message = ctx
                .json_stringify(value)
                .ok()
                .flatten()
                .and_then(|s| s.to_string().ok())
                .unwrap_or_else(|| "the script threw a value that is not an Error".into());
            Caught::Thrown {
                message,
                stack: String::new(),
                http_status: None,
            }
        }
        CaughtError::Error(error) => Caught::Thrown {
            message: error.to_string(),
            stack: String::new(),
            http_status: None,
        },
    }
}

/// Rewrites `(file:line:col)` positions of a QuickJS stack to the TypeScript sources and returns the first
/// position inside a deployed module, which is where the error was thrown.
pub(crate) fn map_stack(
    stack: &str,
    modules: &HashMap<String, StoredModule>,
) -> (Option<String>, String) {
    let mut location = None;
    let mut lines = Vec::new();
    for line in stack.lines() {
        let mapped = map_frame(line, modules);
        if location.is_none()
            && let Some((position, _)) = &mapped
        {
            location = Some(position.clone());
        }
        lines.push(mapped.map_or_else(|| line.to_string(), |(_, rewritten)| rewritten));
    }
    (location, lines.join("\n"))
}

fn map_frame(line: &str, modules: &HashMap<String, StoredModule>) -> Option<(String, String)> {
    let open = line
        .rfind('(')
        .map_or_else(|| line.find("at ").map(|i| i + 2), Some)?
        + 1;
    let close = line[open..].find(')').map_or(line.len(), |i| open + i);
    let frame = &line[open..close];
    let mut parts = frame.rsplitn(3, ':');
    let column: u32 = parts.next()?.parse().ok()?;
    let js_line: u32 = parts.next()?.parse().ok()?;
    let file = parts.next()?.trim();
    let module = modules.get(file)?;
    let (line_no, column) = module
        .source_map
        .as_deref()
        .and_then(|map| compile::original_position(map, js_line, column))
        .unwrap_or((js_line, column));
    let position = format!("{file}:{line_no}:{column}");
    Some((
        position.clone(),
        format!("{}{}{}", &line[..open], position, &line[close..]),
    ))
}
