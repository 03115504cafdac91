//! How results reach the terminal: tables and coloured text for people, JSON for scripts (`--json`), and
//! errors with the server's DETAIL, HINT and SQLSTATE.

use std::borrow::Cow;
use std::io::IsTerminal;

use anyhow::anyhow;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use owo_colors::{OwoColorize, Stream, Style};
use postgres::GenericClient;
use postgres::error::DbError;
use postgres::types::ToSql;
use serde_json::{Map, Value};

/// The longest text a table cell shows; longer values are cut with an ellipsis (`--json` shows them whole).
const MAX_CELL_CHARS: usize = 80;

/// Rows of a query: its column names in order, and each row's values as JSON.
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// Runs `sql` and reads every value as JSON (as `row_to_json` writes it), in the query's column order.
    pub fn query(
        client: &mut impl GenericClient,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> anyhow::Result<Rows> {
        let columns: Vec<String> = client
            .prepare(sql)?
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let wrapped = format!("SELECT pg_catalog.row_to_json(q)::text FROM ({sql}) q");
        let mut rows = Vec::new();
        for row in client.query(&wrapped, params)? {
            let object: Map<String, Value> =
                serde_json::from_str(row.get::<_, &str>(0)).map_err(|e| {
                    anyhow!("a row the server sent cannot be read ({e}); read it with psql")
                })?;
            rows.push(
                columns
                    .iter()
                    .map(|c| object.get(c).cloned().unwrap_or(Value::Null))
                    .collect(),
            );
        }
        Ok(Rows { columns, rows })
    }

    /// The rows as JSON objects.
    pub fn objects(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|row| {
                Value::Object(
                    self.columns
                        .iter()
                        .cloned()
                        .zip(row.iter().cloned())
                        .collect(),
                )
            })
            .collect()
    }
}

/// Where output goes, and in which form.
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// Prints `rows` as a table, or as a JSON array of objects; `style` colours a cell by its column and value.
    pub fn rows(&self, rows: &Rows, style: impl Fn(&str, &Value) -> Option<Style>) {
        if self.json {
            self.print_json(&Value::Array(rows.objects()));
            return;
        }
        if rows.rows.is_empty() {
            println!("(none)");
            return;
        }
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_header(&rows.columns);
        for row in &rows.rows {
            table.add_row(rows.columns.iter().zip(row).map(|(column, value)| {
                let text = cell(value);
                match style(column, value) {
                    Some(style) => text
                        .if_supports_color(Stream::Stdout, |t| t.style(style))
                        .to_string(),
                    None => text,
                }
            }));
        }
        println!("{table}");
    }

    /// Prints a JSON value for `--json`.
    pub fn print_json(&self, value: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }

    /// A line for people; left out with `--json`, whose standard output is JSON only.
    pub fn say(&self, line: impl std::fmt::Display) {
        if !self.json {
            println!("{}", printable(&line.to_string()));
        }
    }

    /// A spinner on standard error while `what` runs; hidden with `--json` or when stderr is no terminal.
    pub fn spinner(&self, what: &str) -> ProgressBar {
        if self.json || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner().with_message(what.to_string());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        bar
    }

    /// Prints an error on standard error: the server's message with its DETAIL, HINT and SQLSTATE, and
    /// what the client was doing.
    pub fn error(&self, error: &anyhow::Error) {
        let database = error
            .chain()
            .find_map(|e| e.downcast_ref::<postgres::Error>())
            .and_then(|e| e.as_db_error());
        // The server's error is printed from its fields below, once.
        let context: Vec<String> = error
            .chain()
            .filter(|e| {
                e.downcast_ref::<postgres::Error>()
                    .is_none_or(|e| e.as_db_error().is_none())
                    && e.downcast_ref::<DbError>().is_none()
            })
            .map(|e| printable(&e.to_string()).into_owned())
            .collect();
        if self.json {
            let mut body = Map::new();
            body.insert("error".into(), Value::String(context.join(": ")));
            if let Some(db) = database {
                body.insert("message".into(), db.message().into());
                body.insert("sqlstate".into(), db.code().code().into());
                body.insert("detail".into(), db.detail().into());
                body.insert("hint".into(), db.hint().into());
            }
            eprintln!("{}", Value::Object(body));
            return;
        }
        let label = "error:".if_supports_color(Stream::Stderr, |t| t.red().bold().to_string());
        let mut lines = context.into_iter();
        eprintln!("{label} {}", lines.next().unwrap_or_default());
        for line in lines {
            eprintln!("  {line}");
        }
        if let Some(db) = database {
            eprintln!("  {}", printable(db.message()));
            if let Some(detail) = db.detail() {
                eprintln!("  detail: {}", printable(detail));
            }
            if let Some(hint) = db.hint() {
                let hint = format!("hint: {}", printable(hint));
                eprintln!(
                    "  {}",
                    hint.if_supports_color(Stream::Stderr, |t| t.yellow().to_string())
                );
            }
            eprintln!("  (SQLSTATE {})", db.code().code());
        }
    }
}

/// The colour of a run's status or a log line's level.
pub fn status_style(value: &Value) -> Option<Style> {
    match value.as_str()? {
        "SUCCESS" => Some(Style::new().green()),
        "ERROR" | "error" | "CANCELLED" => Some(Style::new().red()),
        "RUNNING" | "QUEUED" | "warn" => Some(Style::new().yellow()),
        "PAUSED" | "debug" => Some(Style::new().dimmed()),
        _ => None,
    }
}

/// `text` with its control characters (C0, DEL, C1: escape sequences a terminal would act on) written as
/// escapes: API responses, log lines and errors are third parties' text.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// A value as a table cell shows it: text as it is, JSON compact, cut at [`MAX_CELL_CHARS`], with control
/// characters escaped.
pub fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(text) => printable(text).into_owned(),
        other => printable(&other.to_string()).into_owned(),
    };
    if text.chars().count() > MAX_CELL_CHARS {
        let cut: String = text.chars().take(MAX_CELL_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}
