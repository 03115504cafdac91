//! The bodies of the notifications sent on the `nango` channel after a run, shaped like Nango's sync webhooks.

use crate::jobs::ErrorType;
use serde_json::{Value, json};

use super::ModelCounts;

/// Postgres refuses NOTIFY payloads of 8000 bytes or more.
pub const MAX_PAYLOAD_BYTES: usize = 7999;

/// Who a run belonged to.
#[derive(Debug, Clone)]
pub struct RunIdentity {
    pub connection_id: String,
    pub provider_config_key: String,
    pub sync_name: String,
    /// `INITIAL` or `INCREMENTAL`.
    pub sync_type: String,
    pub job_id: i64,
}

/// The body sent for one model after a successful run. `modified_after` is the ISO start of the run.
pub fn success_body(
    run: &RunIdentity,
    model: &str,
    counts: ModelCounts,
    modified_after: &str,
) -> String {
    json!({
        "from": "nango",
        "type": "sync",
        "connectionId": run.connection_id,
        "providerConfigKey": run.provider_config_key,
        "syncName": run.sync_name,
        "model": model,
        "syncType": run.sync_type,
        "success": true,
        "responseResults": {"added": counts.added, "updated": counts.updated, "deleted": counts.deleted},
        "modifiedAfter": modified_after,
        "queryTimeStamp": modified_after,
        "jobId": run.job_id,
    })
    .to_string()
}

/// The body sent once when a run fails. The description is shortened so that the body always fits.
pub fn failure_body(
    run: &RunIdentity,
    models: &[String],
    error_type: ErrorType,
    description: &str,
    started_at: &str,
    failed_at: &str,
) -> String {
    let build = |description: &str| -> String {
        json!({
            "from": "nango",
            "type": "sync",
            "success": false,
            "connectionId": run.connection_id,
            "providerConfigKey": run.provider_config_key,
            "syncName": run.sync_name,
            "model": models.join(","),
            "syncType": run.sync_type,
            "error": {"type": error_type, "description": description},
            "startedAt": started_at,
            "failedAt": failed_at,
            "jobId": run.job_id,
        })
        .to_string()
    };
    fitted(description, build)
}

/// Who an on-event script (`post-connection-creation`, …) ran for.
#[derive(Debug, Clone)]
pub struct OnEventIdentity {
    pub connection_id: String,
    pub provider_config_key: String,
    /// The script's name.
    pub name: String,
    /// Its event; empty when its script is no longer deployed.
    pub event: String,
    pub job_id: i64,
}

/// The body sent when an on-event script fails (Nango has no webhook for it; this one follows the shape of
/// a sync's failure).
pub fn on_event_failure_body(
    run: &OnEventIdentity,
    error_type: ErrorType,
    description: &str,
    started_at: &str,
    failed_at: &str,
) -> String {
    fitted(description, |description| {
        json!({
            "from": "nango",
            "type": "on-event",
            "success": false,
            "connectionId": run.connection_id,
            "providerConfigKey": run.provider_config_key,
            "name": run.name,
            "event": run.event,
            "error": {"type": error_type, "description": description},
            "startedAt": started_at,
            "failedAt": failed_at,
            "jobId": run.job_id,
        })
        .to_string()
    })
}

/// `build(description)`, with the description shortened until the body fits in a notification.
fn fitted(description: &str, build: impl Fn(&str) -> String) -> String {
    let body = build(description);
    if body.len() <= MAX_PAYLOAD_BYTES {
        return body;
    }
    let overflow = body.len() - MAX_PAYLOAD_BYTES;
    // Escaping can make the JSON longer than the text; cut by characters until it fits.
    let mut keep = description.chars().count().saturating_sub(overflow + 16);
    loop {
        let short: String = description.chars().take(keep).collect::<String>() + "…";
        let body = build(&short);
        if body.len() <= MAX_PAYLOAD_BYTES || keep == 0 {
            return body;
        }
        keep = keep.saturating_sub(64);
    }
}

/// Parses a body back (tests and tools).
pub fn parse(body: &str) -> Option<Value> {
    serde_json::from_str(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunIdentity {
        RunIdentity {
            connection_id: "c1".into(),
            provider_config_key: "demo".into(),
            sync_name: "tickets".into(),
            sync_type: "INITIAL".into(),
            job_id: 7,
        }
    }

    #[test]
    fn success_shape() {
        let body = parse(&success_body(
            &run(),
            "Ticket",
            ModelCounts {
                added: 3,
                updated: 1,
                deleted: 0,
            },
            "2026-01-01T00:00:00Z",
        ))
        .unwrap();
        assert_eq!(
            body["responseResults"],
            json!({"added": 3, "updated": 1, "deleted": 0})
        );
        assert_eq!(body["modifiedAfter"], body["queryTimeStamp"]);
        assert_eq!(body["jobId"], 7);
        assert_eq!(body["success"], true);
    }

    #[test]
    fn failure_fits_the_limit() {
        let long = "x\"".repeat(10_000);
        let body = failure_body(
            &run(),
            &["A".into(), "B".into()],
            ErrorType::Script,
            &long,
            "s",
            "f",
        );
        assert!(body.len() <= MAX_PAYLOAD_BYTES);
        let body = parse(&body).unwrap();
        assert_eq!(body["model"], "A,B");
        assert_eq!(body["success"], false);
    }

    #[test]
    fn on_event_failure_names_the_script_and_fits() {
        let run = OnEventIdentity {
            connection_id: "c1".into(),
            provider_config_key: "demo".into(),
            name: "welcome".into(),
            event: "post-connection-creation".into(),
            job_id: 9,
        };
        let long = "é\\".repeat(10_000);
        let body = on_event_failure_body(&run, ErrorType::Internal, &long, "s", "f");
        assert!(body.len() <= MAX_PAYLOAD_BYTES);
        let body = parse(&body).unwrap();
        assert_eq!(body["type"], "on-event");
        assert_eq!(body["name"], "welcome");
        assert_eq!(body["event"], "post-connection-creation");
        assert_eq!(body["jobId"], 9);
        assert!(
            body["error"]["description"]
                .as_str()
                .unwrap()
                .ends_with('…')
        );
    }
}
