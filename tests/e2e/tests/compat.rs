//! Compatibility with what Nango's runner does for the same project: a model declaring a field twice, an
//! action input's key order and an empty input, Node's error wording. Its own binary: it deploys its own
//! integration (`compat`) over the fixture, once, and its tests share it.

use std::sync::OnceLock;

use pg_nango_e2e::*;
use serde_json::{Value, json};

const CONFIG_HEAD: &str = "integrations:
  compat:
    provider: demo
    syncs:
      forms:
        runs: every hour
        auto_start: false
        output: Form
        endpoint: GET /compat/forms
";

const CONFIG_TAIL: &str = "    actions:
      order:
        endpoint: POST /compat/order
      echo-input:
        endpoint: POST /compat/echo-input
      read-x:
        endpoint: POST /compat/read-x
      zod-named:
        endpoint: POST /compat/zod-named
      zod-star:
        endpoint: POST /compat/zod-star
models:
  Form:
    id: string
    options: Option[]
    title: string
    options?: any[]
  Option:
    id: string
";

/// The paginating syncs: name (also the mock's dataset, and the model in CamelCase), and the body of
/// `fetchData`, where `PATH` is the dataset's path under `/pages/` and `MODEL` the model. Each logs the size
/// of every page it got. The demo provider's defaults are a cursor named `cursor`, `limit` as the limit's
/// name and `data` as the response path.
const PAGINATE: &[(&str, &str)] = &[
    (
        "cursor-query",
        "const params = { q: 'x' };
    for await (const page of nango.paginate({ endpoint: '/pages/cursor/PATH', params,
        paginate: { cursor_path_in_response: 'next_page.cursor', response_path: 'result.items', limit: 2 } })) {
        sizes.push(page.length);
        await nango.batchSave(page, 'MODEL');
    }
    await nango.log('params', params);",
    ),
    (
        "cursor-body",
        "for await (const page of nango.paginate({ method: 'POST', endpoint: '/pages/cursor/PATH', data: { filter: { state: 'open' } },
        paginate: { cursor_name_in_request: 'page.cursor', cursor_path_in_response: 'next_page.cursor', response_path: 'result.items',
                    limit: 2, limit_name_in_request: 'page.size' } })) {
        sizes.push(page.length);
        await nango.batchSave(page, 'MODEL');
    }",
    ),
    (
        "cursor-empty",
        "for await (const page of nango.paginate({ endpoint: '/pages/cursor/PATH', params: { endless: '1' },
        paginate: { cursor_path_in_response: 'next_page.cursor', response_path: 'result.items', limit: 2 } })) {
        sizes.push(page.length);
        await nango.batchSave(page, 'MODEL');
    }",
    ),
    (
        "link-header",
        "for await (const page of nango.paginate({ endpoint: '/pages/link/PATH', params: { q: 'x' },
        paginate: { type: 'link', link_rel_in_response_header: 'next', response_path: 'data', limit: 2 } })) {
        sizes.push(page.length);
        await nango.batchSave(page, 'MODEL');
    }",
    ),
    (
        "link-body",
        "for await (const page of nango.paginate({ endpoint: '/pages/link/PATH', params: { endless: '1' },
        paginate: { type: 'link', link_path_in_response_body: 'paging.next', response_path: 'data', limit: 2 } })) {
        sizes.push(page.length);
        await nango.batchSave(page, 'MODEL');
    }",
    ),
    (
        "offset-size",
        "for await (const page of nango.paginate({ endpoint: '/pages/offset/PATH',
        paginate: { type: 'offset', offset_name_in_request: 'offset', response_path: 'results', limit: 2 } })) {
        sizes.push(page.length);
        await nango.batchSave(page, 'MODEL');
    }",
    ),
    (
        "offset-per-page",
        "for await (const page of nango.paginate({ endpoint: '/pages/offset/PATH', params: { limit: '2' },
        paginate: { type: 'offset', offset_name_in_request: 'page', offset_start_value: 1,
                    offset_calculation_method: 'per-page', response_path: 'results' } })) {
        sizes.push(page.length);
        await nango.batchSave(page, 'MODEL');
    }",
    ),
    (
        "nested",
        "const params = { q: 'x' };
    const cursor = { cursor_path_in_response: 'next_page.cursor', response_path: 'result.items', limit: 2 };
    for await (const workspaces of nango.paginate({ endpoint: '/pages/cursor/PATH-ws', params, paginate: cursor })) {
        sizes.push(workspaces.length);
        for (const ws of workspaces) {
            for await (const users of nango.paginate({ endpoint: '/pages/cursor/PATH-users', params, paginate: cursor })) {
                sizes.push(users.length);
                await nango.batchSave(users.map((u: any) => ({ id: `${ws.id}-${u.id}` })), 'MODEL');
            }
        }
    }
    await nango.log('params', params);",
    ),
];

