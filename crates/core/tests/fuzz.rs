//! Generated and hostile inputs for every parser of user input in the core: `nango.yaml` (with anchors and
//! aliases), the model grammar, providers YAML, TypeScript, records on their way to the store, response
//! bodies, and scripts that try to exhaust the engine. Nothing may panic or overflow the stack (either
//! would take a Postgres backend, and with it the cluster, down); every bad input is a clear `Err`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_nango_core::config::parse_config;
use pg_nango_core::config::yaml::MAX_YAML_VALUES;
use pg_nango_core::deploy::plan;
use pg_nango_core::providers::{ConnectionInfo, Provider, parse_catalog};
use pg_nango_core::records::batch::RecordBatch;
use pg_nango_core::script::compile::{COMPILE_STACK, MAX_NESTING, compile, compile_on_stack};
use pg_nango_core::script::stringify::{MAX_LOG_PAYLOAD, MAX_RECORD_DEPTH, record_batch};
use pg_nango_core::script::validate::{MAX_BATCH_RECORDS, checked_records};
use pg_nango_core::script::{
    Host, Limits, SaveOp, ScriptError, ScriptKind, ScriptRun, StoredModule, module_map, run_script,
};
use rquickjs::{Array, CatchResultExt, Context, Runtime};
use serde_json::{Value, json};

/// A small deterministic PRNG (xorshift64*), so that a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const MIN: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------------------
// YAML: nango.yaml, models, providers
// ---------------------------------------------------------------------------------------------------------

/// Billion laughs: ten levels of ten aliases each.
fn billion_laughs(prefix: &str) -> String {
    let mut text = format!("{prefix}a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let items = vec![format!("*a{}", level - 1); 10].join(", ");
        text.push_str(&format!("{prefix}a{level}: &a{level} [{items}]\n"));
    }
    text
}

/// One large anchor copied by many aliases: within serde_yaml's own repetition check, 400 million values.
fn wide_alias_bomb() -> String {
    format!(
        "big: &big [{}]\ncopies: [{}]\n",
        vec!["1"; 20_000].join(","),
        vec!["*big"; 20_000].join(",")
    )
}

/// Fails when `f` runs away (an unbounded expansion or loop takes minutes or forever). The bound is far
/// above the seconds these take on a loaded two-core machine, so it measures nothing finer than that.
fn assert_quick<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = f();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{what} took {:?}",
        started.elapsed()
    );
    result
}

#[test]
fn yaml_alias_bombs_are_refused_within_seconds() {
    let config_bomb = format!(
        "integrations:\n  demo:\n    syncs: {{}}\nmodels:\n  Ticket:\n    id: string\nx:\n{}",
        billion_laughs("  ")
    );
    for text in [config_bomb, wide_alias_bomb()] {
        let error = assert_quick("parse_config", || parse_config(&text, MIN)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&format!("expands to more than {MAX_YAML_VALUES} values")),
            "{error}"
        );
    }
    for text in [billion_laughs(""), wide_alias_bomb()] {
        let error = assert_quick("parse_catalog", || parse_catalog(&text)).unwrap_err();
        assert!(
            error.to_string().contains("expands to more than"),
            "{error}"
        );
        let error = assert_quick("plan", || plan(&text, &BTreeMap::new(), MIN)).unwrap_err();
        assert!(
            error.to_string().contains("expands to more than"),
            "{error}"
        );
    }
}

