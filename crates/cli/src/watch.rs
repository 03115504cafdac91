//! Watching from the client: `status` (nango.sync_status), `logs` (nango.logs, and with `--follow` the
//! notification channel for each run's end) and `records` (nango.records, a page at a time by cursor).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use owo_colors::{OwoColorize, Stream};
use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;
use serde_json::{Value, json};

use crate::output::{Output, Rows, cell, printable, status_style};

/// How long `logs --follow` waits for a notification before it reads new log lines anyway.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// The most notifications read at once before new log lines are read.
const MAX_NOTIFICATIONS_AT_ONCE: usize = 100;

/// Log levels from the least to the most severe, as `nango.logs.level` holds them.
const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];

/// Prints `nango.sync_status`, optionally for one integration or connection.
pub fn status(
    client: &mut Client,
    integration: Option<&str>,
    connection: Option<&str>,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let rows = Rows::query(
        client,
        "SELECT integration, sync, connection_id AS connection, status, frequency,
                pg_catalog.date_trunc('second', last_sync_date) AS last_sync_date,
                pg_catalog.date_trunc('second', next_run_at) AS next_run_at,
                last_job_id AS job, last_job_status AS last_run, record_counts AS records, records_saved AS last_run_saved,
                last_error AS error
         FROM nango.sync_status
         WHERE ($1::text IS NULL OR integration = $1) AND ($2::text IS NULL OR connection_id = $2)
         ORDER BY integration, sync, connection_id",
        &[&integration, &connection],
    )
    .context("cannot read nango.sync_status")?;
    out.rows(&rows, |column, value| {
        matches!(column, "status" | "last_run")
            .then(|| status_style(value))
            .flatten()
    });
    Ok(ExitCode::SUCCESS)
}

/// Which log lines `pg-nango logs` prints.
pub struct LogFilter {
    pub job: Option<i64>,
    pub connection: Option<String>,
    pub level: Option<String>,
}

/// Prints the latest `limit` log lines; with `follow`, then every new line and each run's end.
pub fn logs(
    client: &mut Client,
    filter: &LogFilter,
    limit: i64,
    follow: bool,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let least_level = match &filter.level {
        None => 0,
        Some(level) => match LEVELS.iter().position(|l| l == level) {
            Some(rank) => rank as i32,
            None => bail!(
                "unknown log level {level:?}: use one of {}",
                LEVELS.join(", ")
            ),
        },
    };
    if follow {
        // Listening before the first read: a run that ends in between is still heard.
        let channel: String = client
            .query_one(
                "SELECT pg_catalog.quote_ident(pg_catalog.current_setting('nango.notify_channel'))",
                &[],
            )?
            .get(0);
        client.batch_execute(&format!("LISTEN {channel}"))?;
    }
    let mut reader = LogReader {
        filter,
        least_level,
        printed: HashMap::new(),
    };
    let mut since = reader.print(client, None, limit, out)?;
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    // Until interrupted: the lines a run wrote, then its end.
    loop {
        let ended = wait_for_run_ends(client)?;
        since = reader.print(client, Some(since), i64::MAX, out)?;
        for payload in ended {
            print_run_end(&payload, filter, out);
        }
    }
}

/// The bodies of the notifications that arrive within [`FOLLOW_INTERVAL`] (none if none does).
fn wait_for_run_ends(client: &mut Client) -> anyhow::Result<Vec<String>> {
    let mut ended = Vec::new();
    let mut notifications = client.notifications();
    let mut waiting = notifications.timeout_iter(FOLLOW_INTERVAL);
    while ended.len() < MAX_NOTIFICATIONS_AT_ONCE {
        match waiting.next()? {
            Some(notification) => ended.push(notification.payload().to_string()),
            None => break,
        }
    }
    Ok(ended)
}

/// Reads log lines as they become visible. A line's id is taken when it is written, and a run writes some
/// lines inside the transaction of its batch, so a line with a lower id can appear after one with a higher
/// id: each read looks back [`LATE_LINES_SECONDS`] before the previous read, and skips the lines printed already.
struct LogReader<'a> {
    filter: &'a LogFilter,
    least_level: i32,
    /// The lines printed within the look-back, by id, with their time (seconds since the epoch).
    printed: HashMap<i64, f64>,
}

