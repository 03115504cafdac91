//! Running scripts from the client: `dryrun` (a sync once, nothing stored, records optionally checked
//! against their models), `action`, and `trigger` (queue sync runs, optionally following them to the end).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use pg_nango_core::config::models::Model;
use pg_nango_core::records::conformance;
use postgres::Client;
use serde_json::{Map, Value, json};

use crate::output::{Output, Rows, status_style};

/// The most columns a dry run's table shows of a record (`--json` shows all).
const MAX_RECORD_COLUMNS: usize = 6;

/// How often `trigger --wait` reads where its runs stand.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What `pg-nango dryrun` runs.
pub struct DryRun<'a> {
    pub integration: &'a str,
    pub sync: &'a str,
    pub connection: &'a str,
    pub last_sync_date: Option<&'a str>,
    pub validate: bool,
}

/// Runs a sync once through `nango.dryrun` and prints its records by model.
pub fn dryrun(client: &mut Client, run: DryRun, out: &Output) -> anyhow::Result<ExitCode> {
    let spinner = out.spinner(&format!(
        "dry run of {}/{} for {}",
        run.integration, run.sync, run.connection
    ));
    let result: Value = client
        .query_one(
            "SELECT nango.dryrun($1, $2, $3, $4::text::timestamptz)",
            &[
                &run.integration,
                &run.sync,
                &run.connection,
                &run.last_sync_date,
            ],
        )
        .with_context(|| format!("the dry run of sync {} did not finish", run.sync))?
        .try_get(0)
        .context("the dry run's records cannot be read")?;
    spinner.finish_and_clear();
    let by_model = result.as_object().cloned().unwrap_or_default();
    let problems = if run.validate {
        validate(client, &by_model)?
    } else {
        Vec::new()
    };
    if out.json {
        if run.validate {
            out.print_json(&json!({"records": result, "problems": problems}));
        } else {
            out.print_json(&result);
        }
    } else {
        for (model, records) in &by_model {
            let records = records.as_array().map(Vec::as_slice).unwrap_or_default();
            out.say(format!("{model}: {} records", records.len()));
            out.rows(&record_table(records), |_, _| None);
        }
        if run.validate {
            for problem in &problems {
                out.say(format!(
                    "invalid {} {}: {}",
                    problem["model"].as_str().unwrap_or_default(),
                    problem["id"],
                    problem["problem"].as_str().unwrap_or_default()
                ));
            }
            out.say(if problems.is_empty() {
                "every record matches its model".to_string()
            } else {
                format!("{} problems", problems.len())
            });
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Each record's problems against its deployed model, as `{model, id, problem}`.
fn validate(client: &mut Client, by_model: &Map<String, Value>) -> anyhow::Result<Vec<Value>> {
    let mut models = BTreeMap::new();
    for row in client.query("SELECT name, definition FROM nango.models", &[])? {
        let name: String = row.try_get(0)?;
        let definition: Value = row.try_get(1)?;
        let model: Model = serde_json::from_value(definition)
            .with_context(|| format!("the deployed model {name} cannot be read by this client"))?;
        models.insert(name, model);
    }
    let mut problems = Vec::new();
    for (name, records) in by_model {
        let model = models.get(name).ok_or_else(|| {
            anyhow!("the script saved records of {name}, which is no deployed model")
        })?;
        for record in records.as_array().into_iter().flatten() {
            for problem in conformance::problems(record, model, &models) {
                problems.push(json!({"model": name, "id": record["id"], "problem": problem}));
            }
        }
    }
    Ok(problems)
}

/// Records as a table: `id` first, then the other fields in name order, up to [`MAX_RECORD_COLUMNS`].
fn record_table(records: &[Value]) -> Rows {
    let mut columns = vec!["id".to_string()];
    for record in records {
        for key in record.as_object().into_iter().flat_map(|o| o.keys()) {
            if columns.len() < MAX_RECORD_COLUMNS && !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    let rows = records
        .iter()
        .map(|record| {
            columns
                .iter()
                .map(|c| record.get(c).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect();
    Rows { columns, rows }
}

/// Runs an action once through `nango.trigger_action` and prints its output as JSON.
pub fn action(
    client: &mut Client,
    integration: &str,
    action: &str,
    connection: &str,
    input: Option<&Path>,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let input = match input {
        None => None,
        Some(path) if path == Path::new("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the input from standard input")?;
            Some(text)
        }
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the input file {}", path.display()))?,
        ),
    };
    if let Some(text) = &input {
        serde_json::from_str::<Value>(text).context("the input is not JSON")?;
    }
    let spinner = out.spinner(&format!("action {integration}/{action} for {connection}"));
    // As text, so that the input reaches the script with its keys in the order written.
    let output: Value = client
        .query_one(
            "SELECT nango.trigger_action($1, $2, $3, $4::text)",
            &[&integration, &connection, &action, &input],
        )
        .with_context(|| format!("the action {action} failed"))?
        .try_get(0)
        .context("the action's output cannot be read")?;
    spinner.finish_and_clear();
    out.print_json(&output);
    Ok(ExitCode::SUCCESS)
}

/// What `pg-nango trigger` queues.
pub struct Trigger<'a> {
    pub integration: &'a str,
    pub sync: &'a str,
    pub connection: Option<&'a str>,
    pub full: bool,
    /// With `--wait`: how long to wait for the runs to end.
    pub wait: Option<Duration>,
}

/// Queues runs through `nango.trigger_sync`; with `wait`, follows them and fails if one fails.
pub fn trigger(client: &mut Client, trigger: Trigger, out: &Output) -> anyhow::Result<ExitCode> {
    let jobs: Vec<i64> = client
        .query(
            "SELECT job FROM nango.trigger_sync($1, $2, $3, $4) AS job",
            &[
                &trigger.integration,
                &trigger.sync,
                &trigger.connection,
                &trigger.full,
            ],
        )
        .with_context(|| format!("cannot trigger sync {}", trigger.sync))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let Some(timeout) = trigger.wait else {
        if out.json {
            out.print_json(&json!({ "jobs": jobs }));
        } else {
            let list: Vec<String> = jobs.iter().map(i64::to_string).collect();
            out.say(format!("queued job {}", list.join(", ")));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let spinner = out.spinner("waiting for the runs");
    let deadline = Instant::now() + timeout;
    // Records by model as `Model +added ~updated -deleted`.
    let sql = "SELECT j.id AS job, j.connection_id AS connection, j.status,
                      (SELECT pg_catalog.string_agg(m.key || ' +' || (m.value ->> 'added') || ' ~'
                              || (m.value ->> 'updated') || ' -' || (m.value ->> 'deleted'), ', ' ORDER BY m.key)
                       FROM pg_catalog.jsonb_each(j.result) m) AS records,
                      j.error ->> 'description' AS error, j.progress
               FROM nango.jobs j WHERE j.id = ANY ($1) ORDER BY j.id";
    let finished = loop {
        let rows = Rows::query(client, sql, &[&jobs])?;
        let running: Vec<&Vec<Value>> = rows
            .rows
            .iter()
            .filter(|row| matches!(row[2].as_str(), Some("QUEUED" | "RUNNING")))
            .collect();
        if running.is_empty() {
            break rows;
        }
        spinner.set_message(progress_line(&running));
        if Instant::now() > deadline {
            spinner.finish_and_clear();
            bail!(
                "{} of {} runs had not ended after {} s; they go on (see pg-nango status)",
                running.len(),
                jobs.len(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    spinner.finish_and_clear();
    let failed = finished
        .rows
        .iter()
        .any(|row| row[2].as_str() != Some("SUCCESS"));
    let shown = Rows {
        columns: finished.columns[..5].to_vec(),
        rows: finished.rows.iter().map(|row| row[..5].to_vec()).collect(),
    };
    out.rows(&shown, |column, value| {
        (column == "status").then(|| status_style(value)).flatten()
    });
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Where the running runs stand: records saved so far by model and requests made, summed.
fn progress_line(running: &[&Vec<Value>]) -> String {
    let mut records: BTreeMap<String, i64> = BTreeMap::new();
    let mut requests = 0;
    for row in running {
        let progress = &row[5];
        for (model, count) in progress["records"].as_object().into_iter().flatten() {
            *records.entry(model.clone()).or_default() += count.as_i64().unwrap_or(0);
        }
        requests += progress["requests"].as_i64().unwrap_or(0);
    }
    let saved: Vec<String> = records
        .iter()
        .map(|(model, count)| format!("{model} {count}"))
        .collect();
    format!(
        "{} running · records so far: {} · {requests} requests",
        running.len(),
        if saved.is_empty() {
            "none".to_string()
        } else {
            saved.join(", ")
        }
    )
}