/// A sync's model: its name in CamelCase.
fn model(sync: &str) -> String {
    sync.split('-')
        .map(|part| part[..1].to_uppercase() + &part[1..])
        .collect()
}

fn config() -> String {
    let mut config = CONFIG_HEAD.to_string();
    for (name, _) in PAGINATE {
        config.push_str(&format!(
            "      {name}:\n        runs: every hour\n        auto_start: false\n        output: {}\n        endpoint: GET /compat/{name}\n",
            model(name)
        ));
    }
    config.push_str(CONFIG_TAIL);
    for (name, _) in PAGINATE {
        config.push_str(&format!("  {}:\n    id: string\n", model(name)));
    }
    config
}

/// The project's files, by path (no node_modules).
fn files() -> Value {
    let mut files = json!({
        "compat/syncs/forms.ts": "export default async function fetchData(nango: any): Promise<void> {
    await nango.batchSave([{ id: 'f1', title: 'T', options: [1, 'two'] }, { id: 'f2', title: 'U' }], 'Form');
}
",
        "compat/actions/order.ts": "export default async function runAction(nango: any, input: any) {
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(input.properties)) out[key] = String(value);
    return { keys: Object.keys(out), top: Object.keys(input) };
}
",
        "compat/actions/echo-input.ts": "export default async function runAction(nango: any, input: any) {
    return { type: typeof input, input: input === undefined ? 'undefined' : input };
}
",
        "compat/actions/read-x.ts": "export default async function runAction(nango: any, input: any) {
    const n = 1;
    return input.x + n;
}
",
    });
    for (name, import) in [
        ("zod-named", "import { z } from 'zod';"),
        ("zod-star", "import * as z from 'zod';"),
    ] {
        files[format!("compat/actions/{name}.ts")] = Value::String(format!(
            "{import}
const Contact = z.object({{ email: z.string().email(), tags: z.array(z.string()).default([]) }});
export default async function runAction(nango: any, input: any) {{
    await nango.zodValidateInput({{ zodSchema: Contact, input }});
    return Contact.parse(input);
}}
"
        ));
    }
    for (name, body) in PAGINATE {
        files[format!("compat/syncs/{name}.ts")] = Value::String(format!(
            "export default async function fetchData(nango: any): Promise<void> {{\n    const sizes: number[] = [];\n    {}\n    await nango.log('pages', {{ sizes }});\n}}\n",
            body.replace("PATH", name).replace("MODEL", &model(name))
        ));
    }
    files
}

const CONNECTION: &str = "compat-conn";

/// Deploys the project once; returns the deploy's summary.
fn deployed() -> &'static Value {
    static SUMMARY: OnceLock<Value> = OnceLock::new();
    SUMMARY.get_or_init(|| {
        let mut client = connect();
        let summary: Value = client
            .query_one(
                "SELECT nango.deploy($1::text, $2::jsonb, allow_destructive => true)",
                &[&config(), &files()],
            )
            .unwrap_or_else(|e| panic!("deploy: {e}"))
            .get(0);
        create_connection(&mut client, "compat", CONNECTION);
        summary
    })
}

fn action(client: &mut Client, name: &str, input_sql: &str) -> Result<Value, postgres::Error> {
    deployed();
    client
        .query_one(
            &format!(
                "SELECT nango.trigger_action('compat', '{CONNECTION}', '{name}', {input_sql})"
            ),
            &[],
        )
        .map(|row| row.get(0))
}

