//! The compile-time refusals and warnings Nango's CLI gives a zero-YAML project, file by file.

use pg_nango_core::script::checks::{CheckError, check_file, check_file_on_stack};
use pg_nango_core::script::compile::{COMPILE_STACK, MAX_NESTING};

const SYNC: &str = "shop/syncs/orders.ts";
const HELPER: &str = "shop/helpers.ts";

/// The checks, in this process: a test binary forks from many threads at once, and a child forked while
/// another thread holds a lock of the runtime may never get it (a backend, which forks in
/// [`check_file`], has one thread). [`the_isolated_check_answers_the_same`] covers the forked path.
fn check(path: &str, source: &str, entry: bool) -> Result<Vec<String>, CheckError> {
    check_file_on_stack(path, source, entry, COMPILE_STACK)
}

fn passes(path: &str, source: &str, entry: bool) -> Vec<String> {
    check(path, source, entry).unwrap_or_else(|e| panic!("refused: {e}\n{source}"))
}

fn refused(path: &str, source: &str, entry: bool) -> CheckError {
    match check(path, source, entry) {
        Err(e) => e,
        Ok(warnings) => panic!("accepted ({warnings:?}):\n{source}"),
    }
}

/// Asserts the refusal's text and the 1-based line and column it names.
fn assert_refusal(error: &CheckError, file: &str, line: usize, column: usize, message: &str) {
    assert_eq!(
        (
            error.file.as_str(),
            error.line,
            error.column,
            error.message.as_str()
        ),
        (file, line, column, message),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!("{file}:{line}:{column}: {message}")
    );
}

/// An entry file defining a sync whose `exec` body is `body` (which starts on line 9).
fn sync_with(body: &str) -> String {
    format!(
        "import {{ createSync }} from 'nango';\nimport {{ z }} from 'zod';\n\nconst Order = z.object({{ id: z.string() }});\n\n\
         const sync = createSync({{\n    description: 'orders', frequency: 'every hour', models: {{ Order }},\n    exec: async (nango) => {{\n{body}\n    }}\n}});\nexport default sync;\n"
    )
}

// ---- imports ------------------------------------------------------------------------------------------

const IMPORT_REFUSAL: &str = "Import of package 'lodash' is not allowed. Allowed packages are: nango/experimental, url, node:url, crypto, node:crypto, nango, zod, unzipper, soap, botbuilder";

#[test]
fn allowed_relative_and_type_only_imports_pass() {
    let source = "import { createSync } from 'nango';\nimport * as z from 'zod';\nimport crypto from 'node:crypto';\n\
                  import { URL } from 'url';\nimport type { Dictionary } from 'lodash';\nimport { toRow } from '../mappers/row.js';\n\
                  import './side-effect.js';\nexport const id = (n: number) => crypto.randomUUID() + toRow(n) + z + URL + createSync;\n";
    assert!(passes(HELPER, source, false).is_empty());
}

#[test]
fn a_package_outside_the_list_is_refused_in_any_ts_file() {
    let source = "import { z } from 'zod';\n  import _ from 'lodash';\n";
    for entry in [true, false] {
        assert_refusal(
            &refused(HELPER, source, entry),
            HELPER,
            2,
            3,
            IMPORT_REFUSAL,
        );
    }
    // A value import that names only types is still a value import.
    let inline_type = "import { type Dictionary } from 'lodash';\n";
    assert_refusal(
        &refused(HELPER, inline_type, false),
        HELPER,
        1,
        1,
        IMPORT_REFUSAL,
    );
    // An absolute path or a bare `..` is not a relative import.
    let absolute = refused(HELPER, "import x from '/etc/x.js';\n", false);
    assert!(
        absolute
            .message
            .starts_with("Import of package '/etc/x.js' is not allowed."),
        "{absolute}"
    );
}

#[test]
fn a_javascript_file_is_not_checked() {
    // Nango's checks run on the `.ts` files of the bundle only.
    assert!(
        passes(
            "shop/vendor.js",
            "import _ from 'lodash';\nnango.log('x');\n",
            false
        )
        .is_empty()
    );
}

// ---- awaiting -----------------------------------------------------------------------------------------

