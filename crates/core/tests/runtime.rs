//! The script runtime against the real mock API over loopback, with an in-memory host.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_nango_core::providers::oauth::OAuthClient;
use pg_nango_core::providers::{ConnectionInfo, Provider};
use pg_nango_core::records::batch::RecordBatch;
use pg_nango_core::script::compile::compile;
use pg_nango_core::script::{
    Host, Limits, SaveOp, ScriptError, ScriptKind, ScriptRun, StoredModule, module_map, run_script,
};
use pg_nango_mock_api::{DEMO_TICKETS, MockServer, OK_JSON, RecordingServer};
use serde_json::{Value, json};

#[derive(Default)]
struct MemoryHost {
    saved: Vec<(SaveOp, String, Value)>,
    logs: Vec<(String, String)>,
    metadata: Value,
    /// The stored credentials, for the tests that refresh an OAuth2 token (others refuse a refresh).
    credentials: Option<Value>,
    /// How long a write blocks the run's thread (as a write in Postgres does).
    save_delay: Duration,
    /// When each write started, in ms since the epoch (as JavaScript's `Date.now()`).
    save_started: Vec<u128>,
}

impl Host for MemoryHost {
    fn save(&mut self, op: SaveOp, model: &str, batch: RecordBatch) -> Result<(), String> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        self.save_started.push(now.unwrap().as_millis());
        std::thread::sleep(self.save_delay);
        if batch.records.iter().any(|r| r.id == "refused") {
            return Err(format!("could not save {model} records: refused"));
        }
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
        self.credentials
            .clone()
            .ok_or_else(|| "no refresh in this test".into())
    }
    fn store_credentials(&mut self, credentials: &Value) -> Result<(), String> {
        self.credentials = Some(credentials.clone());
        Ok(())
    }
    fn release_credentials(&mut self) {}
    fn action_entry(&mut self, name: &str) -> Result<Option<String>, String> {
        Ok((name != "missing").then(|| format!("demo/actions/{name}.js")))
    }
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
    run_with(files, entry, kind, timeout, |_| {}, MemoryHost::default())
}

/// [`run`] with the run changed by `adjust` (provider, connection, limits) and this host.
fn run_with(
    files: &[(&str, &str)],
    entry: &str,
    kind: ScriptKind,
    timeout: Duration,
    adjust: impl FnOnce(&mut ScriptRun),
    host: MemoryHost,
) -> (Result<Option<Value>, ScriptError>, MemoryHost) {
    let modules: HashMap<String, StoredModule> = files
        .iter()
        .map(|(path, src)| {
            let compiled = compile(path, src).unwrap();
            (
                path.to_string(),
                StoredModule::new(compiled.js, compiled.source_map),
            )
        })
        .collect();
    run_modules(modules, entry, kind, timeout, adjust, host)
}

/// [`run_with`] over modules already compiled (a deploy's).
fn run_modules(
    modules: HashMap<String, StoredModule>,
    entry: &str,
    kind: ScriptKind,
    timeout: Duration,
    adjust: impl FnOnce(&mut ScriptRun),
    host: MemoryHost,
) -> (Result<Option<Value>, ScriptError>, MemoryHost) {
    let provider: Provider = serde_yaml::from_str(
        "proxy:\n  base_url: ${connectionConfig.base_url}\n  headers:\n    authorization: Bearer ${apiKey}\n  paginate:\n    type: cursor\n    cursor_path_in_response: next_cursor\n    cursor_name_in_request: cursor\n    response_path: data\n    limit_name_in_request: limit\n",
    )
    .unwrap();
    let host = Rc::new(RefCell::new(host));
    let mut script = ScriptRun {
        kind,
        entry: entry.to_string(),
        modules: module_map(modules),
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
            // The provider's whole base URL comes from connection_config: the mock's host is allowed.
            allowed_hosts: vec!["127.0.0.1".into()],
            ..Limits::default()
        },
    };
    adjust(&mut script);
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
fn a_write_is_made_while_the_next_request_is_in_flight() {
    let sync = "export default async function fetchData(nango: any) {\n\
          for (let page = 0; page < 4; page++) {\n\
            await nango.get({ endpoint: '/slow', params: { ms: 300 } });\n\
            await nango.batchSave([{ id: String(page) }], 'Ticket');\n  }\n}\n";
    let host = MemoryHost {
        save_delay: Duration::from_millis(300),
        ..MemoryHost::default()
    };
    let started = Instant::now();
    let (result, host) = run_with(
        &[("demo/syncs/pages.ts", sync)],
        "demo/syncs/pages.ts",
        ScriptKind::Sync,
        Duration::from_secs(10),
        |_| {},
        host,
    );
    let elapsed = started.elapsed();
    result.unwrap();
    let ids: Vec<&Value> = host.saved.iter().map(|(_, _, r)| &r[0]["id"]).collect();
    assert_eq!(ids, [&json!("0"), &json!("1"), &json!("2"), &json!("3")]);
    // One after the other: 4 × (300 + 300) ms. Overlapped: the first request, then 3 × 300 ms, and the
    // last write.
    assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");
}

