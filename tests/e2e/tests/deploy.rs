//! Deploying real `nango.yaml` shapes: the flat v1 format runs like v2, and the error catalogue reaches the
//! SQL caller with file, line and reason. Its own binary: these deploys replace the fixture's.

use pg_nango_e2e::*;
use serde_json::{Value, json};

const V1: &str = "integrations:
  demo:
    tickets:
      type: sync
      runs: every 5 minutes
      returns: Ticket
      auto_start: false
      description: Tickets\tfrom the demo API
    close-ticket:
      type: action
      returns: Ticket
models:
  Ticket:
    id: string
    subject: string
    status: open | pending | closed
";

fn files() -> Value {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../nango-integrations/demo");
    let mut files = serde_json::Map::new();
    for relative in ["syncs/tickets.ts", "mappers/to-ticket.ts"] {
        files.insert(
            format!("demo/{relative}"),
            json!(std::fs::read_to_string(root.join(relative)).unwrap()),
        );
    }
    files.insert(
        // A plain JavaScript script is deployed as it is.
        "demo/actions/close-ticket.js".into(),
        json!("export default async function runAction(nango, input) {\n  return { id: String(input.id), subject: 'closed', status: 'closed' };\n}\n"),
    );
    Value::Object(files)
}

#[test]
fn a_v1_config_deploys_and_runs() {
    let mut client = connect();
    let summary: Value = client
        .query_one(
            "SELECT nango.deploy($1::text, $2::jsonb, allow_destructive => true)",
            &[&V1, &files()],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        summary["syncs"],
        json!([{"integration": "demo", "name": "tickets", "file": "demo/syncs/tickets.ts", "models": ["Ticket"], "runs": "every 5 minutes"}])
    );
    assert_eq!(
        summary["actions"],
        json!([{"integration": "demo", "name": "close-ticket", "file": "demo/actions/close-ticket.js"}])
    );
    let (sync_type, description): (String, String) = {
        let row = client
            .query_one(
                "SELECT sync_type, description FROM nango.sync_configs WHERE provider_config_key = 'demo' AND name = 'tickets'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    // v1 has no sync_type: Nango treats its syncs as incremental.
    assert_eq!(sync_type, "incremental");
    assert_eq!(description, "Tickets\tfrom the demo API");

    create_connection(&mut client, "demo", "v1-conn");
    let (_, status) = run_sync(&mut client, "demo", "tickets", "v1-conn");
    assert_eq!(status, "SUCCESS");
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.records('Ticket', connection_id => 'v1-conn')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(count, pg_nango_mock_api::DEMO_TICKETS as i64);
    let output: Value = client
        .query_one(
            "SELECT nango.trigger_action('demo', 'v1-conn', 'close-ticket', '{\"id\": 7}')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        output,
        json!({"id": "7", "subject": "closed", "status": "closed"})
    );
}

#[test]
fn catalogue_errors_reach_the_caller_with_line_and_reason() {
    let mut client = connect();
    let cases = [
        (
            V1.replace(
                "  Ticket:\n    id: string\n",
                "  Ticket:\n    name: string\n",
            ),
            "deploy failed: nango.yaml:",
        ),
        (
            V1.replace("integrations:", "integrationz:"),
            "Invalid file format, you should have at least an `integrations` property at the root level",
        ),
        (
            V1.replace(
                "    status: open | pending | closed\n",
                "    tags: Array<string>\n",
            ),
            "nango.yaml:16: model Ticket: generic type Array<…> is not supported",
        ),
    ];
    for (config, expected) in cases {
        let (message, _) = db_error(
            client
                .query_one(
                    "SELECT nango.deploy($1::text, $2::jsonb, allow_destructive => true)",
                    &[&config, &files()],
                )
                .unwrap_err(),
        );
        assert!(
            message.starts_with("deploy failed: nango.yaml:"),
            "{message}"
        );
        assert!(message.contains(expected), "{expected}: {message}");
    }
}