#[test]
fn awaited_chained_and_returned_calls_pass() {
    let source = "export async function load(nango: any, ids: string[]) {\n\
                  await nango.log('start');\n\
                  const first = (await nango.get({ endpoint: '/a' })).data;\n\
                  nango.post({ endpoint: '/b' }).then(() => undefined);\n\
                  nango.put({ endpoint: '/c' }).catch(() => undefined);\n\
                  const all = await Promise.all(ids.map((id) => nango.get({ endpoint: `/o/${id}` })));\n\
                  if (!first) { return nango.delete({ endpoint: '/d' }); }\n\
                  nango.paginate({ endpoint: '/p' });\n\
                  nango.getCheckpoint();\n\
                  nango?.log('optional calls are not looked at');\n\
                  other.log('only the name nango counts');\n\
                  return all;\n}\n";
    assert!(passes(HELPER, source, false).is_empty());
}

#[test]
fn an_unawaited_call_is_refused() {
    let source = "export async function load(nango: any) {\n    nango.batchSave([], 'Order');\n}\n";
    assert_refusal(
        &refused(HELPER, source, false),
        HELPER,
        2,
        5,
        "nango.batchSave() calls must be awaited in. Not awaiting can lead to unexpected results.",
    );
    for (statement, method) in [
        ("void nango.log('x');", "log"),
        ("const p = nango.getMetadata();", "getMetadata"),
        ("Promise.all([nango.get({ endpoint: '/a' })]);", "get"),
        ("nango.get({ endpoint: '/a' })?.then(f);", "get"),
        ("const f = () => nango.setMetadata({});", "setMetadata"),
    ] {
        let source =
            format!("export async function load(nango: any, f: any) {{\n{statement}\n}}\n");
        let error = refused(HELPER, &source, false);
        assert_eq!(error.line, 2, "{statement}");
        assert_eq!(
            error.message,
            format!(
                "nango.{method}() calls must be awaited in. Not awaiting can lead to unexpected results."
            ),
            "{statement}"
        );
    }
}

// ---- retryOn ------------------------------------------------------------------------------------------

const RETRY_ON: &str = "Proxy call: 'retryOn' should not be used if 'retries' is not set.";

#[test]
fn retry_on_needs_retries() {
    let ok = "export async function f(nango: any, retries: number) {\n\
              await nango.get({ endpoint: '/a', retries: 3, retryOn: [429] });\n\
              await nango.post({ endpoint: '/a', retries, retryOn: [500] });\n}\n";
    assert!(passes(HELPER, ok, false).is_empty());
    let bad = "export async function f(nango: any) {\n  const page = await nango.get({\n    endpoint: '/a',\n    retryOn: [429]\n  });\n  return page;\n}\n";
    assert_refusal(&refused(HELPER, bad, false), HELPER, 2, 22, RETRY_ON);
    // Nango reads identifier keys only: a quoted `'retries'` does not count.
    let quoted = "export async function f(nango: any) {\n  await nango.proxy({ 'retries': 2, retryOn: [429] });\n}\n";
    assert_refusal(&refused(HELPER, quoted, false), HELPER, 2, 9, RETRY_ON);
}

// ---- exports of an entry file -------------------------------------------------------------------------

fn named_export_refusal(name: &str) -> String {
    format!(
        "Named export '{name}' is not allowed. Only export default and createAction, createSync, createOnEvent, createFunction are permitted."
    )
}

#[test]
fn an_entry_may_export_types_and_re_exports() {
    let source = format!(
        "{}export type Row = {{ id: string }};\nexport interface Page {{ rows: Row[] }}\nexport {{ toRow }} from '../mappers/row.js';\nexport * from '../shared.js';\n",
        sync_with("        await nango.log('x');")
    );
    assert!(passes(SYNC, &source, true).is_empty());
    // The same exports in a file that is not an entry are nobody's business.
    let helper =
        "export function toRow() {}\nexport const limit = 10;\nconst x = 1;\nexport { x };\n";
    assert!(passes(HELPER, helper, false).is_empty());
}

