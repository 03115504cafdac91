//! Hostile scripts, records, logs, TypeScript and YAML against a real cluster: each ends as an ERROR job or
//! a failed statement with a message saying what happened, a session opened before it notices nothing, and
//! no backend dies (a backend that dies restarts the whole cluster). Its own binary, with its own cluster:
//! it deploys its own integration over the fixture.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pg_nango_e2e::*;
use serde_json::Value;

/// The zoo's syncs: name and the body of `fetchData(nango)`.
const SYNCS: &[(&str, &str)] = &[
    (
        "fine",
        "await nango.batchSave([{ id: 'still-here' }], 'MODEL');",
    ),
    (
        "huge-batch",
        "await nango.batchSave(new Array(2 ** 31 - 1), 'MODEL');",
    ),
    (
        "huge-inner-array",
        "const inner: any[] = []; inner.length = 2 ** 32 - 1;\n  await nango.batchSave([{ id: 'a', inner }], 'MODEL');",
    ),
    (
        "deep-record",
        "let o: any = {}; for (let i = 0; i < 300000; i++) o = { o };\n  await nango.batchSave([{ id: 'deep', o }], 'MODEL');",
    ),
    (
        "big-record",
        "await nango.batchSave([{ id: 'small' }, { id: 'big', text: 'x'.repeat(2 << 20) }], 'MODEL');",
    ),
    (
        "deep-recursion",
        "const f = (n: number): number => f(n + 1) + 1;\n  f(0);",
    ),
    (
        "alloc-loop",
        "const a: any[] = [];\n  while (true) a.push({ n: a.length, s: 'x' + a.length });",
    ),
    (
        "big-log",
        "nango.log('big', { big: 'x'.repeat(50e6) });\n  await nango.batchSave([{ id: 'after-the-log' }], 'MODEL');",
    ),
];

/// A sync's model: its name in CamelCase (a model is the output of one sync only).
fn model(sync: &str) -> String {
    sync.split('-')
        .map(|part| part[..1].to_uppercase() + &part[1..])
        .collect()
}

fn zoo_config(extra: &str) -> String {
    let mut config = String::from("integrations:\n  zoo:\n    provider: demo\n    syncs:\n");
    for (name, _) in SYNCS {
        config.push_str(&format!(
            "      {name}:\n        runs: every hour\n        auto_start: false\n        output: {}\n        endpoint: GET /zoo/{name}\n",
            model(name)
        ));
    }
    config.push_str(extra);
    config.push_str("models:\n");
    for (name, _) in SYNCS {
        config.push_str(&format!("  {}:\n    id: string\n", model(name)));
    }
    config
}

fn zoo_files() -> BTreeMap<String, String> {
    SYNCS
        .iter()
        .map(|(name, body)| {
            (
                format!("zoo/syncs/{name}.ts"),
                format!(
                    "export default async function fetchData(nango: any): Promise<void> {{\n  {}\n}}\n",
                    body.replace("MODEL", &model(name))
                ),
            )
        })
        .collect()
}

fn deploy(
    client: &mut Client,
    config: &str,
    files: &BTreeMap<String, String>,
) -> Result<Value, postgres::Error> {
    let files = serde_json::to_value(files).unwrap();
    client
        .query_one(
            "SELECT nango.deploy($1::text, $2::jsonb, allow_destructive => true)",
            &[&config, &files],
        )
        .map(|row| row.get::<_, Value>(0))
}

/// What is deployed for the zoo, to compare before and after a refused deploy.
fn deployed(client: &mut Client) -> Vec<(String, String)> {
    pairs(
        client,
        "SELECT name, md5(c::text) FROM nango.sync_configs c WHERE provider_config_key = 'zoo' ORDER BY name",
        &[],
    )
}

fn still_answers(session: &mut Client, case: &str) {
    let one: i32 = session
        .query_one("SELECT 1", &[])
        .unwrap_or_else(|e| panic!("{case}: the session opened before it was cut: {e}"))
        .get(0);
    assert_eq!(one, 1);
}

/// Prints the end of the server log when the test fails (the cluster's files go when the binary exits).
struct ShowServerLog;