#[test]
fn the_script_runs_on_while_its_batch_is_written() {
    // 100 ms of work after the first batchSave resolved; its write takes 300 ms.
    let sync = "export default async function fetchData(nango: any) {\n\
          await nango.batchSave([{ id: 'a' }], 'Ticket');\n\
          const until = Date.now() + 100;\n\
          while (Date.now() < until) {}\n\
          await nango.batchSave([{ id: 'b', worked_until: Date.now() }], 'Ticket');\n}\n";
    let host = MemoryHost {
        save_delay: Duration::from_millis(300),
        ..MemoryHost::default()
    };
    let (result, host) = run_with(
        &[("demo/syncs/work.ts", sync)],
        "demo/syncs/work.ts",
        ScriptKind::Sync,
        Duration::from_secs(10),
        |_| {},
        host,
    );
    result.unwrap();
    let worked_until = host.saved[1].2[0]["worked_until"].as_u64().unwrap() as u128;
    // The first write started before the script's work ended: the two ran at the same time.
    assert!(
        host.save_started[0] < worked_until,
        "write started at {}, work ended at {worked_until}",
        host.save_started[0]
    );
}

#[test]
fn a_write_that_fails_later_fails_the_run_from_the_scripts_call() {
    let sync = "export default async function fetchData(nango: any) {\n\
          await nango.batchSave([{ id: 'a' }], 'Ticket');\n\
          await nango.batchSave([{ id: 'refused' }], 'Ticket');\n\
          try { await nango.getMetadata(); } catch (e) { await nango.log('caught ' + e.message); }\n\
          await nango.batchSave([{ id: 'b' }], 'Ticket');\n}\n";
    let (result, host) = run(
        &[("demo/syncs/refused.ts", sync)],
        "demo/syncs/refused.ts",
        ScriptKind::Sync,
        Duration::from_secs(10),
    );
    match result {
        Err(ScriptError::Thrown {
            message, location, ..
        }) => {
            assert_eq!(message, "could not save Ticket records: refused");
            assert_eq!(
                location.as_deref().map(|l| &l[..24]),
                Some("demo/syncs/refused.ts:3:")
            );
        }
        other => panic!("{other:?}"),
    }
    let ids: Vec<&Value> = host.saved.iter().map(|(_, _, r)| &r[0]["id"]).collect();
    assert_eq!(ids, [&json!("a")]);
    // The script caught the error at its next call.
    assert!(
        host.logs
            .iter()
            .any(|(_, m)| m == "caught could not save Ticket records: refused"),
        "{:?}",
        host.logs
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
    assert_eq!(
        thrown_at(result),
        ("boom 1".into(), Some("demo/syncs/broken.ts:7".into()))
    );
}

/// A run worker runs the same modules again and again: the second run declares them from the bytecode the
/// first compiled, starts from their fresh top-level state, and maps its errors to the same TypeScript line.
#[test]
fn a_second_run_of_the_same_modules_starts_from_their_bytecode_and_fresh_state() {
    let counter = "export let count = 0;\nexport function next(): number {\n  count += 1;\n  return count;\n}\n";
    let sync = "import { next } from '../lib/counter.js';\n\ninterface X {\n  a: number;\n}\n\n\
        export default async function fetchData(nango: any) {\n  await nango.log('count ' + next());\n\
          const x: X = { a: 1 };\n  throw new Error('boom ' + x.a);\n}\n";
    let files = [
        ("demo/lib/counter.ts", counter),
        ("demo/syncs/twice.ts", sync),
    ];
    let shared = module_map(
        files
            .iter()
            .map(|(path, source)| {
                let compiled = compile(path, source).unwrap();
                (
                    path.to_string(),
                    StoredModule::new(compiled.js, compiled.source_map),
                )
            })
            .collect(),
    );
    assert_eq!(shared["demo/lib/counter.ts"].bytecode_len(), 0);
    for run_number in 1..=2 {
        let (result, host) = run_with(
            &files,
            "demo/syncs/twice.ts",
            ScriptKind::Sync,
            Duration::from_secs(10),
            |run| run.modules = shared.clone(),
            MemoryHost::default(),
        );
        assert_eq!(
            host.logs
                .iter()
                .map(|(_, message)| message.as_str())
                .collect::<Vec<_>>(),
            ["count 1"],
            "run {run_number}: the module's state is its own"
        );
        assert_eq!(
            thrown_at(result),
            ("boom 1".into(), Some("demo/syncs/twice.ts:10".into())),
            "run {run_number}"
        );
        for path in ["demo/lib/counter.ts", "demo/syncs/twice.ts"] {
            assert!(shared[path].bytecode_len() > 0, "{path} kept its bytecode");
        }
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
    assert_eq!(error.error_type().as_str(), "script_http_error");
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

fn action(source: &str) -> [(&'static str, String); 1] {
    [("demo/actions/go.js", source.to_string())]
}

fn run_action(
    source: &str,
    adjust: impl FnOnce(&mut ScriptRun),
    host: MemoryHost,
) -> (Result<Option<Value>, ScriptError>, MemoryHost) {
    let files = action(source);
    let files: Vec<(&str, &str)> = files.iter().map(|(p, s)| (*p, s.as_str())).collect();
    run_with(
        &files,
        "demo/actions/go.js",
        ScriptKind::Action { input_json: None },
        Duration::from_secs(10),
        adjust,
        host,
    )
}

fn thrown_message(result: Result<Option<Value>, ScriptError>) -> String {
    thrown_at(result).0
}

/// The message of a thrown error and the file and line it names (without the column).
fn thrown_at(result: Result<Option<Value>, ScriptError>) -> (String, Option<String>) {
    match result {
        Err(ScriptError::Thrown {
            message, location, ..
        }) => {
            let line = location.map(|l| l.rsplit_once(':').unwrap().0.to_string());
            (message, line)
        }
        other => panic!("expected a thrown error, got {other:?}"),
    }
}

#[test]
fn a_private_host_other_than_the_providers_is_refused_unless_allowed() {
    let other = RecordingServer::start("127.0.0.2", OK_JSON.to_vec()).unwrap();
    let source = format!(
        "export default async function runAction(nango) {{\n  const r = await nango.get({{ baseUrlOverride: 'http://127.0.0.2:{}', endpoint: '/x' }});\n  return r.data;\n}}\n",
        other.port
    );
    let (result, _) = run_action(&source, |_| {}, MemoryHost::default());
    assert_eq!(
        thrown_message(result),
        "request to 127.0.0.2 refused: it resolves to a private address (loopback); list the host in nango.allowed_hosts to allow it"
    );
    assert!(other.heads().is_empty(), "{:?}", other.heads());

    // An absolute endpoint and a name (checked by the resolver) are refused the same way.
    let source = format!(
        "export default async function runAction(nango) {{\n  await nango.get({{ endpoint: 'http://localhost:{}/y' }});\n}}\n",
        other.port
    );
    let (result, _) = run_action(&source, |_| {}, MemoryHost::default());
    assert_eq!(
        thrown_message(result),
        "request to localhost refused: it resolves to a private address (loopback); list the host in nango.allowed_hosts to allow it"
    );
    assert!(other.heads().is_empty(), "{:?}", other.heads());

    let source = format!(
        "export default async function runAction(nango) {{\n  const r = await nango.get({{ baseUrlOverride: 'http://127.0.0.2:{}', endpoint: '/x' }});\n  return r.data;\n}}\n",
        other.port
    );
    let (result, _) = run_action(
        &source,
        |run| {
            run.limits
                .allowed_hosts
                .push(format!("127.0.0.2:{}", other.port))
        },
        MemoryHost::default(),
    );
    assert_eq!(result.unwrap(), Some(json!({"ok": true})));
    assert_eq!(other.heads().len(), 1);
}

#[test]
fn credentials_do_not_follow_a_redirect_to_another_host() {
    let other = RecordingServer::start("127.0.0.2", OK_JSON.to_vec()).unwrap();
    let source = format!(
        "export default async function runAction(nango) {{\n  const r = await nango.get({{ endpoint: '/redirect', params: {{ to: 'http://127.0.0.2:{}/landing' }}, headers: {{ 'x-trace': 't1' }} }});\n  return r.data;\n}}\n",
        other.port
    );
    let (result, _) = run_action(
        &source,
        |run| {
            run.provider = serde_yaml::from_str(
                "proxy:\n  base_url: ${connectionConfig.base_url}\n  headers:\n    authorization: Bearer ${apiKey}\n    x-api-key: ${apiKey}\n  query:\n    api_key: ${apiKey}\n",
            )
            .unwrap();
            run.connection.credentials = json!({"type": "API_KEY", "apiKey": "k-secret"});
            run.limits.allowed_hosts.push("127.0.0.2".into());
        },
        MemoryHost::default(),
    );
    assert_eq!(result.unwrap(), Some(json!({"ok": true})));
    let heads = other.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("get /landing http/1.1\r\n"), "{head}");
    assert!(!head.contains("k-secret"), "{head}");
    assert!(!head.contains("authorization"), "{head}");
    assert!(!head.contains("x-api-key"), "{head}");
    assert!(head.contains("x-trace: t1"), "{head}");
}

#[test]
fn a_body_is_never_resent_to_another_origin() {
    let other = RecordingServer::start("127.0.0.2", OK_JSON.to_vec()).unwrap();
    let source = format!(
        "export default async function runAction(nango) {{\n  await nango.post({{ endpoint: '/redirect', params: {{ to: 'http://127.0.0.2:{}/landing', status: '307' }}, data: {{ client_secret: 's3cret' }} }});\n}}\n",
        other.port
    );
    let (result, _) = run_action(
        &source,
        |run| run.limits.allowed_hosts.push("127.0.0.2".into()),
        MemoryHost::default(),
    );
    let message = thrown_message(result);
    assert!(
        message.ends_with(
            "/redirect was redirected (307) to another origin with its body; such a redirect is not followed"
        ),
        "{message}"
    );
    assert!(other.heads().is_empty());
}

#[test]
fn a_redirect_to_a_private_host_is_refused() {
    let other = RecordingServer::start("127.0.0.2", OK_JSON.to_vec()).unwrap();
    let source = format!(
        "export default async function runAction(nango) {{\n  await nango.get({{ endpoint: '/redirect', params: {{ to: 'http://127.0.0.2:{}/landing' }} }});\n}}\n",
        other.port
    );
    let (result, _) = run_action(&source, |_| {}, MemoryHost::default());
    assert_eq!(
        thrown_message(result),
        "request to 127.0.0.2 refused: it resolves to a private address (loopback); list the host in nango.allowed_hosts to allow it"
    );
    assert!(other.heads().is_empty());
}

#[test]
fn a_response_over_max_response_size_fails_the_call() {
    let body = vec![b'a'; 5000];
    let mut announced =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5000\r\nconnection: close\r\n\r\n"
            .to_vec();
    announced.extend_from_slice(&body);
    // Without a length: the body ends when the connection closes, so only counting catches it.
    let mut unannounced =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n".to_vec();
    unannounced.extend_from_slice(&body);
    for response in [announced, unannounced] {
        let server = RecordingServer::start("127.0.0.1", response).unwrap();
        let source = format!(
            "export default async function runAction(nango) {{\n  const r = await nango.get({{ baseUrlOverride: 'http://127.0.0.1:{}', endpoint: '/big', params: {{ key: 's' }} }});\n  return r.data.length;\n}}\n",
            server.port
        );
        let (result, _) = run_action(
            &source,
            |run| run.limits.max_response_size = 4096,
            MemoryHost::default(),
        );
        assert_eq!(
            thrown_message(result),
            format!(
                "the response to GET http://127.0.0.1:{}/big is larger than nango.max_response_size (4096 bytes)",
                server.port
            )
        );
        let (result, _) = run_action(
            &source,
            |run| run.limits.max_response_size = 5000,
            MemoryHost::default(),
        );
        assert_eq!(result.unwrap(), Some(json!(5000)));
    }
}

/// Makes `run` an OAuth2 connection with `credentials`, refreshable at the mock API's token endpoint.
fn refreshable(run: &mut ScriptRun, credentials: &Value) {
    run.provider = serde_yaml::from_str(
        "token_url: ${connectionConfig.base_url}/oauth/token\nproxy:\n  base_url: ${connectionConfig.base_url}\n",
    )
    .unwrap();
    run.connection.credentials = credentials.clone();
    run.oauth_client = Some(OAuthClient {
        client_id: pg_nango_mock_api::OAUTH_CLIENT_ID.into(),
        client_secret: pg_nango_mock_api::OAUTH_CLIENT_SECRET.into(),
    });
}

#[test]
fn concurrent_requests_of_a_run_refresh_an_expiring_token_once() {
    let expires_soon = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let credentials = json!({"type": "OAUTH2", "access_token": "old", "refresh_token": "rt-0", "expires_at": expires_soon});
    let issued_before = server().tokens_issued();
    let source = "export default async function runAction(nango) {\n  const [a, b] = await Promise.all([nango.get({ endpoint: '/echo' }), nango.get({ endpoint: '/echo' })]);\n  return [a.data.headers.authorization, b.data.headers.authorization];\n}\n";
    let (result, host) = run_action(
        source,
        |run| refreshable(run, &credentials),
        MemoryHost {
            credentials: Some(credentials.clone()),
            ..MemoryHost::default()
        },
    );
    assert_eq!(server().tokens_issued(), issued_before + 1);
    let stored = host.credentials.unwrap();
    let token = stored["access_token"].as_str().unwrap();
    assert!(token.starts_with("at-"), "{stored}");
    let bearer = json!(format!("Bearer {token}"));
    assert_eq!(result.unwrap(), Some(json!([bearer, bearer])));
}

#[test]
fn a_connection_config_value_cannot_move_the_base_url_to_another_host() {
    let listener = RecordingServer::start("127.0.0.1", OK_JSON.to_vec()).unwrap();
    let source = "export default async function runAction(nango) {\n  await nango.get({ endpoint: '/x' });\n}\n";
    let (result, _) = run_action(
        source,
        |run| {
            run.provider = serde_yaml::from_str(
                "proxy:\n  base_url: http://${connectionConfig.subdomain}.localhost\n",
            )
            .unwrap();
            run.connection.connection_config =
                json!({"subdomain": format!("127.0.0.1:{}/?", listener.port)});
        },
        MemoryHost::default(),
    );
    assert_eq!(
        thrown_message(result),
        "the value of ${connectionConfig.subdomain} cannot be placed in the host of the URL \
         http://${connectionConfig.subdomain}.localhost: a host may not hold / \\ ? # @ : [ ] % or whitespace"
    );
    assert!(listener.heads().is_empty());
}

#[test]
fn compressed_text_and_binary_responses_come_as_asked() {
    let source = "export default async function runAction(nango) {\n\
        const gzip = await nango.get({ endpoint: '/encoded/gzip' });\n\
        const deflate = await nango.get({ endpoint: '/encoded/deflate', decompress: true });\n\
        const raw = await nango.get({ endpoint: '/encoded/gzip', decompress: false, responseType: 'arraybuffer' });\n\
        const text = await nango.get({ endpoint: '/plain', responseType: 'text' });\n\
        const jsonAsText = await nango.get({ endpoint: '/encoded/gzip', responseType: 'text' });\n\
        const bytes = await nango.get({ endpoint: '/bytes', responseType: 'arraybuffer' });\n\
        const chunks = [];\n\
        for await (const chunk of (await nango.get({ endpoint: '/bytes', responseType: 'stream' })).data) chunks.push(chunk.length);\n\
        const echo = await nango.get({ endpoint: '/echo', decompress: true });\n\
        return { gzip: gzip.data, deflate: deflate.data.encoded, gzipHeader: gzip.headers['content-encoding'] ?? null,\n\
                 rawMagic: [raw.data[0], raw.data[1]], text: text.data, jsonAsText: typeof jsonAsText.data,\n\
                 bytes: [bytes.data instanceof Uint8Array, bytes.data.length, bytes.data[255]], chunks,\n\
                 acceptEncoding: echo.data.headers['accept-encoding'] };\n}\n";
    let (result, _) = run_action(source, |_| {}, MemoryHost::default());
    assert_eq!(
        result.unwrap(),
        Some(json!({
            "gzip": {"encoded": "gzip", "items": [1, 2, 3]},
            "deflate": "deflate",
            "gzipHeader": null,
            "rawMagic": [0x1f, 0x8b],
            "text": pg_nango_mock_api::PLAIN_TEXT,
            "jsonAsText": "string",
            "bytes": [true, 256, 255],
            "chunks": [256],
            "acceptEncoding": "gzip, deflate, br",
        }))
    );
}

#[test]
fn uncontrolled_fetch_returns_a_response_without_credentials_and_keeps_the_egress_rules() {
    let source = "export default async function runAction(nango) {\n\
        const base = (await nango.getConnection()).connection_config.base_url;\n\
        const r = await nango.uncontrolledFetch({ url: base + '/echo?x=1', method: 'POST', headers: { 'X-Test': 'yes' }, body: 'hi' });\n\
        const echoed = await r.json();\n\
        let twice;\n\
        try { await r.text(); } catch (e) { twice = e.message; }\n\
        const plain = await nango.uncontrolledFetch({ url: base + '/plain' });\n\
        const missing = await nango.uncontrolledFetch({ url: base + '/status/404' });\n\
        return { status: r.status, ok: r.ok, type: r.headers.get('Content-Type'), method: echoed.method, body: echoed.body,\n\
                 header: echoed.headers['x-test'], authorization: echoed.headers.authorization ?? null, twice,\n\
                 plain: await plain.text(), missing: [missing.status, missing.ok] };\n}\n";
    let (result, _) = run_action(source, |_| {}, MemoryHost::default());
    assert_eq!(
        result.unwrap(),
        Some(json!({
            "status": 200, "ok": true, "type": "application/json", "method": "POST", "body": "hi",
            "header": "yes", "authorization": null,
            "twice": "Body is unusable: Body has already been read",
            "plain": pg_nango_mock_api::PLAIN_TEXT, "missing": [404, false],
        }))
    );

    // The provider's base URL host is not trusted for an uncontrolled fetch: a private address must be listed.
    let (result, _) = run_action(
        source,
        |run| run.limits.allowed_hosts.clear(),
        MemoryHost::default(),
    );
    match result {
        Err(ScriptError::Action { payload, .. }) => {
            assert_eq!(payload["code"], "url_not_allowed");
            assert!(
                payload["message"]
                    .as_str()
                    .unwrap()
                    .contains("refused: it resolves to a private address (loopback)"),
                "{payload}"
            );
        }
        other => panic!("expected url_not_allowed, got {other:?}"),
    }
}

#[test]
fn get_token_refreshes_first_and_field_mapping_lives_in_metadata() {
    let source = "export default async function runAction(nango) {\n\
        await nango.setFieldMapping({ fieldMapping: { name: 'full_name' } });\n\
        return { token: await nango.getToken(), mapping: await nango.getFieldMapping() };\n}\n";
    let (result, _) = run_action(source, |_| {}, MemoryHost::default());
    assert_eq!(
        result.unwrap(),
        Some(
            json!({"token": {"type": "API_KEY", "apiKey": "k"}, "mapping": {"name": "full_name"}})
        )
    );

    let expired = json!({"type": "OAUTH2", "access_token": "old", "refresh_token": "rt-0",
                         "expires_at": (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339()});
    let source =
        "export default async function runAction(nango) { return await nango.getToken(); }\n";
    let (result, host) = run_action(
        source,
        |run| refreshable(run, &expired),
        MemoryHost {
            credentials: Some(expired.clone()),
            ..MemoryHost::default()
        },
    );
    let stored = host.credentials.unwrap();
    assert_ne!(stored["access_token"], "old");
    assert_eq!(result.unwrap(), Some(stored["access_token"].clone()));
}

#[test]
fn calls_a_host_does_not_offer_fail_with_a_clear_error() {
    let source = "export default async function runAction(nango) {\n\
        const errors = [];\n\
        for (const f of [() => nango.tryAcquireLock({ key: 'k', ttlMs: 10 }), () => nango.getEnvironmentVariables(),\n\
                         () => nango.tryAcquireLock({ key: '', ttlMs: 10 }), async () => { for await (const r of nango.listRecords('Ticket')) {} }]) {\n\
            try { await f(); } catch (e) { errors.push(e.message); }\n\
        }\n\
        return errors;\n}\n";
    let (result, _) = run_action(source, |_| {}, MemoryHost::default());
    assert_eq!(
        result.unwrap(),
        Some(json!([
            "this call is not available in this run",
            "this call is not available in this run",
            "nango.tryAcquireLock: key must be a string of 1 to 255 characters",
            "nango.listRecords can only be used in a sync",
        ]))
    );
}

#[test]
fn trigger_action_runs_an_action_of_the_same_integration_in_the_same_run() {
    let go = "export default async function runAction(nango, input) {\n\
        if (input && input.self) return await nango.triggerAction('demo', 'c1', 'go', input);\n\
        const errors = [];\n\
        for (const [key, conn, name] of [['other', 'c1', 'double'], ['demo', 'c2', 'double'], ['demo', 'c1', 'missing']]) {\n\
            try { await nango.triggerAction(key, conn, name, {}); } catch (e) { errors.push(e.message); }\n\
        }\n\
        const doubled = await nango.triggerAction('demo', 'c1', 'double', { n: 21, when: new Date(0) });\n\
        return { doubled, errors };\n}\n";
    let double = "export default { exec: async (nango, input) => {\n\
        let blocked; try { await nango.batchSave([{ id: 'x' }], 'Ticket'); } catch (e) { blocked = e.message; }\n\
        return { n: input.n * 2, when: input.when, type: nango.scriptType, conn: nango.connectionId, blocked, skipped: undefined };\n} };\n";
    let files = [
        ("demo/actions/go.js", go),
        ("demo/actions/double.js", double),
    ];
    let (result, _) = run_with(
        &files,
        "demo/actions/go.js",
        ScriptKind::Action { input_json: None },
        Duration::from_secs(10),
        |_| {},
        MemoryHost::default(),
    );
    assert_eq!(
        result.unwrap(),
        Some(json!({
            "doubled": {"n": 42, "when": "1970-01-01T00:00:00.000Z", "type": "action", "conn": "c1",
                        "blocked": "nango.batchSave can only be used in a sync"},
            "errors": [
                "nango.triggerAction: only actions of this integration and connection (demo, c1) can be triggered",
                "nango.triggerAction: only actions of this integration and connection (demo, c1) can be triggered",
                "nango.triggerAction: this integration has no action named 'missing'",
            ],
        }))
    );

    let (result, _) = run_with(
        &files,
        "demo/actions/go.js",
        ScriptKind::Action {
            input_json: Some("{\"self\": true}".into()),
        },
        Duration::from_secs(10),
        |_| {},
        MemoryHost::default(),
    );
    assert_eq!(
        thrown_message(result),
        "nango.triggerAction: actions trigger actions more than 5 levels deep"
    );
}

/// Runs an action (deployed as `demo/actions/go.ts`) with this input (JSON text); its output or error.
fn run_action_with_input(source: &str, input: &str) -> Result<Option<Value>, ScriptError> {
    run_deployed_action(source, input).0
}

#[test]
fn an_input_without_keys_reaches_the_action_as_undefined() {
    let source = "export default async function runAction(nango, input) {\n  return { type: typeof input, input: input === undefined ? 'none' : input };\n}\n";
    for (input, expected) in [
        ("{}", json!({"type": "undefined", "input": "none"})),
        ("[]", json!({"type": "undefined", "input": "none"})),
        ("{\"a\":1}", json!({"type": "object", "input": {"a": 1}})),
        ("[0]", json!({"type": "object", "input": [0]})),
        ("null", json!({"type": "object", "input": null})),
        ("0", json!({"type": "number", "input": 0})),
    ] {
        let output = run_action_with_input(source, input).unwrap();
        assert_eq!(output, Some(expected), "input {input}");
    }
}

#[test]
fn reading_a_property_of_undefined_fails_with_nodes_message_and_location() {
    let source = "export default async function runAction(nango, input) {\n  const n = 1;\n  return input.x + n;\n}\n";
    assert_eq!(
        thrown_at(run_action_with_input(source, "{}")),
        (
            "Cannot read properties of undefined (reading 'x')".into(),
            Some("demo/actions/go.ts:3".into())
        )
    );
    let source = "export default async function runAction(nango, input) {\n  input.list = null;\n  input.list.y = 1;\n}\n";
    assert_eq!(
        thrown_message(run_action_with_input(source, "{\"a\":1}")),
        "Cannot set properties of null (setting 'y')"
    );
}

/// Runs the action `demo/actions/go.ts` of a folder deployed without node_modules, with this input.
fn run_deployed_action(
    source: &str,
    input: &str,
) -> (Result<Option<Value>, ScriptError>, MemoryHost) {
    let yaml = "integrations:\n  demo:\n    actions:\n      go:\n        endpoint: POST /go\n";
    let files = [("demo/actions/go.ts".to_string(), source.to_string())].into();
    let plan = pg_nango_core::deploy::plan(yaml, &files, Duration::from_secs(30)).unwrap();
    let modules = plan
        .modules
        .into_iter()
        .map(|(path, (_, compiled))| {
            let module = StoredModule::new(compiled.js, compiled.source_map);
            (path, module)
        })
        .collect();
    run_modules(
        modules,
        "demo/actions/go.ts",
        ScriptKind::Action {
            input_json: Some(input.into()),
        },
        Duration::from_secs(10),
        |_| {},
        MemoryHost::default(),
    )
}

#[test]
fn the_bundled_zod_validates_in_both_import_styles_and_versions() {
    let source = "import { z } from 'zod';
import * as zz from 'zod';
import * as z3 from 'zod/v3';
import * as z4 from 'zod/v4';
import * as zm from 'zod/mini';

const Input = z.object({ name: z.string(), count: zz.number().int().min(1) });

export default async function runAction(nango: any, input: any) {
    const parsed = Input.parse(input);
    await nango.zodValidateInput({ zodSchema: z3.object({ name: z3.string() }), input });
    const mini = zm.safeParse(zm.object({ name: zm.string() }), input).success;
    const v4 = z4.z.string().safeParse(1).success;
    return { parsed, mini, v4 };
}
";
    let (result, _) = run_deployed_action(source, r#"{"name": "a", "count": 2}"#);
    assert_eq!(
        result.unwrap(),
        Some(json!({"parsed": {"name": "a", "count": 2}, "mini": true, "v4": false}))
    );

    let (result, _) = run_deployed_action(source, r#"{"name": "a", "count": 0}"#);
    let message = thrown_message(result);
    assert!(
        message.contains("too_small") || message.contains(">=1"),
        "{message}"
    );

    let source = "import * as z from 'zod';
export default async function runAction(nango: any, input: any) {
    await nango.zodValidateInput({ zodSchema: z.object({ email: z.string() }), input });
    return 'valid';
}
";
    let (result, host) = run_deployed_action(source, r#"{"email": 42}"#);
    match result.unwrap_err() {
        ScriptError::Action { message, .. } => assert_eq!(message, "Invalid input provided"),
        other => panic!("expected an ActionError, got {other:?}"),
    }
    assert!(
        host.logs
            .iter()
            .any(|(level, message)| level == "error" && message.contains("at path email")),
        "{:?}",
        host.logs
    );
    assert_eq!(
        run_deployed_action(source, r#"{"email": "a@b"}"#)
            .0
            .unwrap(),
        Some(json!("valid"))
    );
}

/// The JSON Schema a zero-YAML deploy takes from zod, made by the bundled zod in this runtime: the same as
/// zod writes under Node (crates/core/tests/fixtures/zod-json-schema.json, from
/// scripts/zod-json-schema-fixtures.mjs), and read into the model the equivalent nango.yaml declares.
#[test]
fn zod_json_schema_made_in_this_runtime_reads_as_the_yaml_model() {
    let source = format!(
        "import {{ z }} from 'zod';\n{}\n
export default async function runAction(nango: any, input: any) {{
    const out: any = {{}};
    for (const [name, schema] of Object.entries(cases(z))) {{
        out[name] = JSON.stringify(modelSchema(z, schema));
    }}
    return out;
}}
",
        include_str!("fixtures/zod-json-schema-cases.mjs")
    );
    let (result, _) = run_deployed_action(&source, "{}");
    let made = result.unwrap().unwrap();
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/zod-json-schema.json")).unwrap();
    let made = made.as_object().unwrap();
    assert_eq!(made.len(), fixture.as_object().unwrap().len());
    for (case, text) in made {
        let schema: Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
        assert_eq!(schema, fixture[case], "{case}");
    }

    // The schema's text, as JSON.stringify writes it here, keeps zod's field order.
    let from_zod = pg_nango_core::config::json_schema::model_from_json_schema_text(
        "Issue",
        made["issue"].as_str().unwrap(),
    )
    .unwrap();
    let yaml: serde_yaml::Mapping = serde_yaml::from_str(
        "Issue:\n  id: string\n  number: integer\n  title: string\n  closed?: boolean\n  created_at: date\n  \
         labels: string[]\n  state: open | closed\n  repo:\n    owner: string\n    name: string\n  \
         assignee: string | null\n  meta: object\n  kind: issue\n",
    )
    .unwrap();
    let from_yaml = pg_nango_core::config::models::parse_models(&yaml, &mut Vec::new()).unwrap();
    assert_eq!(from_zod, from_yaml["Issue"]);
}

/// What a run calls in its entry module: a zero-YAML definition's `exec`/`onWebhook` (its kind checked as
/// Nango's runner checks it), or the yaml format's exports.
#[test]
fn runs_call_what_each_format_exports() {
    let zero_yaml = "import { createSync, createAction } from 'nango';\n\
        export default createSync({ description: 'd', frequency: 'every hour', models: {},\n\
          exec: async (nango: any) => { await nango.batchSave([{ id: 'from-exec' }], 'Ticket'); },\n\
          onWebhook: async (nango: any, payload: any) => { await nango.batchSave([{ id: payload.ticket }], 'Ticket'); } });\n";
    let yaml_era = "export default async function fetchData(nango: any) {}\n\
        export async function onWebhookPayloadReceived(nango: any, payload: any) { await nango.batchSave([{ id: `yaml-${payload.ticket}` }], 'Ticket'); }\n";
    let action = "import { createAction } from 'nango';\n\
        export default createAction({ description: 'd', input: null, output: null, exec: async (nango: any, input: any) => ({ input }) });\n";
    let webhook = || ScriptKind::Webhook {
        payload_json: "{\"ticket\": \"t7\"}".into(),
    };
    let saved_ids = |host: &MemoryHost| -> Vec<Value> {
        host.saved
            .iter()
            .map(|(_, _, records)| records[0]["id"].clone())
            .collect()
    };
    let timeout = Duration::from_secs(10);

    let (result, host) = run(&[("s.ts", zero_yaml)], "s.ts", ScriptKind::Sync, timeout);
    result.unwrap();
    assert_eq!(saved_ids(&host), [json!("from-exec")]);
    let (result, host) = run(&[("s.ts", zero_yaml)], "s.ts", webhook(), timeout);
    result.unwrap();
    assert_eq!(saved_ids(&host), [json!("t7")]);
    let (result, host) = run(&[("y.ts", yaml_era)], "y.ts", webhook(), timeout);
    result.unwrap();
    assert_eq!(saved_ids(&host), [json!("yaml-t7")]);

    // A zero-YAML action gets its input as given, `{}` included; a yaml-era one gets `undefined` for `{}`.
    let empty = || ScriptKind::Action {
        input_json: Some("{}".into()),
    };
    let (result, _) = run(&[("a.ts", action)], "a.ts", empty(), timeout);
    assert_eq!(result.unwrap(), Some(json!({"input": {}})));
    let yaml_action = "export default async function runAction(nango: any, input: any) { return { undefined: input === undefined }; }\n";
    let (result, _) = run(&[("a.ts", yaml_action)], "a.ts", empty(), timeout);
    assert_eq!(result.unwrap(), Some(json!({"undefined": true})));

    // The wrong kind, and a sync without onWebhook, fail with the runner's messages.
    let (result, _) = run(&[("a.ts", action)], "a.ts", ScriptKind::Sync, timeout);
    assert!(thrown_message(result).starts_with("Incorrect script loaded for sync"));
    let no_hook = "import { createSync } from 'nango';\nexport default createSync({ exec: async () => {} });\n";
    let (result, _) = run(&[("s.ts", no_hook)], "s.ts", webhook(), timeout);
    assert!(thrown_message(result).starts_with("Missing onWebhook function"));
    let (result, _) = run(&[("y.ts", yaml_action)], "y.ts", webhook(), timeout);
    assert!(thrown_message(result).starts_with("There is no onWebhookPayloadReceived export"));
}