#[test]
fn hostile_models_are_refused_quickly() {
    let cases = [
        // 100,000 levels of [] in one type: read in a loop, refused past 32.
        (
            format!("  A:\n    x: string{}\n", "[]".repeat(100_000)),
            "at most 32 levels of []",
        ),
        // A chain of 5,000 __extends.
        (
            (0..5000)
                .map(|i| format!("  M{i}:\n    f{i}: string\n    __extends: M{}\n", i + 1))
                .collect::<String>()
                + "  M5000:\n    id: string\n",
            "longer than 64 models",
        ),
        // Each model extends the two before it: without a budget, 2^60 parent reads.
        (
            "  M0:\n    id: string\n  M1:\n    x: string\n".to_string()
                + &(2..60)
                    .map(|i| {
                        format!(
                            "  M{i}:\n    f{i}: string\n    __extends: M{}, M{}\n",
                            i - 1,
                            i - 2
                        )
                    })
                    .collect::<String>(),
            "more than 1000000 fields",
        ),
        // Deep YAML nesting of a nested type.
        (
            format!(
                "  A:\n    x: {}string{}\n",
                "[".repeat(300),
                "]".repeat(300)
            ),
            "recursion limit exceeded",
        ),
    ];
    for (models, expected) in cases {
        let text = format!(
            "integrations:\n  demo:\n    syncs:\n      t:\n        runs: every hour\n        output: A\n        endpoint: GET /t\nmodels:\n{models}"
        );
        let error = assert_quick(expected, || parse_config(&text, MIN)).unwrap_err();
        assert!(error.to_string().contains(expected), "{expected}: {error}");
    }
    // Thousands of models referring to each other in a ring: cycles found in linear time.
    let ring: String = (0..20_000)
        .map(|i| format!("  M{i}:\n    id: string\n    next: M{}\n", (i + 1) % 20_000))
        .collect();
    let text = format!(
        "integrations:\n  demo:\n    syncs:\n      t:\n        runs: every hour\n        output: M0\n        endpoint: GET /t\nmodels:\n{ring}"
    );
    let config = assert_quick("a ring of models", || parse_config(&text, MIN)).unwrap();
    assert_eq!(config.models.len(), 20_000);
}

/// A random `nango.yaml`-like document: known keys and junk, anchors and aliases, model types from the
/// grammar and outside it.
fn random_config(rng: &mut Rng) -> String {
    const TYPES: &[&str] = &[
        "string",
        "number",
        "boolean",
        "date",
        "any",
        "object",
        "string[]",
        "Ticket",
        "Ticket[]",
        "open | closed",
        "42",
        "true",
        "null",
        "undefined",
        "Record<string, any>",
        "[]",
        "|",
        "string[][]",
        "Missing",
        "x|y|z[]",
        "int",
        "bigint",
        "''",
        "\"quoted\"",
        "[string]",
        "{a: string}",
    ];
    const RUNS: &[&str] = &[
        "every hour",
        "every 30 seconds",
        "every day",
        "every 1s",
        "daily",
        "~",
    ];
    let mut text = String::new();
    let mut anchors: Vec<String> = Vec::new();
    let value = |rng: &mut Rng, anchors: &Vec<String>| -> String {
        if !anchors.is_empty() && rng.below(4) == 0 {
            format!("*{}", rng.pick(anchors))
        } else {
            rng.pick(TYPES).to_string()
        }
    };
    text.push_str("integrations:\n");
    for i in 0..1 + rng.below(2) {
        text.push_str(&format!("  int{i}:\n"));
        if rng.below(2) == 0 {
            text.push_str("    syncs:\n");
            for s in 0..rng.below(3) {
                text.push_str(&format!(
                    "      s{s}:\n        runs: {}\n        output: {}\n        endpoint: {}\n",
                    rng.pick(RUNS),
                    value(rng, &anchors),
                    rng.pick(&["GET /t", "/t", "POST", "GET /t/{id}", "~"]),
                ));
                if rng.below(3) == 0 {
                    text.push_str(&format!(
                        "        sync_type: {}\n",
                        rng.pick(&["full", "incremental", "x"])
                    ));
                }
            }
        } else {
            text.push_str("    actions:\n");
            for a in 0..rng.below(3) {
                text.push_str(&format!(
                    "      a{a}:\n        input: {}\n        output: {}\n        endpoint: POST /a{a}\n",
                    value(rng, &anchors),
                    value(rng, &anchors)
                ));
            }
        }
    }
    text.push_str("models:\n");
    for m in 0..rng.below(5) {
        let name = *rng.pick(&[
            "Ticket", "User", "A", "B", "Ticket", "User", "A", "B", "bad-name",
        ]);
        let anchor = format!("m{m}");
        text.push_str(&format!("  {name}{m}: &{anchor}\n"));
        for f in 0..rng.below(5) {
            let key = *rng.pick(&["id", "name?", "__string", "x", "y?"]);
            let key = if let Some(base) = key.strip_suffix('?') {
                format!("{base}{f}?")
            } else if key == "__string" {
                key.to_string()
            } else {
                format!("{key}{f}")
            };
            text.push_str(&format!("    {key}: {}\n", value(rng, &anchors)));
        }
        if rng.below(3) == 0 {
            text.push_str(&format!(
                "    __extends: {}\n",
                rng.pick(&["Ticket0", "User1", "A2", "Missing"])
            ));
        }
        text.push_str("    id: string\n");
        anchors.push(anchor);
    }
    // Byte-level damage now and then.
    if rng.below(5) == 0 && !text.is_empty() {
        let mut bytes = text.into_bytes();
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, *rng.pick(b": -[]{}&*!|>'\"\n\t#?")),
                _ => bytes[at] = *rng.pick(b": -[]{}&*!|>'\"\n\t#?a1"),
            }
        }
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