#[test]
fn a_field_declared_twice_takes_the_later_declaration_with_a_warning() {
    let summary = deployed();
    let warnings = summary["warnings"].to_string();
    assert!(
        warnings.contains(
            "Model Form declares field options more than once; the last declaration is used"
        ),
        "{warnings}"
    );
    let mut client = connect();
    let (job, status) = run_sync(&mut client, "compat", "forms", CONNECTION);
    assert_eq!(status, "SUCCESS", "{:?}", job_outcome(&mut client, job));
    let columns: Vec<String> = client
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'nango_records' AND table_name = 'form' ORDER BY ordinal_position",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        columns.iter().filter(|c| *c == "options").count(),
        1,
        "{columns:?}"
    );
    // `options?: any[]` won: a list of anything, and optional.
    let options: Vec<Option<Value>> = client
        .query(
            "SELECT to_jsonb(options) FROM nango_records.form ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(options, [Some(json!([1, "two"])), None]);
}

#[test]
fn a_json_or_text_input_keeps_its_key_order() {
    let mut client = connect();
    let input = r#"{"properties": {"zeta": 1, "alpha": 2, "mid": 3, "b": 4}, "name": "n"}"#;
    let kept = json!({"keys": ["zeta", "alpha", "mid", "b"], "top": ["properties", "name"]});
    // A quoted literal is text; `::json` keeps the text too.
    for input_sql in [
        format!("'{input}'"),
        format!("'{input}'::json"),
        format!("'{input}'::text"),
    ] {
        assert_eq!(
            action(&mut client, "order", &input_sql).unwrap(),
            kept,
            "{input_sql}"
        );
    }
    // A jsonb input has its keys sorted.
    assert_eq!(
        action(&mut client, "order", &format!("'{input}'::jsonb")).unwrap(),
        json!({"keys": ["alpha", "b", "mid", "zeta"], "top": ["name", "properties"]})
    );
    // Text that is not JSON, or too large, is refused before anything runs.
    let (message, _) = db_error(action(&mut client, "order", "'{\"a\": 1'").unwrap_err());
    assert_eq!(
        message,
        "action order: the action input is not valid JSON: EOF while parsing an object at line 1 column 7"
    );
    let (message, _) =
        db_error(action(&mut client, "order", "'{}'::text || repeat(' ', 16 << 20)").unwrap_err());
    assert!(
        message.starts_with("action order: the action input is 16777218 bytes of JSON, more than the 16777216 bytes allowed"),
        "{message}"
    );
    // No input at all is still allowed: three arguments, or a NULL.
    assert_eq!(
        action(&mut client, "echo-input", "NULL").unwrap(),
        json!({"type": "undefined", "input": "undefined"})
    );
}

#[test]
fn an_empty_input_is_undefined_and_reading_from_it_fails_as_on_node() {
    let mut client = connect();
    for input_sql in ["'{}'", "'{}'::jsonb", "'[]'::json"] {
        assert_eq!(
            action(&mut client, "echo-input", input_sql).unwrap(),
            json!({"type": "undefined", "input": "undefined"}),
            "{input_sql}"
        );
    }
    assert_eq!(
        action(&mut client, "echo-input", "'{\"a\": 1}'").unwrap(),
        json!({"type": "object", "input": {"a": 1}})
    );
    let (message, detail) = db_error(action(&mut client, "read-x", "'{}'").unwrap_err());
    assert_eq!(
        message,
        "action read-x failed: Cannot read properties of undefined (reading 'x') (at compat/actions/read-x.ts:3:12)",
        "{detail:?}"
    );
}

/// `n` items `{id: "<prefix>-<i>"}`.
fn items(prefix: &str, n: usize) -> Vec<Value> {
    (1..=n)
        .map(|i| json!({"id": format!("{prefix}-{i}")}))
        .collect()
}

/// A job's logs as (level, message, payload).
type Logs = Vec<(String, String, Option<Value>)>;

