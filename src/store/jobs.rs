//! A job's life in the database: claimed by its worker (QUEUED → RUNNING), then ended in one transaction
//! that writes the final state, advances `lastSyncDate` on success and sends the notifications, so that a
//! listener is told exactly when the data is visible.

use pg_nango_core::jobs::ErrorType;

use pg_nango_core::providers::oauth::OAuthClient;
use pg_nango_core::providers::{ConnectionInfo, Provider};
use pg_nango_core::records::ModelCounts;
use pg_nango_core::records::notify::{
    OnEventIdentity, RunIdentity, failure_body, on_event_failure_body, success_body,
};
use pg_nango_core::script::{ModuleMap, ScriptKind, ScriptRun};
use serde::Deserialize;
use serde_json::Value;

use super::{deletes, exec, one_json, own_row};
use crate::guc;

/// Everything a run needs, loaded when its worker claims the job.
#[derive(Debug, Deserialize)]
pub struct ClaimedJob {
    pub job_id: i64,
    pub sync_id: i64,
    pub sync_name: String,
    pub models: Vec<String>,
    /// `track_deletes: true`: records a successful run did not see are marked deleted.
    pub track_deletes: bool,
    pub entry_file: String,
    pub job_type: String,
    pub last_sync_date: Option<String>,
    pub started_at: String,
    /// A webhook run's payload as JSON text (taken from `nango.webhook_payloads` by the claim).
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(flatten)]
    pub context: ScriptContext,
}

/// The connection side of a run (`nango._script_context`): connection, credentials, provider, OAuth client,
/// deployed files.
#[derive(Debug, Deserialize)]
pub struct ScriptContext {
    pub connection: i64,
    pub connection_id: String,
    pub provider_config_key: String,
    pub connection_config: Value,
    pub credentials: Option<Value>,
    pub provider_name: String,
    pub provider: Provider,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// The deployed modules by path (empty when nothing is deployed), with those this process kept.
    #[serde(
        rename = "files",
        deserialize_with = "super::modules::deserialize_files"
    )]
    pub modules: ModuleMap,
}

impl ClaimedJob {
    /// A run of the sync's `onWebhook` (`nango.handle_webhook`), not of the sync itself.
    pub fn is_webhook(&self) -> bool {
        self.job_type == "WEBHOOK"
    }

    pub fn identity(&self) -> RunIdentity {
        RunIdentity {
            connection_id: self.context.connection_id.clone(),
            provider_config_key: self.context.provider_config_key.clone(),
            sync_name: self.sync_name.clone(),
            sync_type: self.job_type.clone(),
            job_id: self.job_id,
        }
    }
}

/// A queued job for a run worker to take.
pub enum NextJob {
    /// A sync or webhook run, for [`claim`].
    Sync(i64),
    /// A `post-connection-creation` script's run.
    OnEvent(i64),
}

/// The oldest queued job no other worker is looking at. The claim that follows, in its own transaction,
/// checks that the job is still queued: two workers that picked the same job cannot both run it.
///
/// Oldest first is also fair: the scheduler queues the due syncs of a tick interleaved by connection and
/// integration, so that one connection with many due syncs cannot take every worker.
pub fn next_queued() -> Result<Option<NextJob>, String> {
    let next = one_json(
        "SELECT jsonb_build_object('id', id, 'type', type) FROM nango.jobs
         WHERE status = 'QUEUED' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
        &[],
    )?;
    Ok(next.and_then(|next| {
        let id = next["id"].as_i64()?;
        Some(if next["type"] == "ON_EVENT" {
            NextJob::OnEvent(id)
        } else {
            NextJob::Sync(id)
        })
    }))
}

