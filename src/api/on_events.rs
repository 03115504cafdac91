//! The on-event scripts a caller waits for, called by `nango.create_connection` (`validate-connection`) and
//! `nango.delete_connection` (`pre-connection-deletion`), each script in a one-off worker (see
//! [`crate::worker::on_event`]); and the size limit of `nango.handle_webhook`'s payload.

use pg_nango_core::jobs::ErrorType;
use pgrx::prelude::*;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::worker::oneoff::{OneOffRequest, OneOffResponse, run_in_worker};

/// The names of the integration's scripts of `event`, in name order.
fn scripts(provider_config_key: &str, event: &str) -> Vec<String> {
    Spi::get_one_with_args::<Vec<String>>(
        "SELECT coalesce(array_agg(oc.name ORDER BY oc.name), '{}') FROM nango.on_event_configs oc
         WHERE oc.provider_config_key = $1 AND oc.event = $2",
        &[provider_config_key.into(), event.into()],
    )
    .unwrap_or_else(|e| {
        ApiError::internal(format!(
            "could not read the on-event scripts of \"{provider_config_key}\": {e}"
        ))
        .raise()
    })
    .unwrap_or_default()
}

fn request(kind: &str, integration: &str, connection_id: &str, name: &str) -> OneOffRequest {
    OneOffRequest {
        kind: kind.into(),
        integration: integration.into(),
        connection_id: connection_id.into(),
        name: name.into(),
        input: None,
        last_sync_date: None,
        connection: None,
    }
}

/// Runs the integration's validate-connection scripts, in name order, on a connection that is not stored
/// yet; the first that throws refuses it, with the script's message as the error. Returns the connection's
/// `{credentials, metadata}` as the scripts left them (a refreshed token, metadata they set), or NULL when
/// the integration has no such script.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _validate_connection(
    provider_config_key: &str,
    connection_id: &str,
    credentials: pgrx::JsonB,
    connection_config: pgrx::JsonB,
    metadata: pgrx::JsonB,
) -> Option<pgrx::JsonB> {
    let names = scripts(provider_config_key, "validate-connection");
    if names.is_empty() {
        return None;
    }
    let mut connection = json!({
        "credentials": credentials.0, "connection_config": connection_config.0, "metadata": metadata.0,
    });
    for name in names {
        let mut asked = request(
            "validate-connection",
            provider_config_key,
            connection_id,
            &name,
        );
        asked.connection = Some(connection.clone());
        match run_in_worker(&asked) {
            OneOffResponse::Output { output } => {
                for key in ["credentials", "metadata"] {
                    if let Some(value) = output.get(key).filter(|v| !v.is_null()) {
                        connection[key] = value.clone();
                    }
                }
            }
            OneOffResponse::Failed {
                error_type,
                message,
                ..
            } => refuse(
                provider_config_key,
                connection_id,
                &name,
                error_type,
                message,
            ),
        }
    }
    let kept = |key: &str| connection.get(key).cloned().unwrap_or(Value::Null);
    Some(pgrx::JsonB(
        json!({"credentials": kept("credentials"), "metadata": kept("metadata")}),
    ))
}

/// Fails the caller with a validate-connection script's message, as Nango answers
/// `connection_validation_failed` with it.
fn refuse(
    integration: &str,
    connection_id: &str,
    name: &str,
    error_type: ErrorType,
    message: String,
) -> ! {
    let message = if message.is_empty() {
        "Connection failed validation".to_string()
    } else {
        message
    };
    pgrx::pg_sys::panic::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
        message,
        "pg_nango",
    )
    .set_detail(format!(
        "The validate-connection script \"{name}\" of integration \"{integration}\" refused connection \"{connection_id}\" (error type: {error_type}); nothing was stored."
    ))
    .report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

/// Runs the connection's pre-connection-deletion scripts, in name order, and waits for each. As on Nango, a
/// failure does not stop the deletion: it is in the script's job and logs, and a WARNING here.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _run_pre_connection_deletion(provider_config_key: &str, connection_id: &str) {
    for name in scripts(provider_config_key, "pre-connection-deletion") {
        let asked = request("on-event", provider_config_key, connection_id, &name);
        if let OneOffResponse::Failed { message, .. } = run_in_worker(&asked) {
            warning!(
                "the pre-connection-deletion script \"{name}\" of integration \"{provider_config_key}\" failed: {message}; the connection is deleted all the same"
            );
        }
    }
}

/// The largest payload `nango.handle_webhook` takes, in bytes of JSON text: `nango.max_response_size`, as
/// for the body of an API response.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn _max_webhook_payload() -> i64 {
    crate::guc::script_limits(false).max_response_size as i64
}