/// Runs a paginating sync; returns the requests the mock got for it (the proxy writes a call's params in
/// name order, the paginator's among them; a next page's link keeps its own order) (`raw_query` or `METHOD body`), the
/// page sizes the script saw, and its job's logs.
fn paginate(sync: &str) -> (Vec<String>, Value, Logs) {
    deployed();
    let mut client = connect();
    let before = mock().requests().len();
    let (job, status) = run_sync(&mut client, "compat", sync, CONNECTION);
    assert_eq!(
        status,
        "SUCCESS",
        "{sync}: {:?}",
        job_outcome(&mut client, job)
    );
    let requests = mock().requests()[before..]
        .iter()
        .filter(|r| {
            r["path"].as_str().is_some_and(|p| {
                p.starts_with("/pages/") && p.rsplit('/').next().unwrap().starts_with(sync)
            })
        })
        .map(|r| {
            let path = r["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            match r["method"].as_str().unwrap() {
                "GET" => format!("{path}?{}", r["raw_query"].as_str().unwrap()),
                method => format!("{method} {path} {}", r["body"].as_str().unwrap()),
            }
        })
        .collect();
    let logs = job_logs(&mut client, job);
    let sizes = logs
        .iter()
        .find(|(_, message, _)| message == "pages")
        .and_then(|(_, _, payload)| payload.clone())
        .map_or(Value::Null, |p| p["sizes"].clone());
    (requests, sizes, logs)
}

fn saved(sync: &str) -> Vec<String> {
    let mut ids = record_ids(&mut connect(), &model(sync), CONNECTION);
    ids.sort();
    ids
}

#[test]
fn cursor_pagination_makes_nangos_requests() {
    mock().set_dataset("cursor-query", items("c", 5));
    let (requests, sizes, logs) = paginate("cursor-query");
    assert_eq!(
        requests,
        [
            "cursor-query?limit=2&q=x",
            "cursor-query?cursor=2&limit=2&q=x",
            "cursor-query?cursor=4&limit=2&q=x",
        ]
    );
    assert_eq!(sizes, json!([2, 2, 1]));
    assert_eq!(saved("cursor-query"), ["c-1", "c-2", "c-3", "c-4", "c-5"]);
    // The caller's params object is left as it was.
    let params = logs.iter().find(|(_, m, _)| m == "params").unwrap();
    assert_eq!(params.2, Some(json!({"q": "x"})));

    // In the body (POST), dotted names expanded, the call's data kept.
    mock().set_dataset("cursor-body", items("b", 3));
    let (requests, sizes, _) = paginate("cursor-body");
    assert_eq!(
        requests,
        [
            r#"POST cursor-body {"filter":{"state":"open"},"page":{"size":2}}"#,
            r#"POST cursor-body {"filter":{"state":"open"},"page":{"size":2,"cursor":"2"}}"#,
        ]
    );
    assert_eq!(sizes, json!([2, 1]));
    assert_eq!(saved("cursor-body"), ["b-1", "b-2", "b-3"]);

    // A cursor that never ends: the empty page stops it, and is not yielded.
    mock().set_dataset("cursor-empty", items("e", 4));
    let (requests, sizes, _) = paginate("cursor-empty");
    assert_eq!(
        requests,
        [
            "cursor-empty?endless=1&limit=2",
            "cursor-empty?cursor=2&endless=1&limit=2",
            "cursor-empty?cursor=4&endless=1&limit=2",
        ]
    );
    assert_eq!(sizes, json!([2, 2]));
    assert_eq!(saved("cursor-empty"), ["e-1", "e-2", "e-3", "e-4"]);
}

#[test]
fn link_pagination_makes_nangos_requests() {
    // The Link header's absolute URL; the provider's cursor defaults lend the limit's name, as on Nango.
    mock().set_dataset("link-header", items("l", 5));
    let (requests, sizes, _) = paginate("link-header");
    assert_eq!(
        requests,
        [
            "link-header?limit=2&q=x",
            "link-header?limit=2&q=x&page=2",
            "link-header?limit=2&q=x&page=3",
        ]
    );
    assert_eq!(sizes, json!([2, 2, 1]));
    assert_eq!(saved("link-header"), ["l-1", "l-2", "l-3", "l-4", "l-5"]);

    // A path in the body; an empty last page is yielded.
    mock().set_dataset("link-body", items("k", 4));
    let (requests, sizes, _) = paginate("link-body");
    assert_eq!(
        requests,
        [
            "link-body?endless=1&limit=2",
            "link-body?endless=1&limit=2&page=2",
            "link-body?endless=1&limit=2&page=3",
        ]
    );
    assert_eq!(sizes, json!([2, 2, 0]));
    assert_eq!(saved("link-body"), ["k-1", "k-2", "k-3", "k-4"]);
}