#[test]
fn generated_configs_parse_or_fail_with_a_located_error() {
    let mut rng = Rng(0x5eed_0001);
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..3000 {
        let text = random_config(&mut rng);
        match parse_config(&text, MIN) {
            Ok(_) => ok += 1,
            Err(error) => {
                failed += 1;
                if std::env::var("FUZZ_SHOW").is_ok() {
                    eprintln!("{error}");
                }
                assert!(!error.message.is_empty(), "{text}");
                assert!(error.line >= 1, "{text}");
            }
        }
        // The same text as a providers document: an answer, never a panic.
        let _ = parse_catalog(&text);
    }
    assert!(ok > 100 && failed > 100, "ok {ok}, failed {failed}");
}

// ---------------------------------------------------------------------------------------------------------
// TypeScript
// ---------------------------------------------------------------------------------------------------------

/// A file nested `n` levels deep.
type Shape = Box<dyn Fn(usize) -> String>;

/// Every shape of nesting a file can have.
fn nested_shapes() -> Vec<(&'static str, Shape)> {
    fn wrap(open: &'static str, middle: &'static str, close: &'static str) -> Shape {
        Box::new(move |n| format!("{}{middle}{}", open.repeat(n), close.repeat(n)))
    }
    fn statement(body: Box<dyn Fn(usize) -> String>) -> Shape {
        Box::new(move |n| format!("export const x = {};\n", body(n)))
    }
    vec![
        ("parentheses", statement(wrap("(", "1", ")"))),
        ("arrays", statement(wrap("[", "1", "]"))),
        ("objects", statement(wrap("{a:", "1", "}"))),
        ("not", statement(wrap("!", "x", ""))),
        ("tilde", statement(wrap("~", "1", ""))),
        ("minus", statement(wrap("-(", "1", ")"))),
        ("typeof", statement(wrap("typeof ", "x", ""))),
        ("void", statement(wrap("void ", "x", ""))),
        ("new", statement(wrap("new ", "X", ""))),
        ("conditional", statement(wrap("a?b:", "c", ""))),
        ("conditional-middle", statement(wrap("a?", "b", ":c"))),
        ("arrows", statement(wrap("x=>", "1", ""))),
        ("arrow-bodies", statement(wrap("()=>{return ", "1", "}"))),
        (
            "assignments",
            Box::new(|n| format!("let a;\nexport const x = {}1;\n", "a=".repeat(n))),
        ),
        ("sum", statement(wrap("1+", "1", ""))),
        ("power", statement(wrap("2**", "1", ""))),
        ("or", statement(wrap("a||", "b", ""))),
        ("nullish", statement(wrap("a??", "b", ""))),
        (
            "members",
            Box::new(|n| format!("export const x = a{};\n", ".b".repeat(n))),
        ),
        (
            "calls",
            Box::new(|n| format!("export const x = f{};\n", "()".repeat(n))),
        ),
        (
            "indexes",
            Box::new(|n| format!("export const x = a{};\n", "[0]".repeat(n))),
        ),
        (
            "optional-chain",
            Box::new(|n| format!("export const x = a{};\n", "?.b".repeat(n))),
        ),
        (
            "non-null",
            Box::new(|n| format!("export const x = a{};\n", "!".repeat(n))),
        ),
        (
            "as",
            Box::new(|n| format!("export const x = a{};\n", " as any".repeat(n))),
        ),
        ("templates", statement(wrap("`${", "1", "}`"))),
        ("spread", statement(wrap("[...", "[1]", "]"))),
        ("commas", statement(wrap("(0,", "1", ")"))),
        ("if", Box::new(|n| format!("{}x();\n", "if (a) ".repeat(n)))),
        (
            "blocks",
            Box::new(|n| format!("{}x();{}\n", "if (a) {".repeat(n), "}".repeat(n))),
        ),
        (
            "else-if",
            Box::new(|n| format!("if (a) x();{}\n", " else if (a) x();".repeat(n))),
        ),
        (
            "labels",
            Box::new(|n| {
                format!(
                    "{}x();\n",
                    (0..n).map(|i| format!("l{i}: ")).collect::<String>()
                )
            }),
        ),
        (
            "while",
            Box::new(|n| format!("{}x();\n", "while (a) ".repeat(n))),
        ),
        (
            "functions",
            Box::new(|n| format!("{}{}\n", "function f() {".repeat(n), "}".repeat(n))),
        ),
        (
            "classes",
            Box::new(|n| format!("{}{}\n", "class A { m() {".repeat(n), "}}".repeat(n))),
        ),
        (
            "namespaces",
            Box::new(|n| format!("{}{}\n", "namespace A {".repeat(n), "}".repeat(n))),
        ),
        (
            "generic-types",
            Box::new(|n| format!("let x: {}B{};\n", "A<".repeat(n), ">".repeat(n))),
        ),
        (
            "array-types",
            Box::new(|n| format!("let x: B{};\n", "[]".repeat(n))),
        ),
        (
            "union-types",
            Box::new(|n| format!("let x: {}B;\n", "A|".repeat(n))),
        ),
        (
            "object-types",
            Box::new(|n| format!("let x: {}B{};\n", "{a:".repeat(n), "}".repeat(n))),
        ),
        (
            "function-types",
            Box::new(|n| format!("let x: {}B;\n", "()=>".repeat(n))),
        ),
        (
            "conditional-types",
            Box::new(|n| format!("type X<T> = {}B;\n", "T extends A ? B : ".repeat(n))),
        ),
        (
            "await",
            Box::new(|n| {
                format!(
                    "export async function f() {{ return {}x; }}\n",
                    "await ".repeat(n)
                )
            }),
        ),
        (
            "yield",
            Box::new(|n| format!("export function* f() {{ {}x; }}\n", "yield ".repeat(n))),
        ),
        (
            "line-sum",
            Box::new(|n| format!("export const x = 1{};\n", "\n+ 1".repeat(n))),
        ),
        (
            "line-members",
            Box::new(|n| format!("export const x = a{};\n", "\n.b".repeat(n))),
        ),
        ("regexes", statement(wrap("/a/.test(s)&&(", "1", ")"))),
        ("divisions", statement(wrap("a/(", "1", ")"))),
        ("strings", statement(wrap("'('+(", "')'", ")"))),
    ]
}