/// How long after it was written a log line may still become visible (the longest batch transaction).
const LATE_LINES_SECONDS: f64 = 60.0;

impl LogReader<'_> {
    /// Prints the lines written since `since` (the server's time of the previous read, seconds since the
    /// epoch) that were not printed yet, or with `since` `None` the latest `limit` lines. Returns the
    /// server's time at the start of this read.
    fn print(
        &mut self,
        client: &mut Client,
        since: Option<f64>,
        limit: i64,
        out: &Output,
    ) -> anyhow::Result<f64> {
        let now: f64 = client
            .query_one(
                "SELECT EXTRACT(epoch FROM pg_catalog.clock_timestamp())::float8",
                &[],
            )?
            .get(0);
        let sql = format!(
            "SELECT * FROM (
                 SELECT l.id, l.time, l.level,
                        coalesce(j.integration || '/' || j.sync_name || ' ' || j.connection_id, l.run) AS run,
                        l.job, l.message, l.payload,
                        EXTRACT(epoch FROM l.time)::float8 AS written
                 FROM nango.logs l LEFT JOIN nango.jobs j ON j.id = l.job
                 WHERE ($1::float8 IS NULL OR l.time > pg_catalog.to_timestamp($1::float8 - {LATE_LINES_SECONDS}))
                   AND ($2::bigint IS NULL OR l.job = $2)
                   AND ($3::text IS NULL OR j.connection_id = $3)
                   AND pg_catalog.array_position(ARRAY['debug', 'info', 'warn', 'error'], l.level) > $4
                 ORDER BY l.id DESC LIMIT $5
             ) latest ORDER BY id"
        );
        let rows = Rows::query(
            client,
            &sql,
            &[
                &since,
                &self.filter.job,
                &self.filter.connection,
                &self.least_level,
                &limit,
            ],
        )
        .context("cannot read nango.logs")?;
        if since.is_none() {
            // The lines already visible but left out by `limit` are not new: a follow must not print them.
            let visible = client.query(
                &format!(
                    "SELECT id, EXTRACT(epoch FROM time)::float8 FROM nango.logs
                     WHERE time > pg_catalog.to_timestamp($1::float8 - {LATE_LINES_SECONDS})"
                ),
                &[&now],
            )?;
            for row in visible {
                self.printed.insert(row.try_get(0)?, row.try_get(1)?);
            }
        }
        for row in &rows.rows {
            let id = row[0].as_i64().unwrap_or_default();
            let written = row[7].as_f64().unwrap_or_default();
            let new = self.printed.insert(id, written).is_none();
            if new || since.is_none() {
                print_log_line(&rows.columns[..7], &row[..7], out);
            }
        }
        // Lines older than the next read's look-back are not read again (kept twice as long, for margin).
        let horizon = now - 2.0 * LATE_LINES_SECONDS;
        self.printed.retain(|_, written| *written > horizon);
        Ok(now)
    }
}

/// One log line: a JSON object per line with `--json` (a follower reads them as they come), else text
/// coloured by level.
fn print_log_line(columns: &[String], row: &[Value], out: &Output) {
    if out.json {
        let object = columns.iter().cloned().zip(row.iter().cloned()).collect();
        println!("{}", Value::Object(object));
        return;
    }
    let level = row[2].as_str().unwrap_or_default();
    let mut line = format!(
        "{} {:5} {} {}",
        cell(&row[1]),
        printable(level),
        cell(&row[3]),
        cell(&row[5])
    );
    if !row[6].is_null() {
        line.push(' ');
        line.push_str(&printable(&row[6].to_string()));
    }
    match status_style(&row[2]) {
        Some(style) => println!(
            "{}",
            line.if_supports_color(Stream::Stdout, |t| t.style(style))
        ),
        None => println!("{line}"),
    }
}

