//! On-event scripts: `exec(nango)` of an integration's `createOnEvent` definitions, with an action's SDK.
//!
//! - `post-connection-creation`: `nango.create_connection` queues one job per script (type `ON_EVENT`); the
//!   scheduler starts a run worker for it once the connection is committed ([`run_queued`]).
//! - `pre-connection-deletion` and `validate-connection`: the caller waits for a one-off worker
//!   ([`serve`]), which writes the job row itself, in its own transaction, so the run shows in `nango.jobs`
//!   and `nango.logs` whatever the caller's transaction then does. A validate-connection script runs before
//!   its connection is stored: the connection comes in the request, and what the script leaves of its
//!   credentials and metadata goes back in the answer.
//!
//! A failed script ends its job ERROR with a notification ([`crate::store::jobs::finish_failure`]).

use pg_nango_core::jobs::ErrorType;
use std::cell::RefCell;
use std::rc::Rc;

use pg_nango_core::script::{Host, ScriptError, ScriptKind};
use serde::Deserialize;
use serde_json::{Value, json};

use super::oneoff::{OneOffRequest, OneOffResponse, caller_gone, failed, start_request};
use super::run::{claimed_or_ended, end_failed, run_isolated, set_application_name};
use crate::store::host::SpiHost;
use crate::store::jobs::ScriptContext;
use crate::store::pending::PendingHost;
use crate::store::{exec, one_json};
use crate::txn::run_txn;

/// An on-event script and what its run needs.
#[derive(Deserialize)]
struct Loaded {
    name: String,
    entry_file: String,
    on_event: i64,
    #[serde(flatten)]
    context: ScriptContext,
}

/// Runs a queued `post-connection-creation` job; called by the run worker the scheduler started for it.
pub fn run_queued(job_id: i64) {
    let loaded = run_txn(|| {
        one_json(
            &format!("WITH claimed AS (
                 UPDATE nango.jobs j SET status = 'RUNNING', pid = pg_backend_pid(), started_at = now()
                 WHERE j.id = $1 AND j.status = 'QUEUED' AND j.type = 'ON_EVENT' RETURNING j.*)
             SELECT jsonb_build_object('name', oc.name, 'entry_file', oc.entry_file, 'on_event', oc.id)
                    || {}
             FROM claimed j
             JOIN nango.on_event_configs oc ON oc.provider_config_key = j.integration AND oc.name = j.sync_name
             JOIN nango.connections c ON c.provider_config_key = j.integration AND c.connection_id = j.connection_id",
             crate::store::modules::script_context_call("c.id", 2)),
            &[job_id.into(), crate::store::modules::known_hashes().into()],
        )
        .inspect_err(|_| crate::store::modules::forget())
    });
    let loaded = loaded.and_then(|loaded| {
        loaded
            .map(|l| serde_json::from_value::<Loaded>(l).map_err(|e| e.to_string()))
            .transpose()
    });
    let gone = "the on-event script, its connection or its provider no longer exists";
    let Some(loaded) = claimed_or_ended(job_id, loaded, gone) else {
        return;
    };
    set_application_name(&format!(
        "pg_nango on-event {}/{} {}",
        loaded.context.provider_config_key, loaded.name, loaded.context.connection_id
    ));
    let host = SpiHost::for_job(job_id, 0, loaded.context.connection, Vec::new());
    let host = Rc::new(RefCell::new(host));
    let _ = execute(job_id, &loaded, host.clone(), None);
    host.borrow_mut().finish();
}

/// Runs an on-event script for a caller that waits (see the module's doc); answers `{credentials,
/// metadata}` for a validate-connection script, `null` otherwise.
pub fn serve(request: &OneOffRequest) -> OneOffResponse {
    let (_, (job_id, loaded)) = match start_request(request, |request| run_txn(|| start(request))) {
        Ok(started) => started,
        Err(response) => return response,
    };
    let inner = SpiHost::for_job(job_id, 0, loaded.context.connection, Vec::new());
    match &request.connection {
        Some(pending) => {
            let host = Rc::new(RefCell::new(PendingHost {
                inner,
                credentials: loaded.context.credentials.clone().unwrap_or_default(),
                metadata: pending
                    .get("metadata")
                    .cloned()
                    .unwrap_or_else(|| json!({})),
            }));
            let outcome = execute(job_id, &loaded, host.clone(), Some(caller_gone));
            host.borrow_mut().inner.finish();
            let host = host.borrow();
            respond(
                outcome,
                json!({"credentials": host.credentials, "metadata": host.metadata}),
            )
        }
        None => {
            let host = Rc::new(RefCell::new(inner));
            let outcome = execute(job_id, &loaded, host.clone(), Some(caller_gone));
            host.borrow_mut().finish();
            respond(outcome, Value::Null)
        }
    }
}