#[test]
fn an_entry_refuses_other_named_exports() {
    let base = sync_with("        await nango.log('x');");
    let line = base.lines().count() + 1;
    for (export, name) in [
        ("export function toRow() { return 1; }", "toRow"),
        ("export const limit = 10;", "limit"),
        ("const helper = 1; export { helper as shared };", "shared"),
        // Babel sees the names listed by `export type { … }` as named exports too.
        ("type T = number; export type { T };", "T"),
    ] {
        let source = format!("{base}{export}\n");
        let error = refused(SYNC, &source, true);
        assert_eq!(error.message, named_export_refusal(name), "{export}");
        assert_eq!(error.line, line, "{export}");
    }
}

#[test]
fn an_entry_default_export_must_be_a_create_call() {
    let direct = "import { createAction } from 'nango';\nimport { z } from 'zod';\n\
                  export default createAction({\n  description: 'ping', input: z.object({}), output: z.string(),\n  exec: async (nango) => { await nango.log('ping'); return 'pong'; }\n});\n";
    assert!(passes("shop/actions/ping.ts", direct, true).is_empty());
    let bad = "import type { NangoSync } from 'nango';\n\nexport default async function fetchData(nango: NangoSync) {\n  await nango.log('x');\n}\n";
    assert_refusal(
        &refused(SYNC, bad, true),
        SYNC,
        3,
        1,
        "Invalid default export: should be createAction(), createSync() or createOnEvent()",
    );
    let not_created = "const sync = { exec: async () => {} };\nexport default sync;\n";
    assert_eq!(
        refused(SYNC, not_created, true).message,
        "Invalid default export: should be createAction(), createSync() or createOnEvent()"
    );
    let options = "import { createSync } from 'nango';\nconst options: any = {};\nexport default createSync(options);\n";
    assert_refusal(
        &refused(SYNC, options, true),
        SYNC,
        3,
        1,
        "Invalid function parameter, should be an object",
    );
    let imported = "import sync from './shared.js';\nexport default sync;\n";
    assert_refusal(
        &refused(SYNC, imported, true),
        SYNC,
        2,
        1,
        "Invalid default export: should be createAction(), createSync() or createOnEvent()",
    );
    // Not an entry: nothing to say about its default export.
    assert!(passes(HELPER, bad, false).is_empty());
}

// ---- order of calls inside exec -----------------------------------------------------------------------

#[test]
fn well_ordered_exec_passes() {
    let body = "        await nango.setMergingStrategy({ strategy: 'ignore_if_modified_after' }, 'Order');\n\
                \x20       await nango.trackDeletesStart('Order');\n\
                \x20       const page = await nango.get({ endpoint: '/orders' });\n\
                \x20       await nango.batchSave(page.data, 'Order');\n\
                \x20       await nango.batchDelete([], 'Order');\n\
                \x20       await nango.trackDeletesEnd('Order');";
    assert!(passes(SYNC, &sync_with(body), true).is_empty());
}

#[test]
fn each_order_rule_is_refused_with_nangos_message() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "        await nango.batchSave([], 'Order');\n        await nango.setMergingStrategy({ strategy: 'override' }, 'Order');",
            10,
            "setMergingStrategy should be called before any batching records function",
        ),
        (
            "        await nango.get({ endpoint: '/orders' });\n        await nango.setMergingStrategy({ strategy: 'override' }, 'Order');",
            10,
            "setMergingStrategy should be called before any proxy function",
        ),
        (
            "        await nango.batchSave([], 'Order');\n        await nango.deleteRecordsFromPreviousExecutions('Order');\n        await nango.deleteRecordsFromPreviousExecutions('Order');",
            11,
            "deleteRecordsFromPreviousExecutions should be called only once per sync",
        ),
        (
            "        await nango.deleteRecordsFromPreviousExecutions('Order');\n        await nango.batchSave([], 'Order');",
            9,
            "deleteRecordsFromPreviousExecutions should be called after any batching records function",
        ),
        (
            "        await nango.trackDeletesStart('Order');\n        await nango.trackDeletesStart('Order');\n        await nango.trackDeletesEnd('Order');",
            10,
            "trackDeletesStart for model 'Order' should be called only once per sync",
        ),
        (
            "        await nango.trackDeletesStart('Order');\n        await nango.trackDeletesEnd('Order');\n        await nango.trackDeletesEnd('Order');",
            11,
            "trackDeletesEnd for model 'Order' should be called only once per sync",
        ),
        (
            "        await nango.log('x');\n        await nango.trackDeletesEnd('Order');",
            10,
            "trackDeletesEnd for model 'Order' is called but trackDeletesStart is never called",
        ),
        (
            "        await nango.trackDeletesStart('Order');",
            9,
            "trackDeletesStart for model 'Order' is called but trackDeletesEnd is never called",
        ),
        (
            "        await nango.trackDeletesEnd('Order');\n        await nango.trackDeletesStart('Order');",
            10,
            "trackDeletesStart for model 'Order' should be called before trackDeletesEnd",
        ),
        (
            "        await nango.batchSave([], 'Order');\n        await nango.trackDeletesStart('Order');\n        await nango.trackDeletesEnd('Order');",
            10,
            "trackDeletesStart for model 'Order' should be called before any batching records function",
        ),
        (
            "        await nango.trackDeletesStart('Order');\n        await nango.trackDeletesEnd('Order');\n        await nango.batchSave([], 'Order');",
            10,
            "trackDeletesEnd for model 'Order' should be called after any batching records function",
        ),
    ];
    for &(body, line, message) in cases {
        let error = refused(SYNC, &sync_with(body), true);
        assert_refusal(&error, SYNC, line, 15, message);
    }
}

