//! How a run fails: [`ScriptError`], what users see in jobs and notifications, and the way an error gets
//! there. One caught inside the engine is copied out as owned data ([`Caught`]) before the engine goes
//! away, and the QuickJS positions of its stack are mapped back to the TypeScript sources ([`map_stack`]);
//! a panic becomes an [`internal_error`]. Kept apart from the run flow, which only decides which of these
//! a run ended with.

use crate::jobs::ErrorType;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rquickjs::{CaughtError, Ctx, Value};

use super::{StoredModule, compile, messages};

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
    pub fn error_type(&self) -> ErrorType {
        match self {
            ScriptError::Timeout(_) => ErrorType::ExecutionTimeout,
            ScriptError::Cancelled => ErrorType::Aborted,
            ScriptError::OutOfMemory(_) => ErrorType::OutOfMemory,
            ScriptError::Thrown {
                http_status: Some(_),
                ..
            } => ErrorType::ScriptHttp,
            ScriptError::Thrown { .. } => ErrorType::Script,
            ScriptError::Action { .. } => ErrorType::ActionRuntime,
            ScriptError::Setup(_) => ErrorType::Internal,
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
    modules: &HashMap<String, Arc<StoredModule>>,
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

fn map_frame(line: &str, modules: &HashMap<String, Arc<StoredModule>>) -> Option<(String, String)> {
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
