//! `pg-nango`: the client of a database running pg_nango, for the laptop a Nango user works from. It
//! deploys a `nango-integrations` folder, runs syncs and actions once, and shows status, logs and records,
//! over an ordinary Postgres connection found as psql finds it (`--dsn`, `DATABASE_URL`, `PGHOST`, …).
//!
//! Every command is a thin layer over the extension's SQL functions, so what it does a psql user can do
//! too: `deploy` → `nango.deploy(config, files)`, `dryrun` → `nango.dryrun`, `action` →
//! `nango.trigger_action`, `trigger` → `nango.trigger_sync`, `status` → `nango.sync_status`, `logs` →
//! `nango.logs` and `LISTEN`, `records` → `nango.records`. `--json` prints what a script can read.

mod connect;
mod deploy;
mod output;
mod project;
mod runs;
mod tls;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Output;

#[derive(Parser)]
#[command(
    name = "pg-nango",
    version,
    about = "Deploy, run and watch pg_nango syncs"
)]
struct Cli {
    /// Connection string (`postgresql://user@host/db` or `host=… dbname=…`); by default DATABASE_URL, then
    /// libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    dsn: Option<String>,
    /// Print JSON instead of tables and text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Deploy a nango-integrations folder (nango.yaml or zero-YAML index.ts): shows what changes, then
    /// calls nango.deploy.
    Deploy {
        /// The project folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Allow the deploy to remove syncs and actions the folder no longer has.
        #[arg(long)]
        allow_destructive: bool,
        /// Show what would change and deploy nothing.
        #[arg(long)]
        plan: bool,
    },
    /// Run a deployed sync once for a connection and print what it would save; stores nothing.
    Dryrun {
        integration: String,
        sync: String,
        connection: String,
        /// The run's lastSyncDate (an incremental run), e.g. 2024-01-31T00:00:00Z.
        #[arg(long)]
        last_sync_date: Option<String>,
        /// Check every record against its model, as `nango dryrun --validation` does.
        #[arg(long)]
        validate: bool,
    },
    /// Run a deployed action once for a connection and print its output.
    Action {
        integration: String,
        action: String,
        connection: String,
        /// A file with the action's input as JSON (`-` reads standard input).
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// Queue a run of a sync now, for one connection or all; `--wait` follows it to its end.
    Trigger {
        integration: String,
        sync: String,
        connection: Option<String>,
        /// Start over: forget the checkpoint and lastSyncDate, as a full resync.
        #[arg(long)]
        full: bool,
        /// Wait for the runs to end, showing the records saved so far.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Where each sync and connection stands (nango.sync_status).
    Status {
        /// Only this integration.
        integration: Option<String>,
        /// Only this connection.
        #[arg(long)]
        connection: Option<String>,
    },
    /// The runs' log lines; `--follow` prints new ones and each run's end as they come.
    Logs {
        /// Only this job's lines.
        #[arg(long)]
        job: Option<i64>,
        /// Only this connection's runs.
        #[arg(long)]
        connection: Option<String>,
        /// Only lines at this level or above (debug, info, warn, error).
        #[arg(long)]
        level: Option<String>,
        /// How many of the latest lines to print first.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Keep printing new lines (LISTEN on the notification channel) until interrupted.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// A model's records in cursor order (nango.records).
    Records(watch::RecordQuery),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output::new(cli.json);
    match run(cli, &out) {
        Ok(code) => code,
        Err(error) => {
            out.error(&error);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, out: &Output) -> anyhow::Result<ExitCode> {
    // A project is read and planned before connecting: its mistakes are reported without a round trip.
    if let Command::Deploy {
        dir,
        allow_destructive,
        plan,
    } = &cli.command
    {
        let project = project::read(dir, out)?;
        let mut client = connect::connect(cli.dsn.as_deref())?;
        return deploy::deploy(&mut client, &project, *allow_destructive, *plan, out);
    }
    let mut client = connect::connect(cli.dsn.as_deref())?;
    match cli.command {
        Command::Deploy { .. } => unreachable!("handled above"),
        Command::Dryrun {
            integration,
            sync,
            connection,
            last_sync_date,
            validate,
        } => runs::dryrun(
            &mut client,
            runs::DryRun {
                integration: &integration,
                sync: &sync,
                connection: &connection,
                last_sync_date: last_sync_date.as_deref(),
                validate,
            },
            out,
        ),
        Command::Action {
            integration,
            action,
            connection,
            input,
        } => runs::action(
            &mut client,
            &integration,
            &action,
            &connection,
            input.as_deref(),
            out,
        ),
        Command::Trigger {
            integration,
            sync,
            connection,
            full,
            wait,
            timeout,
        } => runs::trigger(
            &mut client,
            runs::Trigger {
                integration: &integration,
                sync: &sync,
                connection: connection.as_deref(),
                full,
                wait: wait.then(|| std::time::Duration::from_secs(timeout)),
            },
            out,
        ),
        Command::Status {
            integration,
            connection,
        } => watch::status(
            &mut client,
            integration.as_deref(),
            connection.as_deref(),
            out,
        ),
        Command::Logs {
            job,
            connection,
            level,
            limit,
            follow,
        } => watch::logs(
            &mut client,
            &watch::LogFilter {
                job,
                connection,
                level,
            },
            limit,
            follow,
            out,
        ),
        Command::Records(query) => watch::records(&mut client, &query, out),
    }
}
