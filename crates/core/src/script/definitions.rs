//! Reading the definitions of a zero-YAML project at deploy, as Nango's CLI reads them: by running the top
//! level of each entry module (never its `exec`) and taking the object its default export holds. The run
//! happens in a QuickJS runtime of its own, with the same module loader, globals and limits as a script run,
//! so a definition computed by code (models imported from a schemas file, spread objects, helper calls) reads
//! exactly as it would on Nango. See `definitions.js` for what is read.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rquickjs::{AsyncContext, AsyncRuntime, CatchResultExt, Function, Module, Object};

use crate::deploy::zero_yaml::DefinitionLimits;

use super::{JS_STACK_SIZE, ModuleMap, StoredModule, map_stack, modules, node, own_caught};

const DEFINITIONS_JS: &str = include_str!("definitions.js");
const DEFINITIONS_MODULE: &str = "pg_nango:definitions";

/// What an entry module's top level gave, as `definitions.js` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDefinition {
    /// The entry module's path.
    pub entry: String,
    /// `{type, description, …, models: [[name, schema], …], metadata, input, output}`, or `{error}`.
    pub definition: serde_json::Value,
}

/// Why the definitions could not be read: the entry whose top level failed, and how.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct DefinitionError {
    pub file: String,
    pub message: String,
}

/// Runs the top level of each of `entries` (paths in `modules`) and reads its definition. `timeout` and
/// `memory_bytes` bound the whole evaluation: the code is the project's, and untrusted.
pub fn read_definitions(
    modules: &HashMap<String, StoredModule>,
    entries: &[String],
    limits: DefinitionLimits,
) -> Result<Vec<RawDefinition>, DefinitionError> {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DefinitionError {
            file: "index.ts".into(),
            message: format!("could not start the async runtime: {e}"),
        })?;
    let modules: ModuleMap = super::module_map(modules.clone());
    tokio.block_on(read_all(modules, entries, limits))
}

async fn read_all(
    modules: ModuleMap,
    entries: &[String],
    limits: DefinitionLimits,
) -> Result<Vec<RawDefinition>, DefinitionError> {
    let DefinitionLimits {
        timeout,
        memory_bytes,
        cancelled,
    } = limits;
    let setup = |e: rquickjs::Error| DefinitionError {
        file: "index.ts".into(),
        message: format!("could not start the JavaScript engine: {e}"),
    };
    let deadline = Instant::now() + timeout;
    let runtime = AsyncRuntime::new().map_err(setup)?;
    runtime.set_memory_limit(memory_bytes).await;
    runtime.set_max_stack_size(JS_STACK_SIZE).await;
    runtime
        .set_interrupt_handler(Some(Box::new(move || {
            Instant::now() >= deadline || cancelled()
        })))
        .await;
    runtime
        .set_loader(
            modules::MemoryResolver(modules.clone()),
            modules::MemoryLoader(modules.clone()),
        )
        .await;
    let context = AsyncContext::full(&runtime).await.map_err(setup)?;
    let mut read = Vec::with_capacity(entries.len());
    for entry in entries {
        let failed = |message: String| DefinitionError {
            file: entry.clone(),
            message,
        };
        let work = context.async_with(async |ctx| {
            let outcome: rquickjs::Result<String> = async {
                if ctx.globals().get::<_, Option<Object>>("Buffer")?.is_none() {
                    // A top level may use Node's globals (Buffer, URL, …); `console` output is dropped, as
                    // Nango's compiler does not keep it either.
                    node::install(&ctx, memory_bytes, Rc::new(|_: &str, _: &str| {})).await?;
                }
                let (harness, evaluated) =
                    Module::declare(ctx.clone(), DEFINITIONS_MODULE, DEFINITIONS_JS)?.eval()?;
                evaluated.into_future::<()>().await?;
                let define: Function = harness.get("define")?;
                let promise: rquickjs::Promise = define.call((entry.as_str(),))?;
                promise.into_future::<String>().await
            }
            .await;
            outcome
                .catch(&ctx)
                .map_err(|caught| own_caught(&ctx, caught))
        });
        let outcome = tokio::select! {
            outcome = work => outcome,
            _ = tokio::time::sleep_until(deadline.into()) => {
                return Err(failed(too_long(timeout)));
            }
        };
        let text = match outcome {
            Ok(text) => text,
            Err(_) if Instant::now() >= deadline => {
                return Err(failed(too_long(timeout)));
            }
            Err(_) if cancelled() => return Err(failed("the deploy was cancelled".into())),
            Err(super::Caught::Thrown { message, stack, .. }) => {
                if stack.is_empty() && message == "null" || message == "out of memory" {
                    return Err(failed(format!(
                        "its top level ran out of memory (limit {} MB)",
                        memory_bytes >> 20
                    )));
                }
                let (location, _) = map_stack(&stack, &modules);
                let at = location.map(|l| format!(" (at {l})")).unwrap_or_default();
                return Err(failed(format!("its top level threw: {message}{at}")));
            }
            Err(super::Caught::Action { message, .. }) => {
                return Err(failed(format!("its top level threw: {message}")));
            }
        };
        let definition = serde_json::from_str(&text)
            .map_err(|e| failed(format!("its definition could not be read: {e}")))?;
        read.push(RawDefinition {
            entry: entry.clone(),
            definition,
        });
    }
    Ok(read)
}

fn too_long(timeout: Duration) -> String {
    format!(
        "its top level ran longer than the {} seconds a deploy gives the definitions",
        timeout.as_secs_f64()
    )
}