/// Marks a queued sync or webhook job RUNNING by this process and loads it. `None` when it is not queued any
/// more (another worker took it, or it was cancelled) or when its sync, connection or provider is gone.
/// A webhook run takes its payload, and leaves the sync's `lastSyncDate`, checkpoint and windows alone.
pub fn claim(job_id: i64) -> Result<Option<ClaimedJob>, String> {
    let claimed = one_json(
        &format!("WITH claimed AS (
             UPDATE nango.jobs j SET status = 'RUNNING', pid = pg_backend_pid(), started_at = now()
             WHERE j.id = $1 AND j.status = 'QUEUED' AND j.type <> 'ON_EVENT' RETURNING j.*),
         payload AS (
             DELETE FROM nango.webhook_payloads p USING claimed j WHERE p.job = j.id
             RETURNING p.payload::text AS text),
         reset AS (
             UPDATE nango.syncs s SET last_sync_date = NULL FROM claimed j WHERE s.id = j.sync AND j.full_resync
             RETURNING s.id),
         cleared_checkpoint AS (
             DELETE FROM nango.checkpoints c USING claimed j WHERE c.sync = j.sync AND j.full_resync RETURNING 1),
         cleared_windows AS (
             DELETE FROM nango.delete_windows w USING claimed j WHERE w.sync = j.sync AND j.full_resync RETURNING 1)
         SELECT jsonb_build_object(
             'job_id', j.id, 'sync_id', s.id, 'sync_name', sc.name, 'models', to_jsonb(sc.models),
             'track_deletes', sc.track_deletes, 'entry_file', sc.entry_file,
             'job_type', CASE WHEN j.type = 'WEBHOOK' THEN 'WEBHOOK'
                              WHEN sc.sync_type = 'incremental' AND s.last_sync_date IS NOT NULL AND NOT j.full_resync
                              THEN 'INCREMENTAL' ELSE 'INITIAL' END,
             'last_sync_date', CASE WHEN j.full_resync THEN NULL ELSE to_json(s.last_sync_date) #>> '{{}}' END,
             'started_at', to_json(j.started_at) #>> '{{}}',
             'payload', (SELECT p.text FROM payload p)) || ctx.context
         FROM claimed j
         JOIN nango.syncs s ON s.id = j.sync
         JOIN nango.sync_configs sc ON sc.id = s.sync_config
         CROSS JOIN LATERAL (SELECT {} AS context) ctx
         WHERE ctx.context IS NOT NULL", super::modules::script_context_call("s.connection", 2)),
        &[job_id.into(), super::modules::known_hashes().into()],
    )
    .inspect_err(|_| super::modules::forget())?;
    let Some(claimed) = claimed else {
        return Ok(None);
    };
    let job: ClaimedJob =
        serde_json::from_value(claimed).map_err(|e| format!("could not read job {job_id}: {e}"))?;
    exec(
        "UPDATE nango.jobs SET type = $2 WHERE id = $1",
        &[job_id.into(), job.job_type.as_str().into()],
    )?;
    if job.track_deletes && !job.is_webhook() {
        deletes::open_implicit_windows(job.sync_id, &job.models, job_id)?;
    }
    Ok(Some(job))
}

/// The successful end of a run: deletions of `track_deletes`, SUCCESS, `lastSyncDate` = the run's start, one
/// notification per model. A webhook run only ends SUCCESS and notifies (syncType `WEBHOOK`).
pub fn finish_success(job: &ClaimedJob) -> Result<(), String> {
    if !job.is_webhook() {
        deletes::close_implicit_windows(job.sync_id, job.context.connection, job.job_id)?;
    }
    let result = one_json(
        "UPDATE nango.jobs SET status = 'SUCCESS', ended_at = now() WHERE id = $1 AND status = 'RUNNING' RETURNING result",
        &[job.job_id.into()],
    )?
    .ok_or_else(|| format!("job {} is no longer running", job.job_id))?;
    if !job.is_webhook() {
        exec(
            "UPDATE nango.syncs SET last_sync_date = (SELECT started_at FROM nango.jobs WHERE id = $2) WHERE id = $1",
            &[job.sync_id.into(), job.job_id.into()],
        )?;
    }
    let identity = job.identity();
    for model in &job.models {
        // A model the run wrote nothing to has no counts yet: zero, as Nango reports it.
        let counts: ModelCounts = match result.get(model) {
            Some(counts) => own_row("a job's counts", Some(counts.clone()))?,
            None => ModelCounts::default(),
        };
        notify(&success_body(&identity, model, counts, &job.started_at))?;
    }
    Ok(())
}

/// Stores where the time of a run went (`nango.jobs.phases`): `phases` as the worker measured them, and the
/// wait from the job's queueing to `claim_started` (seconds since the Unix epoch); and the requests the
/// script made in all (`nango.jobs.progress`).
pub fn record_phases(
    job_id: i64,
    phases: &Value,
    claim_started: f64,
    requests: i64,
) -> Result<(), String> {
    exec(
        "UPDATE nango.jobs SET phases = jsonb_strip_nulls($2::jsonb
             || jsonb_build_object('wait', round((extract(epoch FROM to_timestamp($3) - created_at) * 1000)::numeric, 1))),
             progress = progress || jsonb_build_object('requests', $4::bigint)
         WHERE id = $1",
        &[
            job_id.into(),
            phases.to_string().as_str().into(),
            claim_started.into(),
            requests.into(),
        ],
    )
}

