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
//!
//! This module holds the run itself (its kind, limits, set-up and the call of the entry module); the host
//! interface is in `host`, the native functions `sdk.js` calls in `native`, and how a run fails in `errors`,
//! all re-exported here.

pub mod body;
pub mod bundled;
pub mod checks;
pub mod compile;
mod credentials;
pub mod deferred;
pub mod definitions;
pub mod engine_thread;
mod errors;
mod host;
pub mod http;
pub mod json;
pub mod messages;
pub mod modules;
pub mod nango_module;
mod native;
pub mod node;
pub mod sandbox;
pub mod sdk_calls;
pub mod stringify;
pub mod validate;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rquickjs::{
    AsyncContext, AsyncRuntime, CatchResultExt, Ctx, Exception, Function, Module, Object, Value,
};
use serde_json::json;

use crate::providers::oauth::OAuthClient;
use crate::providers::{ConnectionInfo, Provider};
use credentials::fresh_connection;
pub(crate) use errors::{Caught, map_stack, own_caught};
pub use errors::{ScriptError, internal_error};
pub use host::{Host, SaveOp};
pub use modules::{ModuleMap, StoredModule, module_map};
use native::host_functions;

const SDK_JS: &str = include_str!("sdk.js");

/// The stack QuickJS may use, counted from where the run starts. A backend's stack is 8 MB (the usual
/// `ulimit -s`); Rust code called from JS (record writing, at most [`stringify::MAX_RECORD_DEPTH`] levels
/// of a few hundred bytes) runs below this, so 1 MB leaves several megabytes spare.
pub(crate) const JS_STACK_SIZE: usize = 1 << 20;
const SDK_MODULE: &str = "pg_nango:sdk";
/// The compiled form of `sdk.js`, made by the first run of the process.
static SDK_BYTECODE: OnceLock<Vec<u8>> = OnceLock::new();

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
    let (sdk, evaluated) =
        modules::declare_compiled_once(ctx, SDK_MODULE, SDK_JS, &SDK_BYTECODE)?.eval()?;
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