impl Drop for ShowServerLog {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(cluster().datadir.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "server.log (end):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

#[test]
fn every_hostile_input_ends_as_an_error_and_the_cluster_stays_up() {
    let _show = ShowServerLog;
    let mut client = connect();
    client
        .batch_execute("ALTER SYSTEM SET nango.max_record_size = 1")
        .unwrap();
    client.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    deploy(&mut client, &zoo_config(""), &zoo_files()).expect("deploy the zoo");
    create_connection(&mut client, "zoo", "zoo-conn");

    // Run time: each job ends as ERROR with its message.
    let cases = [
        (
            "huge-batch",
            "nango.batchSave: a batch holds at most 100000 records and this one has 2147483647",
        ),
        (
            "huge-inner-array",
            "nango.batchSave: record at index 0 is larger than 1048576 bytes as JSON, the limit set by nango.max_record_size",
        ),
        (
            "deep-record",
            "nango.batchSave: record at index 0 is nested deeper than 1000 levels",
        ),
        (
            "big-record",
            "nango.batchSave: record at index 1 is larger than 1048576 bytes as JSON",
        ),
        ("deep-recursion", "Maximum call stack size exceeded"),
        ("alloc-loop", "the script ran out of memory"),
    ];
    for (sync, expected) in cases {
        eprintln!("case {sync}");
        let mut bystander = connect();
        let started = Instant::now();
        let (job, status) = run_sync(&mut client, "zoo", sync, "zoo-conn");
        let (_, _, error) = job_outcome(&mut client, job);
        assert_eq!(status, "ERROR", "{sync}: {error:?}");
        let description = error.as_ref().unwrap()["description"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(description.contains(expected), "{sync}: {description}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{sync} took {:?}",
            started.elapsed()
        );
        still_answers(&mut bystander, sync);
    }
    for (sync, _) in cases {
        assert!(record_ids(&mut client, &model(sync), "zoo-conn").is_empty());
    }

    // A 50 MB log payload: kept as a note of its size, and the run goes on.
    let mut bystander = connect();
    let (job, status) = run_sync(&mut client, "zoo", "big-log", "zoo-conn");
    assert_eq!(status, "SUCCESS");
    let logs = job_logs(&mut client, job);
    let (_, message, payload) = logs.iter().find(|(_, m, _)| m == "big").unwrap();
    assert_eq!(message, "big");
    let note = payload.as_ref().unwrap()["_nango_note"].as_str().unwrap();
    assert!(
        note.starts_with("the payload was 50000010 bytes of JSON, more than the 65536 bytes"),
        "{note}"
    );
    assert_eq!(
        record_ids(&mut client, "BigLog", "zoo-conn"),
        ["after-the-log"]
    );
    still_answers(&mut bystander, "big-log");

    // Deploy time: refused within seconds, and the deployment stays as it was.
    let before = deployed(&mut client);
    assert_eq!(before.len(), SYNCS.len());
    let mut deep_files = zoo_files();
    deep_files.insert(
        "zoo/syncs/fine.ts".into(),
        format!(
            "export default async function fetchData(nango: any) {{\n  const x = {}1{};\n}}\n",
            "(".repeat(100_000),
            ")".repeat(100_000)
        ),
    );
    // The same nesting hidden from the nesting check (a regular expression after a block, which the check
    // reads as a division followed by a template literal or a string): oxc overflows its stack, in the
    // compile's child process, not in the backend.
    let hidden_files = |quote: char| {
        let mut files = zoo_files();
        files.insert(
            "zoo/syncs/fine.ts".into(),
            format!(
                "{{}}\n/{quote}/.test(''); export default async function fetchData(nango: any) {{ const x = {}1{}; }}\n",
                "(".repeat(100_000),
                ")".repeat(100_000)
            ),
        );
        files
    };
    let crashed = "deploy failed: zoo/syncs/fine.ts:1:1: the compiler could not process this file (it crashed: nesting too deep or too large); simplify the file";
    let mut laughs =
        String::from("x-laughs:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let items = vec![format!("*a{}", level - 1); 10].join(", ");
        laughs.push_str(&format!("  a{level}: &a{level} [{items}]\n"));
    }
    let refused = [
        (
            zoo_config(""),
            deep_files,
            "deploy failed: zoo/syncs/fine.ts:2:2003: the code is nested too deeply",
        ),
        (zoo_config(""), hidden_files('`'), crashed),
        (zoo_config(""), hidden_files('\''), crashed),
        (
            zoo_config(&laughs),
            zoo_files(),
            "deploy failed: nango.yaml:1: invalid YAML: the document expands to more than 1000000 values",
        ),
    ];
    for (config, files, expected) in refused {
        let mut bystander = connect();
        let started = Instant::now();
        let error = deploy(&mut client, &config, &files).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let (message, _) = db_error(error);
        assert!(message.starts_with(expected), "{message}");
        still_answers(&mut bystander, expected);
        assert_eq!(deployed(&mut client), before);
    }
    let providers_before: i64 = client
        .query_one("SELECT count(*) FROM nango.providers", &[])
        .unwrap()
        .get(0);
    let mut bystander = connect();
    let started = Instant::now();
    let error = client
        .query_one(
            "SELECT nango.upsert_providers($1)",
            &[&laughs.replace("x-laughs:\n  ", "").replace("\n  ", "\n")],
        )
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let (message, _) = db_error(error);
    assert!(
        message.contains("the document expands to more than 1000000 values"),
        "{message}"
    );
    still_answers(&mut bystander, "upsert_providers");
    let providers_after: i64 = client
        .query_one("SELECT count(*) FROM nango.providers", &[])
        .unwrap()
        .get(0);
    assert_eq!(providers_after, providers_before);

    // The deployment still runs.
    let (_, status) = run_sync(&mut client, "zoo", "fine", "zoo-conn");
    assert_eq!(status, "SUCCESS");
    assert_eq!(record_ids(&mut client, "Fine", "zoo-conn"), ["still-here"]);

    // No backend died along the way.
    let log = std::fs::read_to_string(cluster().datadir.join("server.log")).unwrap();
    for crash in ["terminated by signal", "was terminated", "server process"] {
        assert!(
            !log.contains(crash),
            "the server log reports a crash ({crash}):\n{}",
            log.lines()
                .filter(|l| l.contains(crash))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
