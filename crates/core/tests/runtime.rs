//! The script runtime against the real mock API over loopback, with an in-memory host.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_nango_core::providers::{ConnectionInfo, Provider};
use pg_nango_core::records::batch::RecordBatch;
use pg_nango_core::script::compile::compile;
use pg_nango_core::script::{
    Host, Limits, SaveOp, ScriptError, ScriptKind, ScriptRun, StoredModule, run_script,
};
use pg_nango_mock_api::{DEMO_TICKETS, MockServer};
use serde_json::{Value, json};

#[derive(Default)]
struct MemoryHost {
    saved: Vec<(SaveOp, String, Value)>,
    logs: Vec<(String, String)>,
    metadata: Value,
}

impl Host for MemoryHost {
    fn save(&mut self, op: SaveOp, model: &str, batch: RecordBatch) -> Result<(), String> {
        self.saved.push((
            op,
            model.to_string(),
            serde_json::from_str(&batch.json_array()).unwrap(),
        ));
        Ok(())
    }
    fn log(&mut self, level: &str, message: &str, _payload: Option<&str>) {
        self.logs.push((level.to_string(), message.to_string()));
    }
    fn metadata(&mut self) -> Result<String, String> {
        Ok(self.metadata.to_string())
    }
    fn set_metadata(&mut self, json: &str, _merge: bool) -> Result<(), String> {
        self.metadata = serde_json::from_str(json).unwrap();
        Ok(())
    }
    fn lock_credentials(&mut self) -> Result<Value, String> {
        Err("no refresh in these tests".into())
    }
    fn store_credentials(&mut self, _credentials: &Value) -> Result<(), String> {
        Err("no refresh in these tests".into())
    }
    fn release_credentials(&mut self) {}
}

fn server() -> &'static MockServer {
    static SERVER: std::sync::OnceLock<MockServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| MockServer::start(0, "k").unwrap())
}

fn run(
    files: &[(&str, &str)],
    entry: &str,
    kind: ScriptKind,
    timeout: Duration,
) -> (Result<Option<Value>, ScriptError>, MemoryHost) {
    let modules: HashMap<String, StoredModule> = files
        .iter()
        .map(|(path, src)| {
            let compiled = compile(path, src).unwrap();
            (
                path.to_string(),
                StoredModule {
                    js: compiled.js,
                    source_map: compiled.source_map,
                },
            )
        })
        .collect();
    let provider: Provider = serde_yaml::from_str(
        "proxy:\n  base_url: ${connectionConfig.base_url}\n  headers:\n    authorization: Bearer ${apiKey}\n  paginate:\n    type: cursor\n    cursor_path_in_response: next_cursor\n    cursor_name_in_request: cursor\n    response_path: data\n    limit_name_in_request: limit\n",
    )
    .unwrap();
    let host = Rc::new(RefCell::new(MemoryHost::default()));
    let script = ScriptRun {
        kind,
        entry: entry.to_string(),
        modules: Rc::new(modules),
        provider_name: "demo".into(),
        provider,
        oauth_client: None,
        connection: ConnectionInfo {
            connection_id: "c1".into(),
            provider_config_key: "demo".into(),
            connection_config: json!({"base_url": server().url()}),
            credentials: json!({"type": "API_KEY", "apiKey": "k"}),
        },
        last_sync_date: None,
        models: vec!["Ticket".into()],
        limits: Limits {
            timeout,
            memory_bytes: 64 << 20,
            http_timeout: Duration::from_secs(5),
            retry_base_delay: Duration::from_millis(10),
            ..Limits::default()
        },
    };
    let result = run_script(script, host.clone(), Arc::new(|| false));
    let host = Rc::try_unwrap(host).ok().unwrap().into_inner();
    (result, host)
}

#[test]
fn paginates_and_saves_through_a_mapper() {
    let sync = "import type { NangoSync, Ticket } from '../../models';\nimport { toTicket } from '../mappers/to-ticket.js';\n\
        export default async function fetchData(nango: NangoSync): Promise<void> {\n\
          for await (const page of nango.paginate({ endpoint: '/tickets', paginate: { limit: 100 } })) {\n\
            await nango.batchSave(page.map(toTicket), 'Ticket');\n  }\n  await nango.log('done', { pages: 3 });\n}\n";
    let mapper = "export function toTicket(raw: any) { return { id: raw.id, subject: raw.subject as string }; }\n";
    let (result, host) = run(
        &[
            ("demo/syncs/tickets.ts", sync),
            ("demo/mappers/to-ticket.ts", mapper),
        ],
        "demo/syncs/tickets.ts",
        ScriptKind::Sync,
        Duration::from_secs(10),
    );
    result.unwrap();
    let total: usize = host
        .saved
        .iter()
        .map(|(_, _, records)| records.as_array().unwrap().len())
        .sum();
    assert_eq!(total, DEMO_TICKETS);
    assert_eq!(host.saved.len(), 3);
    assert_eq!(
        host.saved[0].2[0],
        json!({"id": 1, "subject": "Invoice is wrong (#1)"})
    );
    assert_eq!(
        host.logs.last().unwrap(),
        &("info".to_string(), "done".to_string())
    );
}