/// True when this process holds `job_id` RUNNING (it claimed the job but could not load it).
pub fn held_by_this_process(job_id: i64) -> Result<bool, String> {
    Ok(one_json(
        "SELECT to_jsonb(EXISTS (SELECT 1 FROM nango.jobs WHERE id = $1 AND status = 'RUNNING' AND pid = pg_backend_pid()))",
        &[job_id.into()],
    )? == Some(Value::Bool(true)))
}

/// The failed end of a run (`CANCELLED` when it was cancelled), with its notification: a sync's failure
/// body, or for an on-event script [`on_event_failure_body`].
pub fn finish_failure(job_id: i64, error_type: ErrorType, description: &str) -> Result<(), String> {
    let status = error_type.final_status().as_str();
    let ended = one_json(
        // The sync may be gone (its connection deleted while it ran): the job is ended all the same.
        "UPDATE nango.jobs j SET status = $2, ended_at = now(), error = jsonb_build_object('type', $3::text, 'description', $4::text)
         WHERE j.id = $1 AND j.status IN ('QUEUED', 'RUNNING')
         RETURNING jsonb_build_object('connection_id', j.connection_id, 'provider_config_key', j.integration,
                                      'sync_name', j.sync_name, 'type', j.type,
                                      'event', (SELECT oc.event FROM nango.on_event_configs oc
                                                WHERE oc.provider_config_key = j.integration AND oc.name = j.sync_name),
                                      'models', (SELECT coalesce(to_jsonb(sc.models), '[]') FROM nango.sync_configs sc
                                                 WHERE sc.provider_config_key = j.integration AND sc.name = j.sync_name),
                                      'started_at', to_json(coalesce(j.started_at, j.created_at)) #>> '{}',
                                      'failed_at', to_json(now()) #>> '{}')",
        &[
            job_id.into(),
            status.into(),
            error_type.as_str().into(),
            description.into(),
        ],
    )?;
    let Some(ended) = ended else {
        return Ok(());
    };
    let text = |key: &str| {
        ended
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if text("type") == "ON_EVENT" {
        let identity = OnEventIdentity {
            connection_id: text("connection_id"),
            provider_config_key: text("provider_config_key"),
            name: text("sync_name"),
            event: text("event"),
            job_id,
        };
        return notify(&on_event_failure_body(
            &identity,
            error_type,
            description,
            &text("started_at"),
            &text("failed_at"),
        ));
    }
    let identity = RunIdentity {
        connection_id: text("connection_id"),
        provider_config_key: text("provider_config_key"),
        sync_name: text("sync_name"),
        sync_type: text("type"),
        job_id,
    };
    let models: Vec<String> = own_row("the models of a failed job", Some(ended["models"].clone()))?;
    notify(&failure_body(
        &identity,
        &models,
        error_type,
        description,
        &text("started_at"),
        &text("failed_at"),
    ))
}

fn notify(body: &str) -> Result<(), String> {
    exec(
        "SELECT pg_notify($1, $2)",
        &[guc::notify_channel().as_str().into(), body.into()],
    )
}

impl ScriptContext {
    /// The runtime's description of a run of `entry` with this context.
    pub fn script_run(
        &self,
        kind: ScriptKind,
        entry: &str,
        models: Vec<String>,
        last_sync_date: Option<String>,
    ) -> ScriptRun {
        // An on-event script runs under an action's limits: its caller may be waiting for it.
        let action = matches!(kind, ScriptKind::Action { .. } | ScriptKind::OnEvent);
        ScriptRun {
            kind,
            entry: entry.to_string(),
            modules: self.modules.clone(),
            provider_name: self.provider_name.clone(),
            provider: self.provider.clone(),
            connection: ConnectionInfo {
                connection_id: self.connection_id.clone(),
                provider_config_key: self.provider_config_key.clone(),
                connection_config: self.connection_config.clone(),
                credentials: self.credentials.clone().unwrap_or_default(),
            },
            oauth_client: match (&self.client_id, &self.client_secret) {
                (Some(client_id), Some(client_secret)) => Some(OAuthClient {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                }),
                _ => None,
            },
            last_sync_date,
            models,
            limits: guc::script_limits(action),
        }
    }
}