fn refused_as_too_deep(result: &Result<impl Sized, impl ToString>) -> bool {
    matches!(result, Err(e) if e.to_string().contains("nested too deeply"))
}

#[test]
fn typescript_nested_100_000_deep_is_refused_in_every_shape() {
    for (name, shape) in nested_shapes() {
        let source = shape(100_000);
        let result = assert_quick(name, || compile("deep.ts", &source));
        assert!(
            refused_as_too_deep(&result),
            "{name}: {:?}",
            result.map(|_| ()).map_err(|e| e.to_string())
        );
    }
}

/// 100,000 nested parentheses, hidden from the nesting check behind a `/` it reads as a division but oxc
/// reads as a regular expression (after a block's `}`), which opens a fake template literal (backtick) or
/// string (quote) in the check's eyes. oxc overflows its stack on them; it does so in the compile's child
/// process, and the caller gets an error naming the file. (Were the compile not isolated, this test's
/// process would die.)
#[test]
fn typescript_nesting_hidden_from_the_check_fails_cleanly() {
    let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    for (name, source) in [
        (
            "backtick",
            format!("{{}}\n/`/.test('');\nexport const x = {deep};\n"),
        ),
        (
            "quote",
            format!("{{}}\n/'/.test(''); export const x = {deep};\n"),
        ),
    ] {
        let result = assert_quick(name, || compile("github/syncs/hidden.ts", &source));
        let error = result.expect_err(name);
        assert_eq!(
            error.to_string(),
            "github/syncs/hidden.ts:1:1: the compiler could not process this file (it crashed: nesting too deep or too large); simplify the file",
            "{name}"
        );
    }
    // The process that asked is fine and compiles on.
    assert!(compile("ok.ts", "export const ok = (1);\n").is_ok());
}