#[test]
fn thrown_error_names_the_typescript_line() {
    let sync = "interface X {\n  a: number;\n}\n\nexport default async function fetchData(nango: any) {\n  const x: X = { a: 1 };\n  throw new Error('boom ' + x.a);\n}\n";
    let (result, _) = run(
        &[("demo/syncs/broken.ts", sync)],
        "demo/syncs/broken.ts",
        ScriptKind::Sync,
        Duration::from_secs(10),
    );
    match result.unwrap_err() {
        ScriptError::Thrown {
            message, location, ..
        } => {
            assert_eq!(message, "boom 1");
            assert_eq!(
                location.as_deref().map(|l| l.rsplit_once(':').unwrap().0),
                Some("demo/syncs/broken.ts:7")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn infinite_loop_hits_the_time_limit() {
    let sync = "export default async function fetchData(nango: any) { while (true) {} }\n";
    let started = Instant::now();
    let (result, _) = run(
        &[("l.ts", sync)],
        "l.ts",
        ScriptKind::Sync,
        Duration::from_millis(500),
    );
    assert_eq!(
        result.unwrap_err(),
        ScriptError::Timeout(Duration::from_millis(500))
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn slow_http_hits_the_time_limit() {
    let sync = "export default async function fetchData(nango: any) { await nango.get({ endpoint: '/slow', params: { ms: 3000 } }); }\n";
    let (result, _) = run(
        &[("s.ts", sync)],
        "s.ts",
        ScriptKind::Sync,
        Duration::from_millis(300),
    );
    assert_eq!(
        result.unwrap_err(),
        ScriptError::Timeout(Duration::from_millis(300))
    );
}

#[test]
fn memory_bomb_is_stopped() {
    let sync = "export default async function fetchData(nango: any) { const a: string[] = []; while (true) { a.push('x'.repeat(1000) + a.length); } }\n";
    let (result, _) = run(
        &[("m.ts", sync)],
        "m.ts",
        ScriptKind::Sync,
        Duration::from_secs(30),
    );
    assert_eq!(result.unwrap_err(), ScriptError::OutOfMemory(64 << 20));
}

#[test]
fn invalid_records_reject_the_whole_batch() {
    let sync = "export default async function fetchData(nango: any) { await nango.batchSave([{ id: 1 }, { name: 'x' }], 'Ticket'); }\n";
    let (result, host) = run(
        &[("v.ts", sync)],
        "v.ts",
        ScriptKind::Sync,
        Duration::from_secs(5),
    );
    assert!(
        result
            .unwrap_err()
            .message()
            .contains("record at index 1 has no id field")
    );
    assert!(host.saved.is_empty());
}

#[test]
fn http_errors_carry_the_status() {
    let sync = "export default async function fetchData(nango: any) { await nango.get({ endpoint: '/status/503', retries: 2 }); }\n";
    let (result, host) = run(
        &[("h.ts", sync)],
        "h.ts",
        ScriptKind::Sync,
        Duration::from_secs(5),
    );
    let error = result.unwrap_err();
    assert_eq!(error.error_type(), "script_http_error");
    assert!(error.message().contains("status code 503"), "{error}");
    assert_eq!(
        host.logs
            .iter()
            .filter(|(level, m)| level == "warn" && m.starts_with("Retrying HTTP call"))
            .count(),
        2
    );
}

#[test]
fn action_returns_output_and_action_error_carries_payload() {
    let action = "export default async function runAction(nango: any, input: { n: number }) {\n  if (input.n < 0) throw new nango.ActionError({ message: 'negative', n: input.n });\n  return { doubled: input.n * 2 };\n}\n";
    let (result, _) = run(
        &[("a.ts", action)],
        "a.ts",
        ScriptKind::Action {
            input_json: Some("{\"n\":21}".into()),
        },
        Duration::from_secs(5),
    );
    assert_eq!(result.unwrap(), Some(json!({"doubled": 42})));
    let (result, _) = run(
        &[("a.ts", action)],
        "a.ts",
        ScriptKind::Action {
            input_json: Some("{\"n\":-1}".into()),
        },
        Duration::from_secs(5),
    );
    assert_eq!(
        result.unwrap_err(),
        ScriptError::Action {
            message: "negative".into(),
            payload: json!({"message": "negative", "n": -1})
        }
    );
}

#[test]
fn network_errors_are_retried_then_fail_the_run() {
    // Nothing listens on a port just released.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sync = format!(
        "export default async function fetchData(nango) {{\n  await nango.get({{ endpoint: '/x', baseUrlOverride: 'http://127.0.0.1:{closed}', retries: 2 }});\n}}\n"
    );
    let (result, host) = run(
        &[("demo/syncs/down.js", &sync)],
        "demo/syncs/down.js",
        ScriptKind::Sync,
        Duration::from_secs(10),
    );
    let retries: Vec<&str> = host
        .logs
        .iter()
        .filter(|(_, m)| m.starts_with("Retrying HTTP call"))
        .map(|(_, m)| m.as_str())
        .collect();
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(
        retries[0].ends_with("Waiting for 10ms [1/2]"),
        "{}",
        retries[0]
    );
    match result {
        Err(ScriptError::Thrown { message, .. }) => {
            assert!(
                message.contains(&format!("127.0.0.1:{closed}")),
                "{message}"
            )
        }
        other => panic!("expected a thrown error, got {other:?}"),
    }
}