fn respond(outcome: Result<(), ScriptError>, output: Value) -> OneOffResponse {
    match outcome {
        Ok(()) => OneOffResponse::Output { output },
        Err(error) => failed(error.error_type(), error.message()),
    }
}

/// Loads the script and its context, and writes its job row RUNNING (committed with this transaction).
/// `None` when the script, its integration or its (stored) connection does not exist.
fn start(request: &OneOffRequest) -> Result<Option<(i64, Loaded)>, String> {
    let args = [
        request.integration.as_str().into(),
        request.name.as_str().into(),
        request.connection_id.as_str().into(),
    ];
    let loaded = match &request.connection {
        None => one_json(
            "SELECT jsonb_build_object('name', oc.name, 'entry_file', oc.entry_file, 'on_event', oc.id) || nango._script_context(c.id)
             FROM nango.on_event_configs oc
             JOIN nango.connections c ON c.provider_config_key = oc.provider_config_key
             WHERE oc.provider_config_key = $1 AND oc.name = $2 AND c.connection_id = $3",
            &args,
        )?,
        Some(pending) => one_json(
            "SELECT jsonb_build_object('name', oc.name, 'entry_file', oc.entry_file, 'on_event', oc.id, 'connection', 0,
                                       'connection_id', $3::text, 'provider_config_key', $1::text)
                    || nango._integration_context($1)
             FROM nango.on_event_configs oc
             WHERE oc.provider_config_key = $1 AND oc.name = $2",
            &args,
        )?
        .map(|mut loaded| {
            // The connection's secrets never pass through SQL text or parameters.
            for key in ["credentials", "connection_config"] {
                loaded[key] = pending.get(key).cloned().unwrap_or_else(|| json!({}));
            }
            loaded
        }),
    };
    let Some(loaded) = loaded else {
        return Ok(None);
    };
    let loaded: Loaded = serde_json::from_value(loaded).map_err(|e| e.to_string())?;
    let job_id = one_json(
        "INSERT INTO nango.jobs (on_event, integration, connection_id, sync_name, type, status, pid, started_at)
         VALUES ($1, $2, $3, $4, 'ON_EVENT', 'RUNNING', pg_backend_pid(), now())
         RETURNING to_jsonb(id)",
        &[
            loaded.on_event.into(),
            request.integration.as_str().into(),
            request.connection_id.as_str().into(),
            request.name.as_str().into(),
        ],
    )?
    .and_then(|id| id.as_i64())
    .ok_or("could not write the run's job")?;
    Ok(Some((job_id, loaded)))
}

/// Runs the script of job `job_id` and ends the job: SUCCESS, or ERROR with its notification.
fn execute(
    job_id: i64,
    loaded: &Loaded,
    host: Rc<RefCell<dyn Host>>,
    also_stop: Option<fn() -> bool>,
) -> Result<(), ScriptError> {
    let script =
        loaded
            .context
            .script_run(ScriptKind::OnEvent, &loaded.entry_file, Vec::new(), None);
    match run_isolated(script, host, also_stop) {
        Ok(_) => {
            let ended = run_txn(|| {
                exec(
                    "UPDATE nango.jobs SET status = 'SUCCESS', ended_at = now() WHERE id = $1 AND status = 'RUNNING'",
                    &[job_id.into()],
                )
            });
            if let Err(error) = ended {
                end_failed(
                    job_id,
                    ErrorType::Internal,
                    &format!("could not record the end of the run: {error}"),
                );
            }
            Ok(())
        }
        Err(error) => {
            end_failed(job_id, error.error_type(), &error.message());
            Err(error)
        }
    }
}