/// The same tricks after the condition of an `if`, `while`, `for` or `with`, where a `/` always starts a
/// regular expression: the nesting check reads them right and refuses the file where the nesting passes
/// the limit, before any compile.
#[test]
fn typescript_nesting_behind_a_regex_after_a_condition_is_refused() {
    let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    for head in [
        "if (x)",
        "while (x)",
        "for (;;)",
        "for await (const a of b)",
        "with (x)",
    ] {
        for quote in ['`', '\''] {
            let source = format!("{head} /{quote}/.test(y); export const x = {deep};\n");
            let result = assert_quick(head, || compile("hidden.ts", &source));
            assert!(
                refused_as_too_deep(&result),
                "{head} {quote}: {:?}",
                result.map(|_| ()).map_err(|e| e.to_string())
            );
        }
    }
}

/// The deepest file of each shape that the guard lets through compiles on an eighth of the compile thread's
/// stack: the guard's count bounds oxc's recursion with a wide margin. (Were it wrong, this test would die
/// of a stack overflow rather than fail politely.)
#[test]
fn typescript_at_the_nesting_limit_compiles_on_an_eighth_of_the_stack() {
    for (name, shape) in nested_shapes() {
        // The largest n the guard accepts.
        let (mut low, mut high) = (0, MAX_NESTING + 1);
        while low + 1 < high {
            let mid = (low + high) / 2;
            if refused_as_too_deep(&compile_on_stack("deep.ts", &shape(mid), COMPILE_STACK)) {
                high = mid;
            } else {
                low = mid;
            }
        }
        assert!(low >= 100, "{name}: only {low} levels are accepted");
        let result = compile_on_stack("deep.ts", &shape(low), COMPILE_STACK / 8);
        assert!(!refused_as_too_deep(&result), "{name}");
    }
}

/// Random token soup: every answer is a module or a located error.
#[test]
fn generated_typescript_compiles_or_fails_with_a_located_error() {
    const TOKENS: &[&str] = &[
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "`",
        "${",
        "'",
        "\"",
        "/",
        "//",
        "/*",
        "*/",
        "\n",
        " ",
        ";",
        ",",
        "=>",
        "=",
        "?",
        ":",
        "!",
        "+",
        "-",
        "*",
        "**",
        "<",
        ">",
        ".",
        "?.",
        "...",
        "x",
        "y1",
        "$",
        "_",
        "1",
        "0x1f",
        "1.5e3",
        "'s'",
        "\"t\"",
        "`u`",
        "/re/g",
        "new ",
        "typeof ",
        "await ",
        "yield ",
        "function ",
        "class ",
        "if ",
        "else ",
        "return ",
        "export ",
        "import ",
        "from ",
        "const ",
        "let ",
        "as ",
        "type ",
        "enum ",
        "namespace ",
        "interface ",
        "async ",
        "\\",
        "é",
        "😀",
        "\u{2028}",
        "#p",
        "@d",
        "<T>",
        "any",
        "void ",
    ];
    let mut rng = Rng(0x5eed_0002);
    for round in 0..3000 {
        let length = rng.below(if round % 10 == 0 { 3000 } else { 200 });
        let source: String = (0..length).map(|_| *rng.pick(TOKENS)).collect();
        match compile("soup.ts", &source) {
            Ok(_) => {}
            Err(error) => {
                assert!(error.line >= 1 && error.column >= 1, "{source:?}");
                assert!(!error.message.is_empty());
            }
        }
    }
}

#[test]
fn real_scripts_still_compile_and_damaged_ones_fail_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../nango-integrations");
    let mut scripts = Vec::new();
    for entry in walk(&root) {
        if entry.extension().is_some_and(|e| e == "ts") {
            scripts.push(std::fs::read_to_string(&entry).unwrap());
        }
    }
    assert!(scripts.len() >= 3);
    let mut rng = Rng(0x5eed_0003);
    for script in &scripts {
        compile("real.ts", script).unwrap();
        for _ in 0..300 {
            let mut bytes = script.clone().into_bytes();
            for _ in 0..=rng.below(5) {
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, *rng.pick(b"([{`'\"/\\}])!?:;,\n")),
                    _ => bytes[at] = *rng.pick(b"([{`'\"/\\}])!?:;,\nx"),
                }
            }
            let _ = compile("damaged.ts", &String::from_utf8_lossy(&bytes));
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------------------