/// Prints a run's end from its notification body (Nango's webhook shape), if the filter wants it.
fn print_run_end(payload: &str, filter: &LogFilter, out: &Output) {
    let Ok(body) = serde_json::from_str::<Value>(payload) else {
        return;
    };
    let wanted = filter
        .job
        .is_none_or(|job| body["jobId"].as_i64() == Some(job))
        && filter
            .connection
            .as_deref()
            .is_none_or(|c| body["connectionId"].as_str() == Some(c));
    if !wanted {
        return;
    }
    if out.json {
        println!("{}", json!({"notification": body}));
        return;
    }
    // A sync's notification names it `syncName`; an on-event script's, `name`.
    let name = body["syncName"].as_str().or(body["name"].as_str());
    let run = printable(&format!(
        "{}/{} {}",
        body["providerConfigKey"].as_str().unwrap_or_default(),
        name.unwrap_or_default(),
        body["connectionId"].as_str().unwrap_or_default()
    ))
    .into_owned();
    let job = body["jobId"].as_i64().unwrap_or_default();
    if body["success"] == Value::Bool(true) {
        let counts = &body["responseResults"];
        let line = format!(
            "ended   {run} (job {job}): {} +{} ~{} -{}",
            printable(body["model"].as_str().unwrap_or_default()),
            counts["added"],
            counts["updated"],
            counts["deleted"]
        );
        println!(
            "{}",
            line.if_supports_color(Stream::Stdout, |t| t.green().to_string())
        );
    } else {
        let line = format!(
            "failed  {run} (job {job}): {}",
            printable(body["error"]["description"].as_str().unwrap_or_default())
        );
        println!(
            "{}",
            line.if_supports_color(Stream::Stdout, |t| t.red().to_string())
        );
    }
}

/// What `pg-nango records` reads.
#[derive(clap::Args)]
pub struct RecordQuery {
    pub model: String,
    /// Only records changed since this time, as Postgres reads a timestamptz ('2024-01-31 10:00+00').
    #[arg(long)]
    pub delta: Option<String>,
    /// Only this connection's records.
    #[arg(long)]
    pub connection: Option<String>,
    /// Only this integration's records.
    #[arg(long)]
    pub integration: Option<String>,
    /// Only records whose last action is one of these: added, updated, deleted (comma-separated).
    #[arg(long)]
    pub filter: Option<String>,
    /// How many records.
    #[arg(long, default_value_t = 100)]
    pub limit: i32,
    /// Continue after this cursor (the last one printed).
    #[arg(long)]
    pub cursor: Option<String>,
}

/// Prints a page of a model's records and the cursor of the next page.
pub fn records(client: &mut Client, query: &RecordQuery, out: &Output) -> anyhow::Result<ExitCode> {
    let rows = Rows::query(
        client,
        "SELECT r.id, r._nango_metadata ->> 'last_action' AS last_action,
                r._nango_metadata ->> 'last_modified_at' AS last_modified_at, r.data, r.cursor,
                r._nango_metadata
         FROM nango.records($1, delta => $2::text::timestamptz, connection_id => $3,
                            provider_config_key => $4, filter => $5, \"limit\" => $6, cursor => $7) r",
        &[
            &query.model,
            &query.delta,
            &query.connection,
            &query.integration,
            &query.filter,
            &query.limit,
            &query.cursor,
        ],
    )
    .with_context(|| format!("cannot read the records of {}", query.model))?;
    let full_page = rows.rows.len() as i64 >= i64::from(query.limit);
    let next_cursor = rows
        .rows
        .last()
        .filter(|_| full_page)
        .map(|row| row[4].clone())
        .unwrap_or(Value::Null);
    if out.json {
        // As Nango's records API answers: each record with its `_nango_metadata`, and the next cursor.
        let records: Vec<Value> = rows
            .rows
            .iter()
            .map(|row| {
                let mut record = row[3].clone();
                if let Some(object) = record.as_object_mut() {
                    object.insert("_nango_metadata".into(), row[5].clone());
                }
                record
            })
            .collect();
        out.print_json(&json!({"records": records, "next_cursor": next_cursor}));
        return Ok(ExitCode::SUCCESS);
    }
    let shown = Rows {
        columns: rows.columns[..5].to_vec(),
        rows: rows.rows.iter().map(|row| row[..5].to_vec()).collect(),
    };
    out.rows(&shown, |_, _| None);
    if let Value::String(cursor) = next_cursor {
        out.say(format!("next page: --cursor {cursor}"));
    }
    Ok(ExitCode::SUCCESS)
}
