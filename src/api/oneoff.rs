//! `nango.trigger_action` and `nango.dryrun`: run a script now for one connection and return its result
//! (see [`crate::worker::oneoff`] for where it runs).

use pg_nango_core::jobs::ErrorType;
use pg_nango_core::script::json::check_action_input;
use pgrx::prelude::*;

use crate::error::ApiError;
use crate::worker::oneoff::{OneOffRequest, OneOffResponse, run_in_worker};

/// Runs `runAction(nango, input)` of a deployed action and returns its output. A `jsonb` input reaches the
/// script with its keys in jsonb's order (sorted); the `text` overload, and the `json` one in `api.sql`,
/// keep the caller's.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn trigger_action(
    provider_config_key: &str,
    connection_id: &str,
    action_name: &str,
    input: default!(Option<pgrx::JsonB>, "NULL"),
) -> pgrx::JsonB {
    let input = input.map(|j| j.0.to_string());
    run_action(provider_config_key, connection_id, action_name, input)
}

/// `trigger_action` with JSON text as input (what a quoted literal such as `'{"b": 1, "a": 2}'` becomes):
/// it reaches the script as written, keys in their order, once checked to be JSON.
#[pg_extern(security_definer, name = "trigger_action")]
#[search_path(pg_catalog, pg_temp)]
fn trigger_action_text(
    provider_config_key: &str,
    connection_id: &str,
    action_name: &str,
    input: Option<&str>,
) -> pgrx::JsonB {
    let input = input.map(str::to_string);
    run_action(provider_config_key, connection_id, action_name, input)
}

fn run_action(
    provider_config_key: &str,
    connection_id: &str,
    action_name: &str,
    input: Option<String>,
) -> pgrx::JsonB {
    let max_bytes = crate::guc::script_limits(true).max_record_size;
    if let Some(Err(message)) = input
        .as_deref()
        .map(|text| check_action_input(text, max_bytes))
    {
        ApiError::invalid(format!("action {action_name}: {message}"))
            .hint("Pass the input as one JSON value, e.g. '{\"id\": 1}'.")
            .raise();
    }
    require(
        "SELECT EXISTS (SELECT 1 FROM nango.action_configs WHERE provider_config_key = $1 AND name = $2)",
        provider_config_key,
        action_name,
        || {
            format!(
                "action \"{action_name}\" of integration \"{provider_config_key}\" is not deployed"
            )
        },
    );
    require_connection(provider_config_key, connection_id);
    let response = run_in_worker(&OneOffRequest {
        kind: "action".into(),
        integration: provider_config_key.into(),
        connection_id: connection_id.into(),
        name: action_name.into(),
        input,
        last_sync_date: None,
        connection: None,
    });
    output_or_error(response, &format!("action {action_name}"))
}

/// Runs a sync's script for one connection and returns what it would save, by model; stores nothing.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn dryrun(
    provider_config_key: &str,
    sync_name: &str,
    connection_id: &str,
    last_sync_date: default!(Option<pgrx::datum::TimestampWithTimeZone>, "NULL"),
) -> pgrx::JsonB {
    require(
        "SELECT EXISTS (SELECT 1 FROM nango.sync_configs WHERE provider_config_key = $1 AND name = $2)",
        provider_config_key,
        sync_name,
        || format!("sync \"{sync_name}\" of integration \"{provider_config_key}\" is not deployed"),
    );
    require_connection(provider_config_key, connection_id);
    let last_sync_date = last_sync_date.and_then(|t| {
        Spi::get_one_with_args::<String>("SELECT to_json($1::timestamptz) #>> '{}'", &[t.into()])
            .ok()
            .flatten()
    });
    let response = run_in_worker(&OneOffRequest {
        kind: "dryrun".into(),
        integration: provider_config_key.into(),
        connection_id: connection_id.into(),
        name: sync_name.into(),
        input: None,
        last_sync_date,
        connection: None,
    });
    output_or_error(response, &format!("dry run of sync {sync_name}"))
}

fn require(sql: &str, first: &str, second: &str, message: impl FnOnce() -> String) {
    let exists = Spi::get_one_with_args::<bool>(sql, &[first.into(), second.into()])
        .ok()
        .flatten()
        .unwrap_or(false);
    if !exists {
        ApiError::undefined(message())
            .hint("See SELECT * FROM nango.sync_configs / nango.action_configs, or deploy it with nango.deploy.")
            .raise();
    }
}

/// Errors as every other connection-taking function does (`nango._connection`).
fn require_connection(provider_config_key: &str, connection_id: &str) {
    Spi::run_with_args(
        "SELECT nango._connection($1, $2)",
        &[provider_config_key.into(), connection_id.into()],
    )
    .unwrap_or_else(|e| ApiError::from(e).raise());
}

/// The output, or an ERROR: an `ActionError`'s message with its payload as DETAIL, a run past its time limit
/// (57014), else what failed (38000) with the error type as DETAIL.
fn output_or_error(response: OneOffResponse, what: &str) -> pgrx::JsonB {
    match response {
        OneOffResponse::Output { output } => pgrx::JsonB(output),
        OneOffResponse::Failed {
            error_type: ErrorType::ActionRuntime,
            message,
            payload: Some(payload),
        } => ApiError::script_failed(message)
            .detail(payload.to_string())
            .raise(),
        OneOffResponse::Failed {
            error_type,
            message,
            ..
        } => {
            let message = format!("{what} failed: {message}");
            let error = if error_type == ErrorType::ExecutionTimeout {
                ApiError::timed_out(message)
            } else {
                ApiError::script_failed(message)
            };
            error.detail(format!("error type: {error_type}")).raise()
        }
    }
}
