//! The `pg-nango` binary against a real cluster with the extension and the mock API: it connects as psql
//! does (libpq's environment), deploys a folder showing what changes, runs, follows and reads syncs, and
//! reports the server's errors with their SQLSTATE.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pg_nango_e2e::*;
use serde_json::{Value, json};

/// `pg-nango` with the cluster in libpq's environment variables, without colours.
fn pg_nango() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pg-nango"));
    command
        .env_remove("DATABASE_URL")
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", cluster().port.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "postgres")
        .env("NO_COLOR", "1");
    command
}

fn run(args: &[&str]) -> Output {
    pg_nango().args(args).output().expect("run pg-nango")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The error output of a command that must have failed (exit code 1).
fn failure(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", stdout(output));
    stderr(output)
}

fn json_out(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "pg-nango failed: {}",
        stderr(output)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(output)))
}

/// The fixture project written out as a folder, as a user has it on a laptop.
fn fixture_folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pg_nango_cli_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (config, files) = fixture();
    write(&dir, "nango.yaml", &config);
    for (path, source) in files.as_object().unwrap() {
        write(&dir, path, source.as_str().unwrap());
    }
    dir
}

fn write(dir: &Path, relative: &str, text: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A connection of the fixture's `e2e` integration whose `records` sync runs these steps.
fn connection_with_steps(client: &mut Client, connection_id: &str, steps: &Value) {
    create_connection(client, "e2e", connection_id);
    set_metadata(client, "e2e", connection_id, steps);
}

fn deployed_source(client: &mut Client, path: &str) -> String {
    client
        .query_one("SELECT source FROM nango.files WHERE path = $1", &[&path])
        .unwrap()
        .get(0)
}

#[test]
fn deploy_shows_what_changes_plans_and_refuses_removals() {
    let mut client = connect();
    let dir = fixture_folder("deploy");
    let dir_arg = dir.to_str().unwrap();

    // The folder is what the cluster runs already.
    let unchanged = run(&["deploy", dir_arg]);
    assert!(unchanged.status.success(), "{}", stderr(&unchanged));
    assert!(
        stdout(&unchanged).starts_with("no changes\n"),
        "{}",
        stdout(&unchanged)
    );
    assert!(
        stdout(&unchanged).contains("deployed 13 syncs, 4 actions from "),
        "{}",
        stdout(&unchanged)
    );

    // One script changed: --plan shows it and deploys nothing.
    let script = "demo/syncs/tickets.ts";
    let before = deployed_source(&mut client, script);
    let changed = format!("{before}\nexport const touchedByTheClient = 1;\n");
    write(&dir, script, &changed);
    let plan = run(&["deploy", dir_arg, "--plan"]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let shown = stdout(&plan);
    let changes: Vec<&str> = shown
        .lines()
        .filter(|line| line.starts_with(['+', '~', '-']))
        .collect();
    assert_eq!(
        changes,
        ["~ file demo/syncs/tickets.ts", "~ sync demo/tickets"]
    );
    assert!(shown.ends_with("\nnothing deployed (--plan)\n"), "{shown}");
    assert_eq!(deployed_source(&mut client, script), before);

    // Deployed for real, with the summary as JSON.
    let deployed = json_out(&run(&["deploy", dir_arg, "--json"]));
    assert_eq!(deployed["deployed"], json!(true));
    assert_eq!(
        deployed["summary"]["changes"],
        json!({"added": [], "changed": ["file demo/syncs/tickets.ts", "sync demo/tickets"], "removed": []})
    );
    assert_eq!(deployed_source(&mut client, script), changed);

    // Removing an action needs --allow-destructive: without it, nothing changes.
    let config = std::fs::read_to_string(dir.join("nango.yaml")).unwrap();
    let without_action = config.replacen(
        "        actions:\n            create-ticket:\n                input: CreateTicketInput\n                output: Ticket\n                endpoint: POST /tickets\n",
        "",
        1,
    );
    assert_ne!(without_action, config, "the fixture's demo action moved");
    write(&dir, "nango.yaml", &without_action);
    let refused = run(&["deploy", dir_arg]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stdout(&refused).contains("- action demo/create-ticket\n"),
        "{}",
        stdout(&refused)
    );
    assert!(
        stderr(&refused).contains(
            "error: the deploy would remove action demo/create-ticket; nothing was deployed"
        ) && stderr(&refused).contains("pass --allow-destructive"),
        "{}",
        stderr(&refused)
    );
    let still_there: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM nango.action_configs WHERE provider_config_key = 'demo' AND name = 'create-ticket')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(still_there);

    // A script that does not compile is reported before anything is sent, with its file and line.
    write(&dir, "nango.yaml", &config);
    write(
        &dir,
        script,
        "export default async function fetchData(nango) {\n  let = ;\n}\n",
    );
    let broken = run(&["deploy", dir_arg]);
    let message = failure(&broken);
    assert!(
        message.contains("does not deploy; nothing was sent")
            && message.contains("demo/syncs/tickets.ts:2"),
        "{message}"
    );
    assert_eq!(deployed_source(&mut client, script), changed);

    // Back as the fixture had it.
    write(&dir, script, &before);
    assert!(run(&["deploy", dir_arg]).status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn trigger_waits_for_the_run_and_status_and_records_show_it() {
    let mut client = connect();
    let items: Vec<Value> = (1..=3)
        .map(|i| json!({"id": format!("c{i}"), "title": format!("item {i}")}))
        .collect();
    connection_with_steps(&mut client, "cli-run", &json!({"steps": [{"save": items}]}));

    let waited = run(&["trigger", "e2e", "records", "cli-run", "--wait", "--json"]);
    let jobs = json_out(&waited);
    assert_eq!(jobs[0]["status"], "SUCCESS", "{jobs}");
    assert_eq!(jobs[0]["connection"], "cli-run");
    assert_eq!(jobs[0]["records"], "Item +3 ~0 -0");

    let status = json_out(&run(&[
        "status",
        "e2e",
        "--connection",
        "cli-run",
        "--json",
    ]));
    let records_sync = status
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["sync"] == "records")
        .expect("a status row for e2e/records");
    // The fixture's syncs do not start on their own: the sync is paused, its last run succeeded.
    assert_eq!(records_sync["status"], "PAUSED");
    assert_eq!(records_sync["last_run"], "SUCCESS");
    assert_eq!(records_sync["job"], jobs[0]["job"]);
    assert_eq!(records_sync["records"], json!({"Item": 3}));

    let table = run(&["status", "e2e", "--connection", "cli-run"]);
    assert!(table.status.success(), "{}", stderr(&table));
    assert!(
        stdout(&table).lines().any(|line| line.contains("records")
            && line.contains("cli-run")
            && line.contains("PAUSED")
            && line.contains("SUCCESS")),
        "{}",
        stdout(&table)
    );

    // Two pages of two, as Nango's records API answers them.
    let page = |after: &[&str]| {
        let mut args = vec![
            "records",
            "Item",
            "--connection",
            "cli-run",
            "--limit",
            "2",
            "--json",
        ];
        args.extend_from_slice(after);
        json_out(&run(&args))
    };
    let first = page(&[]);
    let ids: Vec<&str> = first["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c1", "c2"]);
    assert_eq!(first["records"][0]["title"], "item 1");
    assert_eq!(
        first["records"][0]["_nango_metadata"]["last_action"],
        "ADDED"
    );
    let cursor = first["next_cursor"].as_str().expect("a next cursor");
    let second = page(&["--cursor", cursor]);
    assert_eq!(second["records"].as_array().unwrap().len(), 1);
    assert_eq!(second["records"][0]["id"], "c3");
    assert_eq!(second["next_cursor"], Value::Null);

    // A run that fails makes --wait fail, with the script's error in the table; the error's text came from
    // a third party, so an escape sequence in it is shown, not sent to the terminal.
    set_metadata(
        &mut client,
        "e2e",
        "cli-run",
        &json!({"steps": [{"fail": "the API said \u{1b}[2Jno"}]}),
    );
    let failed = run(&["trigger", "e2e", "records", "cli-run", "--wait"]);
    assert_eq!(failed.status.code(), Some(1));
    let table = stdout(&failed);
    assert!(
        table.contains("ERROR") && table.contains("the API said \\u{1b}[2J"),
        "{table}"
    );
    assert!(!table.contains('\u{1b}'), "{table}");
}

#[test]
fn logs_follow_prints_a_runs_lines_then_its_end() {
    let mut client = connect();
    connection_with_steps(
        &mut client,
        "cli-logs",
        &json!({"steps": [{"save": [{"id": "l1", "title": "one"}]}]}),
    );
    // An earlier run: of its lines, only the latest one is printed first (--limit 1), and none again.
    let (earlier, status) = run_sync(&mut client, "e2e", "records", "cli-logs");
    assert_eq!(status, "SUCCESS");
    set_metadata(
        &mut client,
        "e2e",
        "cli-logs",
        &json!({"steps": [{"save": [{"id": "l2", "title": "two"}]}]}),
    );
    let mut follower = pg_nango()
        .args([
            "logs",
            "--follow",
            "--connection",
            "cli-logs",
            "--json",
            "--limit",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start pg-nango logs --follow");
    // Started after the follower listens: give it a moment to connect.
    std::thread::sleep(Duration::from_millis(700));
    let (job, status) = run_sync(&mut client, "e2e", "records", "cli-logs");
    assert_eq!(status, "SUCCESS");

    let (lines_tx, lines) = std::sync::mpsc::channel();
    let output = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let end = loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no end of job {job} was printed; saw {seen:#?}"));
        let value: Value = serde_json::from_str(&line).expect("a JSON line");
        if value.get("notification").is_some() {
            break value["notification"].clone();
        }
        seen.push(value);
    };
    let _ = follower.kill();
    let _ = follower.wait();

    assert_eq!(end["jobId"], json!(job));
    assert_eq!(end["success"], json!(true));
    assert_eq!(end["connectionId"], "cli-logs");
    assert_eq!(end["responseResults"]["added"], json!(1));
    let of_earlier = seen.iter().filter(|l| l["job"] == json!(earlier)).count();
    assert_eq!(of_earlier, 1, "{seen:#?}");
    let ids: std::collections::HashSet<i64> =
        seen.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), seen.len(), "a line printed twice: {seen:#?}");
    // The run's own lines came before its end, each naming the run.
    let of_job: Vec<&Value> = seen.iter().filter(|l| l["job"] == json!(job)).collect();
    assert!(
        of_job.iter().any(|l| l["message"]
            .as_str()
            .unwrap_or_default()
            .contains("lastSyncDate")),
        "{seen:#?}"
    );
    assert!(
        of_job.iter().all(|l| l["run"] == "e2e/records cli-logs"),
        "{seen:#?}"
    );
}

#[test]
fn dryrun_validate_reports_records_that_do_not_match_their_model() {
    let mut client = connect();
    connection_with_steps(
        &mut client,
        "cli-dry",
        &json!({"steps": [{"save": [{"id": "d1", "title": "fine"}, {"id": "d2", "title": 5}, {"id": "d3"}]}]}),
    );
    let checked = run(&[
        "dryrun",
        "e2e",
        "records",
        "cli-dry",
        "--validate",
        "--json",
    ]);
    assert_eq!(checked.status.code(), Some(1), "{}", stderr(&checked));
    let body: Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(body["records"]["Item"].as_array().unwrap().len(), 3);
    assert_eq!(
        body["problems"],
        json!([
            {"model": "Item", "id": "d2", "problem": "title: expected a string, got 5"},
            {"model": "Item", "id": "d3", "problem": "title: missing"},
        ])
    );
    // Nothing was stored.
    assert!(record_ids(&mut client, "Item", "cli-dry").is_empty());

    let table = run(&["dryrun", "e2e", "records", "cli-dry", "--validate"]);
    assert_eq!(table.status.code(), Some(1));
    let text = stdout(&table);
    assert!(text.starts_with("Item: 3 records\n"), "{text}");
    assert!(
        text.contains("invalid Item \"d3\": title: missing\n") && text.ends_with("2 problems\n"),
        "{text}"
    );

    // Without --validate the records are printed as the script saved them.
    let plain = json_out(&run(&["dryrun", "e2e", "records", "cli-dry", "--json"]));
    assert_eq!(plain["Item"][1], json!({"id": "d2", "title": 5}));
}

#[test]
fn an_action_takes_its_input_from_a_file() {
    let mut client = connect();
    create_connection(&mut client, "demo", "cli-action");
    let input =
        std::env::temp_dir().join(format!("pg_nango_cli_input_{}.json", std::process::id()));
    std::fs::write(
        &input,
        r#"{"subject": "From the client", "requester_name": "Ada", "requester_email": "ada@example.com"}"#,
    )
    .unwrap();
    let output = json_out(&run(&[
        "action",
        "demo",
        "create-ticket",
        "cli-action",
        "--input",
        input.to_str().unwrap(),
    ]));
    assert_eq!(output["subject"], "From the client");
    std::fs::remove_file(&input).unwrap();
}

#[test]
fn errors_say_what_failed_with_the_servers_sqlstate_and_hint() {
    let unknown = run(&["dryrun", "e2e", "no-such-sync", "x"]);
    let message = failure(&unknown);
    assert!(
        message.starts_with("error: the dry run of sync no-such-sync did not finish\n")
            && message.contains("sync \"no-such-sync\" of integration \"e2e\" is not deployed")
            && message.contains("hint: See SELECT * FROM nango.sync_configs")
            && message.contains("(SQLSTATE 42704)"),
        "{message}"
    );

    let as_json = run(&["trigger", "e2e", "records", "nobody", "--json"]);
    assert_eq!(as_json.status.code(), Some(1));
    let body: Value = serde_json::from_slice(&as_json.stderr).unwrap();
    assert_eq!(body["sqlstate"], "42704", "{body}");

    // Nobody listens on this port: the error says where it tried and how to point it elsewhere.
    let nowhere = pg_nango()
        .env("PGPORT", "1")
        .args(["status"])
        .output()
        .unwrap();
    let message = failure(&nowhere);
    assert!(
        message.contains("cannot connect to database \"postgres\" on 127.0.0.1 port 1")
            && message.contains("DATABASE_URL"),
        "{message}"
    );

    let bad_level = run(&["logs", "--level", "loud"]);
    assert_eq!(bad_level.status.code(), Some(1));
    assert!(stderr(&bad_level).contains("unknown log level \"loud\""));
}