#[test]
fn order_is_checked_only_inside_exec_of_an_entry() {
    let wrong = "        await nango.batchSave([], 'Order');\n        await nango.trackDeletesStart('Order');\n        await nango.trackDeletesEnd('Order');";
    // Not an entry.
    assert!(passes(HELPER, &sync_with(wrong), false).is_empty());
    // Calls in a helper outside `exec`, and `exec` written as a method (Babel's ObjectMethod), are not
    // looked at.
    let outside = "import { createSync } from 'nango';\n\
                   async function save(nango: any) { await nango.batchSave([], 'Order'); }\n\
                   export default createSync({\n  description: 'd', frequency: 'every day', models: {},\n\
                   async exec(nango) {\n    await nango.batchSave([], 'Order');\n    await nango.trackDeletesStart('Order');\n    await nango.trackDeletesEnd('Order');\n  },\n\
                   onWebhook: async (nango) => { await save(nango); await nango.trackDeletesStart('X'); }\n});\n";
    assert!(passes(SYNC, outside, true).is_empty());
    // Per model: each model's calls are checked on their own; a model given by a variable is not tracked.
    let models = "        await nango.trackDeletesStart('Order');\n        await nango.trackDeletesStart(model);\n        await nango.batchSave([], 'Order');\n        await nango.trackDeletesEnd('Order');";
    assert!(passes(SYNC, &sync_with(models), true).is_empty());
}

// ---- warnings -----------------------------------------------------------------------------------------

#[test]
fn console_use_is_a_warning() {
    let source = "// console.log in a comment does not count\ntype Log = typeof console.log;\nexport function f() {\n  console.warn('x');\n}\n";
    assert_eq!(
        passes(HELPER, source, false),
        vec![format!(
            "{HELPER}:4: Function '{HELPER}' contains console statements (console.log, console.warn, etc.). These logs will not appear in the Nango dashboard. Use await nango.log() instead to see logs in the dashboard."
        )]
    );
    assert!(
        passes(
            HELPER,
            "// console.log('x')\nexport type L = typeof console.log;\n",
            false
        )
        .is_empty()
    );
    // Strings reach the bundle as they are.
    assert_eq!(
        passes(
            HELPER,
            "export const hint = 'use console.error to see it';\n",
            false
        )
        .len(),
        1
    );
    // A JavaScript file reaches the bundle too.
    assert_eq!(
        passes("shop/vendor.js", "globalThis.console.info(1);\n", false).len(),
        1
    );
}

