//! `pg-nango deploy`: sends the project to `nango.deploy(config, files)` in a transaction, shows what the
//! deploy changes (the summary's `changes`), and commits only when that is what was asked: `--plan` rolls
//! back, and a deploy that would remove syncs or actions rolls back unless `--allow-destructive` is given.

use std::process::ExitCode;

use anyhow::{Context, bail};
use owo_colors::{OwoColorize, Stream};
use pg_nango_core::deploy::changes::Changes;
use postgres::Client;
use postgres::error::SqlState;
use serde_json::{Value, json};

use crate::output::Output;

/// How long a deploy waits for a lock before it gives up.
const LOCK_TIMEOUT: &str = "10s";
use crate::project::Project;

/// Deploys `project`, or only shows what it would change (`plan_only`).
pub fn deploy(
    client: &mut Client,
    project: &Project,
    allow_destructive: bool,
    plan_only: bool,
    out: &Output,
) -> anyhow::Result<ExitCode> {
    let files = serde_json::to_value(&project.files)?;
    let spinner = out.spinner(&format!(
        "deploying {} files ({} from node_modules)",
        project.files.len(),
        project.package_files
    ));
    let mut transaction = client.transaction()?;
    // A deploy replaces the typed views: it waits for their readers. Better to say so than to hang (and
    // make every later reader of those views queue behind it).
    transaction.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))?;
    // Removals are allowed inside the transaction so that the summary lists them; whether they may stay
    // is decided below, before anything commits.
    let summary: Value = transaction
        .query_one(
            "SELECT nango.deploy($1::text, $2::jsonb, allow_destructive => true)",
            &[&project.config, &files],
        )
        .map_err(|e| {
            let waited = e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE);
            anyhow::Error::new(e).context(if waited {
                format!(
                    "the deploy waited more than {LOCK_TIMEOUT} for a lock (a long query on a typed view, or \
                     another deploy); nothing was deployed, try again"
                )
            } else {
                "the server refused the deploy; nothing was deployed".to_string()
            })
        })?
        .try_get(0)
        .context("the server's deploy summary cannot be read")?;
    spinner.finish_and_clear();
    let changes: Changes = serde_json::from_value(summary["changes"].clone()).context(
        "the server's deploy summary has no changes (is the extension older than this client?)",
    )?;
    let destructive = changes.destructive();
    let refused = !destructive.is_empty() && !allow_destructive && !plan_only;
    let commit = !plan_only && !refused;
    if commit {
        transaction.commit().context(
            "the commit of the deploy failed, and whether it took effect is unknown: see \
             SELECT * FROM nango.deployments ORDER BY id DESC LIMIT 1",
        )?;
    } else {
        transaction.rollback()?;
    }
    if out.json {
        out.print_json(&json!({"deployed": commit, "summary": summary}));
    } else {
        print_changes(&changes, out);
        for warning in summary["warnings"].as_array().into_iter().flatten() {
            let line = format!("warning: {}", warning.as_str().unwrap_or_default());
            out.say(line.if_supports_color(Stream::Stdout, |t| t.yellow().to_string()));
        }
    }
    if refused {
        bail!(
            "the deploy would remove {}; nothing was deployed. A deploy is the complete set of syncs and \
             actions: pass --allow-destructive to remove them",
            destructive.join(", ")
        );
    }
    out.say(if plan_only && !destructive.is_empty() && !allow_destructive {
        "nothing deployed (--plan); deploying it removes syncs or actions and needs --allow-destructive"
            .to_string()
    } else if plan_only {
        "nothing deployed (--plan)".to_string()
    } else {
        format!(
            "deployed {}, {} from {}",
            counted(project.plan.syncs.len(), "sync"),
            counted(project.plan.actions.len(), "action"),
            counted(project.files.len(), "file")
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// `1 sync`, `2 syncs`.
fn counted(count: usize, noun: &str) -> String {
    format!("{count} {noun}{}", if count == 1 { "" } else { "s" })
}

/// One line per change: `+` added, `~` changed, `-` removed.
fn print_changes(changes: &Changes, out: &Output) {
    if changes.is_empty() {
        out.say("no changes");
        return;
    }
    let lines = [
        ("+", &changes.added, "added"),
        ("~", &changes.changed, "changed"),
        ("-", &changes.removed, "removed"),
    ];
    for (mark, names, what) in lines {
        for name in names {
            let line = format!("{mark} {name}");
            out.say(line.if_supports_color(Stream::Stdout, |t| match what {
                "added" => t.green().to_string(),
                "removed" => t.red().to_string(),
                _ => t.yellow().to_string(),
            }));
        }
    }
}