#[test]
fn offset_pagination_makes_nangos_requests() {
    // By response size; a page shorter than the limit is the last.
    mock().set_dataset("offset-size", items("o", 5));
    let (requests, sizes, _) = paginate("offset-size");
    assert_eq!(
        requests,
        [
            "offset-size?limit=2&offset=0",
            "offset-size?limit=2&offset=2",
            "offset-size?limit=2&offset=4",
        ]
    );
    assert_eq!(sizes, json!([2, 2, 1]));
    assert_eq!(saved("offset-size"), ["o-1", "o-2", "o-3", "o-4", "o-5"]);

    // Per page, from 1, until an empty page (no limit given to the paginator).
    mock().set_dataset("offset-per-page", items("p", 4));
    let (requests, sizes, _) = paginate("offset-per-page");
    assert_eq!(
        requests,
        [
            "offset-per-page?limit=2&page=1",
            "offset-per-page?limit=2&page=2",
            "offset-per-page?limit=2&page=3",
        ]
    );
    assert_eq!(sizes, json!([2, 2]));
    assert_eq!(saved("offset-per-page"), ["p-1", "p-2", "p-3", "p-4"]);
}

#[test]
fn nested_paginations_do_not_share_their_params() {
    mock().set_dataset("nested-ws", items("w", 3));
    mock().set_dataset("nested-users", items("u", 3));
    let (requests, sizes, logs) = paginate("nested");
    let users = [
        "nested-users?limit=2&q=x",
        "nested-users?cursor=2&limit=2&q=x",
    ];
    let mut expected = vec!["nested-ws?limit=2&q=x"];
    expected.extend(users);
    expected.extend(users);
    expected.push("nested-ws?cursor=2&limit=2&q=x");
    expected.extend(users);
    assert_eq!(requests, expected);
    assert_eq!(sizes, json!([2, 2, 1, 2, 1, 1, 2, 1]));
    assert_eq!(saved("nested").len(), 9);
    let params = logs.iter().find(|(_, m, _)| m == "params").unwrap();
    assert_eq!(params.2, Some(json!({"q": "x"})));
}

#[test]
fn the_bundled_zod_serves_a_folder_without_node_modules() {
    let mut client = connect();
    for action_name in ["zod-named", "zod-star"] {
        assert_eq!(
            action(
                &mut client,
                action_name,
                r#"'{"email": "ada@example.com"}'"#
            )
            .unwrap(),
            json!({"email": "ada@example.com", "tags": []}),
            "{action_name}"
        );
        let (message, detail) =
            db_error(action(&mut client, action_name, r#"'{"email": "nope"}'"#).unwrap_err());
        assert_eq!(message, "Invalid input provided", "{action_name}");
        assert_eq!(
            detail.map(|d| serde_json::from_str::<Value>(&d).unwrap()),
            Some(json!({"message": "Invalid input provided"}))
        );
    }
    // Only the zod files the imports reach were stored, with zod's manifest.
    let stored: Vec<String> = client
        .query(
            "SELECT path FROM nango.files WHERE path LIKE 'node_modules/zod/%' ORDER BY path",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        stored.contains(&"node_modules/zod/package.json".to_string()),
        "{stored:?}"
    );
    assert!(
        stored.contains(&"node_modules/zod/index.js".to_string()),
        "{stored:?}"
    );
    assert!(
        !stored.iter().any(|p| p.starts_with("node_modules/zod/v3/")),
        "{stored:?}"
    );
    assert!(
        !stored
            .iter()
            .any(|p| p.starts_with("node_modules/zod/mini/")),
        "{stored:?}"
    );
}