#[test]
fn a_sync_with_track_deletes_true_gets_the_deprecation_warning() {
    let source = "import { createSync } from 'nango';\n\
                  export default createSync({\n  description: 'd', frequency: 'every day', models: {},\n  trackDeletes: true,\n  exec: async () => {}\n});\n";
    assert_eq!(
        passes(SYNC, source, true),
        vec![format!(
            "{SYNC}:4: Sync 'orders' for integration 'shop' has 'track_deletes' enabled. This feature is deprecated and will be removed in future versions. Please call 'nango.trackDeletesStart()' and 'nango.trackDeletesEnd()' in your sync function to automatically detect deletions."
        )]
    );
    assert!(
        passes(
            SYNC,
            &source.replace("trackDeletes: true", "trackDeletes: false"),
            true
        )
        .is_empty()
    );
    // The same through a variable, whose line the warning names.
    let variable = source
        .replace("export default createSync", "const sync = createSync")
        .replace("});\n", "});\nexport default sync;\n");
    assert_eq!(
        passes(SYNC, &variable, true),
        passes(SYNC, source, true),
        "{variable}"
    );
}

// ---- hostile input ------------------------------------------------------------------------------------

#[test]
fn a_syntax_error_is_located() {
    let error = refused(HELPER, "export const a = 1;\nexport const b = ;\n", false);
    assert_eq!((error.file.as_str(), error.line), (HELPER, 2), "{error}");
}

#[test]
fn nesting_past_the_limit_is_refused_with_a_message() {
    let deep = format!(
        "export async function f(nango: any) {{ await nango.log({}1{}); }}\n",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let error = refused(SYNC, &deep, true);
    assert!(error.message.contains("nested too deeply"), "{error}");
}

/// Nesting hidden from the guard behind a `/` it misreads crashes oxc in the child process, not here.
#[test]
fn nesting_hidden_from_the_guard_fails_cleanly() {
    let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let source = format!("{{}}\n/`/.test('');\nexport const x = {deep};\n");
    assert_refusal(
        &check_file(SYNC, &source, true).unwrap_err(),
        SYNC,
        1,
        1,
        "the compiler could not process this file (it crashed: nesting too deep or too large); simplify the file",
    );
    assert!(
        passes(
            SYNC,
            &sync_with("        await nango.log('still fine');"),
            true
        )
        .is_empty()
    );
}

/// The deepest file the nesting guard lets through is checked on an eighth of the stack the checks get.
#[test]
fn nesting_at_the_limit_is_checked_on_an_eighth_of_the_stack() {
    type Shape = fn(usize) -> String;
    let shapes: [(&str, Shape); 6] = [
        ("parentheses", |n| {
            sync_with(&format!(
                "await nango.log({}1{});",
                "(".repeat(n),
                ")".repeat(n)
            ))
        }),
        ("awaited calls", |n| {
            sync_with(&format!(
                "{}1{};",
                "await nango.log(".repeat(n),
                ")".repeat(n)
            ))
        }),
        ("arrows", |n| {
            sync_with(&format!(
                "const f = {}nango.batchSave([], 'Order');",
                "() => ".repeat(n)
            ))
        }),
        ("members", |n| {
            sync_with(&format!("await nango.log(a{});", ".b".repeat(n)))
        }),
        ("objects", |n| {
            sync_with(&format!(
                "await nango.get({}1{});",
                "{ retries: 1, retryOn: ".repeat(n),
                "}".repeat(n)
            ))
        }),
        ("functions", |n| {
            format!(
                "{}{}\n",
                "function f(nango) { return nango.get(".repeat(n),
                ")}".repeat(n)
            )
        }),
    ];
    let too_deep = |r: &Result<Vec<String>, CheckError>| matches!(r, Err(e) if e.message.contains("nested too deeply"));
    for (name, shape) in shapes {
        let (mut low, mut high) = (0, MAX_NESTING + 1);
        while low + 1 < high {
            let mid = (low + high) / 2;
            if too_deep(&check_file_on_stack(SYNC, &shape(mid), true, COMPILE_STACK)) {
                high = mid;
            } else {
                low = mid;
            }
        }
        assert!(low >= 100, "{name}: only {low} levels are accepted");
        let result = check_file_on_stack(SYNC, &shape(low), true, COMPILE_STACK / 8);
        assert!(!too_deep(&result), "{name}");
    }
}

#[test]
fn the_isolated_check_answers_the_same() {
    let good = sync_with("await nango.log('x');");
    let bad = sync_with("nango.log('x');");
    assert_eq!(check_file(SYNC, &good, true), check(SYNC, &good, true));
    assert_eq!(check_file(SYNC, &bad, true), check(SYNC, &bad, true));
    assert!(check_file(SYNC, &bad, true).is_err());
}