/// Checks and writes the records `script` evaluates to, as `batchSave` does, with a 1 MB record limit.
fn write_records(script: &str) -> Result<RecordBatch, String> {
    let runtime = Runtime::new().unwrap();
    runtime.set_memory_limit(256 << 20);
    runtime.set_max_stack_size(1 << 20);
    let context = Context::full(&runtime).unwrap();
    context.with(|ctx| {
        let records: Array = ctx.eval(script).catch(&ctx).map_err(|e| e.to_string())?;
        let checked = checked_records(&ctx, "batchSave", "Item", &records, &mut |_| {})
            .catch(&ctx)
            .map_err(|e| e.to_string())?;
        record_batch(&ctx, (SaveOp::Save, true), checked, (1 << 20, usize::MAX))
            .catch(&ctx)
            .map_err(|e| e.to_string())
    })
}

#[test]
fn hostile_records_fail_with_a_message_naming_the_record() {
    let cases = [
        (
            "new Array(2 ** 31 - 1)".to_string(),
            format!("a batch holds at most {MAX_BATCH_RECORDS} records and this one has 2147483647"),
        ),
        (
            "const a = []; a.length = 2 ** 32 - 1; a".to_string(),
            "a batch holds at most".to_string(),
        ),
        // A Proxy is not an array to the native save (sdk.js lets it through, as Array.isArray does).
        (
            "new Proxy([], { get: (t, k) => k === 'length' ? 2 ** 53 : { id: 'a' } })".to_string(),
            "into type 'array'".to_string(),
        ),
        (
            "const inner = []; inner.length = 2 ** 32 - 1; [{ id: 'a' }, { id: 'b', inner }]".to_string(),
            "record at index 1 is larger than 1048576 bytes as JSON, the limit set by nango.max_record_size"
                .to_string(),
        ),
        (
            "[{ id: 'a', text: 'x'.repeat(2 << 20) }]".to_string(),
            "record at index 0 is larger than 1048576 bytes".to_string(),
        ),
        (
            "[{ id: 'a', list: Array.from({ length: 200000 }, (_, i) => ({ i })) }]".to_string(),
            "record at index 0 is larger than 1048576 bytes".to_string(),
        ),
        (
            "[{ id: 'm', m: new Map(), big: 'y'.repeat(2 << 20) }]".to_string(),
            "record at index 0 is larger than 1048576 bytes".to_string(),
        ),
        (
            "let o = {}; for (let i = 0; i < 300000; i++) o = { o }; [{ id: 'a' }, { id: 'deep', o }]".to_string(),
            format!("record at index 1 is nested deeper than {MAX_RECORD_DEPTH} levels"),
        ),
        (
            "let o = []; for (let i = 0; i < 300000; i++) o = [o]; [{ id: 'deep', o }]".to_string(),
            format!("record at index 0 is nested deeper than {MAX_RECORD_DEPTH} levels"),
        ),
        (
            "let n = 0; const t = { toJSON() { n++; return { t }; } }; [{ id: 'tojson', t }]".to_string(),
            "nested deeper than".to_string(),
        ),
        (
            "const r = { id: 'c' }; let o = r; for (let i = 0; i < 500; i++) o = o.next = {}; o.back = r; [r]".to_string(),
            "circular".to_string(),
        ),
    ];
    for (script, expected) in cases {
        let error = assert_quick(&script, || write_records(&script)).unwrap_err();
        assert!(error.contains(&expected), "{script}: {error}");
    }
    // Just under the limits: written.
    let batch = write_records(
        "let o = {}; for (let i = 0; i < 900; i++) o = { o }; [{ id: 'a', o, s: 'x'.repeat(1000000) }]",
    )
    .unwrap();
    assert_eq!(batch.len(), 1);
}

/// Random JS values: the batch is exactly JSON.stringify's text, or fails with a message.
#[test]
fn generated_records_are_written_as_json_stringify_writes_them() {
    let generator = r#"(() => {
        let seed = SEED;
        const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
        const value = (depth) => {
            switch (rand(depth > 6 ? 8 : 14)) {
                case 0: return null;
                case 1: return rand(2) === 0;
                case 2: return rand(1000000) - 500000;
                case 3: return rand(1000) / 7;
                case 4: return ['', 'a', 'é"\\\n', '\u0000\ud800', '😀'][rand(5)];
                case 5: return undefined;
                case 6: return [NaN, Infinity, -0, 1e21, 2 ** 53 + 2][rand(5)];
                case 7: return new Date(rand(2) ? 0 : NaN);
                case 8: case 9: { const a = []; for (let i = rand(5); i > 0; i--) a.push(value(depth + 1)); if (rand(5) === 0) a.length += 3; return a; }
                case 10: case 11: { const o = {}; for (let i = rand(5); i > 0; i--) o[['k', 'id', '__proto__', '1', 'x y'][rand(5)] + rand(3)] = value(depth + 1); return o; }
                case 12: return { toJSON: (k) => (rand(2) ? k : { k }) };
                default: return () => 1;
            }
        };
        const out = [];
        for (let i = rand(6); i > 0; i--) {
            const r = value(1);
            out.push(r && typeof r === 'object' && !Array.isArray(r) && rand(4) ? Object.assign(r, { id: 'r' + i }) : r);
        }
        return out;
    })()"#;
    let runtime = Runtime::new().unwrap();
    let context = Context::full(&runtime).unwrap();
    let (mut ok, mut failed) = (0, 0);
    for seed in 0..3000 {
        context.with(|ctx| {
            let records: Array = ctx
                .eval(generator.replace("SEED", &seed.to_string()))
                .catch(&ctx)
                .unwrap_or_else(|e| panic!("the generator failed: {e}"));
            let written = checked_records(&ctx, "batchSave", "Item", &records, &mut |_| {})
                .and_then(|checked| {
                    record_batch(&ctx, (SaveOp::Save, true), checked, (1 << 20, usize::MAX))
                })
                .catch(&ctx);
            match written {
                Ok(batch) => {
                    ok += 1;
                    for record in batch.records {
                        let parsed: Value = serde_json::from_str(&record.json).unwrap();
                        assert!(parsed.is_object(), "{}", record.json);
                    }
                }
                Err(error) => {
                    failed += 1;
                    assert!(error.to_string().contains("nango.batchSave: "), "{error}");
                }
            }
        });
    }
    assert!(ok > 100 && failed > 100, "ok {ok}, failed {failed}");
}

// ---------------------------------------------------------------------------------------------------------
// Scripts that try to exhaust the engine
// ---------------------------------------------------------------------------------------------------------

#[derive(Default)]
struct MemoryHost {
    saved: usize,
    logs: Vec<(String, String, Option<String>)>,
}

impl Host for MemoryHost {
    fn save(&mut self, _op: SaveOp, _model: &str, batch: RecordBatch) -> Result<(), String> {
        self.saved += batch.len();
        Ok(())
    }
    fn log(&mut self, level: &str, message: &str, payload: Option<&str>) {
        self.logs
            .push((level.into(), message.into(), payload.map(str::to_string)));
    }
    fn metadata(&mut self) -> Result<String, String> {
        Ok("{}".into())
    }
    fn set_metadata(&mut self, _json: &str, _merge: bool) -> Result<(), String> {
        Ok(())
    }
    fn lock_credentials(&mut self) -> Result<Value, String> {
        Err("no refresh here".into())
    }
    fn store_credentials(&mut self, _credentials: &Value) -> Result<(), String> {
        Err("no refresh here".into())
    }
    fn release_credentials(&mut self) {}
}

/// Runs `body` as a sync's `fetchData(nango)`, with a 1 MB record limit and the default heap.
fn run_sync(body: &str) -> (Result<Option<Value>, ScriptError>, MemoryHost) {
    let source = format!(
        "export default async function fetchData(nango: any): Promise<void> {{\n{body}\n}}\n"
    );
    let compiled = compile("zoo/syncs/case.ts", &source).unwrap();
    let modules: HashMap<String, StoredModule> = [(
        "zoo/syncs/case.ts".to_string(),
        StoredModule::new(compiled.js, compiled.source_map),
    )]
    .into();
    let provider: Provider =
        serde_yaml::from_str("proxy:\n  base_url: http://127.0.0.1:9\n").unwrap();
    let host = Rc::new(RefCell::new(MemoryHost::default()));
    let run = ScriptRun {
        kind: ScriptKind::Sync,
        entry: "zoo/syncs/case.ts".into(),
        modules: module_map(modules),
        provider_name: "zoo".into(),
        provider,
        oauth_client: None,
        connection: ConnectionInfo {
            connection_id: "c".into(),
            provider_config_key: "zoo".into(),
            connection_config: json!({}),
            credentials: json!({"type": "API_KEY", "apiKey": "k"}),
        },
        last_sync_date: None,
        models: vec!["Item".into()],
        limits: Limits {
            timeout: Duration::from_secs(20),
            max_record_size: 1 << 20,
            ..Limits::default()
        },
    };
    let result = run_script(run, host.clone(), Arc::new(|| false));
    let host = Rc::try_unwrap(host).ok().unwrap().into_inner();
    (result, host)
}

#[test]
fn scripts_that_exhaust_the_engine_end_with_an_error() {
    let cases = [
        (
            "await nango.batchSave(new Array(2 ** 31 - 1), 'Item');",
            "a batch holds at most",
        ),
        (
            "const inner: any[] = []; inner.length = 2 ** 32 - 1; await nango.batchSave([{ id: 'a', inner }], 'Item');",
            "record at index 0 is larger than 1048576 bytes",
        ),
        (
            "let o: any = {}; for (let i = 0; i < 300000; i++) o = { o }; await nango.batchSave([{ id: 'a', o }], 'Item');",
            "record at index 0 is nested deeper than 1000 levels",
        ),
        (
            "const f = (n: number): number => f(n + 1) + 1; f(0);",
            "Maximum call stack size exceeded",
        ),
        (
            "const f = (n: number): any => [f(n + 1)]; f(0);",
            "Maximum call stack size exceeded",
        ),
        (
            "let o: any = {}; for (let i = 0; i < 300000; i++) o = { o }; JSON.stringify(o);",
            "Maximum call stack size exceeded",
        ),
        (
            "JSON.parse('['.repeat(300000) + ']'.repeat(300000));",
            "Maximum call stack size exceeded",
        ),
        (
            "const a: any[] = []; while (true) a.push({ x: a.length });",
            "ran out of memory",
        ),
        ("let s = 'x'; while (true) s = s + s;", ""),
    ];
    for (body, expected) in cases {
        let (result, _) = assert_quick(body, || run_sync(body));
        let error = result.unwrap_err();
        assert!(
            error.message().contains(expected),
            "{body}: {}",
            error.message()
        );
    }
}

#[test]
fn a_huge_log_payload_is_replaced_by_a_note() {
    let (result, host) = run_sync(
        "nango.log('big', { big: 'x'.repeat(50e6) }); nango.log('small', { n: 1 }); nango.log('x'.repeat(2e6));",
    );
    result.unwrap();
    let (_, message, payload) = &host.logs[0];
    assert_eq!(message, "big");
    let payload: Value = serde_json::from_str(payload.as_deref().unwrap()).unwrap();
    let note = payload["_nango_note"].as_str().unwrap();
    assert!(
        note.contains("50000010 bytes") && note.contains(&MAX_LOG_PAYLOAD.to_string()),
        "{note}"
    );
    assert_eq!(host.logs[1].2.as_deref(), Some(r#"{"n":1}"#));
}

// ---------------------------------------------------------------------------------------------------------
// Response bodies
// ---------------------------------------------------------------------------------------------------------

#[test]
fn deep_and_broken_response_bodies_are_values_or_errors() {
    let runtime = Runtime::new().unwrap();
    runtime.set_max_stack_size(1 << 20);
    let context = Context::full(&runtime).unwrap();
    context.with(|ctx| {
        let deep = format!("{}{}", "[".repeat(300_000), "]".repeat(300_000));
        let result = pg_nango_core::script::json::parse(&ctx, deep.as_bytes()).catch(&ctx);
        let error = result.unwrap_err().to_string();
        assert!(
            error.contains("Maximum call stack size exceeded"),
            "{error}"
        );
        let shallow = format!("{}1{}", "{\"a\":".repeat(500), "}".repeat(500));
        assert!(pg_nango_core::script::json::parse(&ctx, shallow.as_bytes()).is_ok());
        let mut rng = Rng(0x5eed_0004);
        for _ in 0..3000 {
            let body: Vec<u8> = (0..rng.below(200))
                .map(|_| *rng.pick(b"[]{}\",:0123456789.eE+-truefalsnl \\u\xff"))
                .collect();
            let _ = pg_nango_core::script::json::parse(&ctx, &body).catch(&ctx);
        }
    });
}
