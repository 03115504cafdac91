//! `nango.deploy`: reads a `nango-integrations` folder (or the same content passed in), plans it with
//! `pg_nango_core::deploy`, and replaces the deployed syncs, actions, models and code in the caller's
//! transaction, so a deploy is all or nothing and a failed one leaves the previous deployment running.

use std::collections::BTreeMap;
use std::path::Path;

use pg_nango_core::deploy::{DeploymentPlan, is_script_path, plan_with_packages};
use pg_nango_core::records::views::{view_name, view_sql};
use pgrx::prelude::*;
use serde_json::{Value, json};

use crate::guc;

/// Deploys the folder at `path` (a path on the database server).
#[pg_extern(name = "deploy", security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn deploy_path(path: &str, allow_destructive: default!(bool, false)) -> pgrx::JsonB {
    let allowed =
        Spi::get_one::<bool>("SELECT pg_has_role(session_user, 'pg_read_server_files', 'MEMBER')")
            .ok()
            .flatten()
            .unwrap_or(false);
    if !allowed {
        error!(
            "deploying from a server path needs membership in pg_read_server_files; pass the files with nango.deploy(config, files) instead"
        );
    }
    let root = Path::new(path);
    let config = std::fs::read_to_string(root.join("nango.yaml"))
        .unwrap_or_else(|e| error!("cannot read {}: {e}", root.join("nango.yaml").display()));
    let mut files = BTreeMap::new();
    collect_files(root, root, &mut files);
    // Packages are read from the folder's node_modules only as far as the scripts import them.
    let packages = |relative: &str| {
        let inside = relative.starts_with("node_modules/")
            && !relative
                .split('/')
                .any(|part| part == ".." || part.is_empty());
        inside
            .then(|| std::fs::read_to_string(root.join(relative)).ok())
            .flatten()
    };
    deploy_content(&config, files, allow_destructive, &packages)
}

/// Deploys `config` (nango.yaml) with `files` (`{"github/syncs/issues.ts": "<source>", …}`).
#[pg_extern(name = "deploy", security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn deploy_files(
    config: &str,
    files: pgrx::JsonB,
    allow_destructive: default!(bool, false),
) -> pgrx::JsonB {
    let Value::Object(map) = files.0 else {
        error!("files must be a JSON object of path: source");
    };
    let mut sources = BTreeMap::new();
    for (path, source) in map {
        match source {
            Value::String(text) => {
                sources.insert(path.trim_start_matches("./").to_string(), text);
            }
            _ => error!("files: the value of \"{path}\" must be the file's source text"),
        }
    }
    deploy_content(config, sources, allow_destructive, &|_| None)
}

fn collect_files(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| error!("cannot read {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let relative = path
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        if path.is_dir() {
            if !matches!(
                entry.file_name().to_str(),
                Some("node_modules" | "dist" | "build") | None
            ) && !relative.starts_with('.')
            {
                collect_files(root, &path, files);
            }
        } else if is_script_path(&relative) {
            let source = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| error!("cannot read {}: {e}", path.display()));
            files.insert(relative, source);
        }
    }
}

fn deploy_content(
    config: &str,
    files: BTreeMap<String, String>,
    allow_destructive: bool,
    packages: &dyn Fn(&str) -> Option<String>,
) -> pgrx::JsonB {
    let plan =
        plan_with_packages(config, &files, guc::min_frequency(), packages).unwrap_or_else(|e| {
            super::fail(
                format!("deploy failed: {e}"),
                "nothing was deployed; the previous deployment keeps running",
            )
        });
    check_removals(&plan, allow_destructive);
    ensure_integrations(&plan);
    let summary = write(&plan, config);
    pgrx::JsonB(summary)
}

/// A deploy is the complete set: refuses to drop deployed syncs or actions unless allowed.
fn check_removals(plan: &DeploymentPlan, allow_destructive: bool) {
    let keep: Vec<String> = plan
        .syncs
        .iter()
        .map(|s| format!("sync {}/{}", s.integration, s.config.name))
        .chain(
            plan.actions
                .iter()
                .map(|a| format!("action {}/{}", a.integration, a.config.name)),
        )
        .collect();
    let deployed: Vec<String> = select_strings(
        "SELECT 'sync ' || provider_config_key || '/' || name FROM nango.sync_configs
         UNION ALL SELECT 'action ' || provider_config_key || '/' || name FROM nango.action_configs ORDER BY 1",
    );
    let removed: Vec<&String> = deployed.iter().filter(|d| !keep.contains(d)).collect();
    if !removed.is_empty() && !allow_destructive {
        let names: Vec<&str> = removed.iter().map(|s| s.as_str()).collect();
        super::fail(
            format!("deploy failed: it would remove {}", names.join(", ")),
            "a deploy is the complete set of syncs and actions; pass allow_destructive => true to remove them",
        );
    }
}

/// Creates the integrations the config names that do not exist yet, with the provider of the same name (or
/// the one its `provider:` key gives).
fn ensure_integrations(plan: &DeploymentPlan) {
    for integration in &plan.config.integrations {
        let exists = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM nango.integrations WHERE unique_key = $1)",
            &[integration.key.as_str().into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        if exists {
            continue;
        }
        let provider = integration
            .provider
            .clone()
            .unwrap_or_else(|| integration.key.clone());
        let known = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM nango.providers WHERE name = $1)",
            &[provider.as_str().into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        if !known {
            super::fail(
                format!(
                    "deploy failed: integration \"{}\" does not exist and no provider is named \"{provider}\"",
                    integration.key
                ),
                "create it first with nango.create_integration(unique_key, provider), or set provider: in nango.yaml",
            );
        }
        run(
            "INSERT INTO nango.integrations (unique_key, provider) VALUES ($1, $2)",
            &[integration.key.as_str().into(), provider.as_str().into()],
        );
        run(
            "INSERT INTO nango.integration_secrets (unique_key) VALUES ($1)",
            &[integration.key.as_str().into()],
        );
    }
}

fn write(plan: &DeploymentPlan, config: &str) -> Value {
    run("DELETE FROM nango.files", &[]);
    for (path, (source, module)) in &plan.modules {
        run(
            "INSERT INTO nango.files (path, source, js, source_map) VALUES ($1, $2, $3, $4)",
            &[
                path.as_str().into(),
                source.as_str().into(),
                module.js.as_str().into(),
                module.source_map.as_deref().into(),
            ],
        );
    }

    let old_models = select_strings("SELECT name FROM nango.models");
    for name in old_models
        .iter()
        .filter(|m| !plan.config.models.contains_key(*m))
    {
        run(&format!("DROP VIEW IF EXISTS {}", view_name(name)), &[]);
    }
    run("DELETE FROM nango.models", &[]);
    // DROP VIEW IF EXISTS says "does not exist, skipping" for every new model; keep the deploy quiet.
    let previous_level = Spi::get_one::<String>("SELECT current_setting('client_min_messages')")
        .ok()
        .flatten()
        .unwrap_or_else(|| "notice".into());
    run(
        "SELECT set_config('client_min_messages', 'warning', true)",
        &[],
    );
    for (name, model) in &plan.config.models {
        let definition = serde_json::to_value(model).unwrap_or_default();
        run(
            "INSERT INTO nango.models (name, definition) VALUES ($1, $2)",
            &[name.as_str().into(), pgrx::JsonB(definition).into()],
        );
        run(&view_sql(model), &[]);
    }
    run(
        "SELECT set_config('client_min_messages', $1, true)",
        &[previous_level.as_str().into()],
    );

    let mut sync_keys = Vec::new();
    for sync in &plan.syncs {
        let c = &sync.config;
        sync_keys.push(json!([sync.integration, c.name]));
        run(
            "INSERT INTO nango.sync_configs AS sc (provider_config_key, name, description, runs, frequency, models, sync_type,
                                                   track_deletes, auto_start, endpoints, entry_file, version)
             VALUES ($1, $2, $3, $4, make_interval(secs => $5), $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (provider_config_key, name) DO UPDATE SET
                 description = excluded.description, runs = excluded.runs, frequency = excluded.frequency,
                 models = excluded.models, sync_type = excluded.sync_type, track_deletes = excluded.track_deletes,
                 auto_start = excluded.auto_start, endpoints = excluded.endpoints, entry_file = excluded.entry_file,
                 version = excluded.version",
            &[
                sync.integration.as_str().into(),
                c.name.as_str().into(),
                c.description.as_str().into(),
                c.runs.as_str().into(),
                (c.frequency_secs as f64).into(),
                c.output.clone().into(),
                c.sync_type.as_str().into(),
                c.track_deletes.into(),
                c.auto_start.into(),
                pgrx::JsonB(serde_json::to_value(&c.endpoints).unwrap_or_default()).into(),
                sync.entry_file.as_str().into(),
                c.version.as_str().into(),
            ],
        );
    }
    let mut action_keys = Vec::new();
    for action in &plan.actions {
        let c = &action.config;
        action_keys.push(json!([action.integration, c.name]));
        run(
            "INSERT INTO nango.action_configs AS ac (provider_config_key, name, description, input, output, endpoint, entry_file)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (provider_config_key, name) DO UPDATE SET
                 description = excluded.description, input = excluded.input, output = excluded.output,
                 endpoint = excluded.endpoint, entry_file = excluded.entry_file",
            &[
                action.integration.as_str().into(),
                c.name.as_str().into(),
                c.description.as_str().into(),
                c.input.as_deref().into(),
                c.output.clone().into(),
                pgrx::JsonB(serde_json::to_value(&c.endpoint).unwrap_or_default()).into(),
                action.entry_file.as_str().into(),
            ],
        );
    }
    run(
        "DELETE FROM nango.sync_configs sc WHERE NOT EXISTS (
             SELECT 1 FROM jsonb_array_elements($1) k WHERE k ->> 0 = sc.provider_config_key AND k ->> 1 = sc.name)",
        &[pgrx::JsonB(Value::Array(sync_keys)).into()],
    );
    run(
        "DELETE FROM nango.action_configs ac WHERE NOT EXISTS (
             SELECT 1 FROM jsonb_array_elements($1) k WHERE k ->> 0 = ac.provider_config_key AND k ->> 1 = ac.name)",
        &[pgrx::JsonB(Value::Array(action_keys)).into()],
    );
    run("SELECT nango._ensure_syncs()", &[]);

    let summary = json!({
        "integrations": plan.config.integrations.iter().map(|i| i.key.clone()).collect::<Vec<_>>(),
        "syncs": plan.syncs.iter().map(|s| json!({"integration": s.integration, "name": s.config.name, "runs": s.config.runs, "models": s.config.output, "file": s.entry_file})).collect::<Vec<_>>(),
        "actions": plan.actions.iter().map(|a| json!({"integration": a.integration, "name": a.config.name, "file": a.entry_file})).collect::<Vec<_>>(),
        "models": plan.config.models.keys().collect::<Vec<_>>(),
        "warnings": plan.config.warnings,
    });
    run(
        "INSERT INTO nango.deployments (config, summary) VALUES ($1, $2)",
        &[config.into(), pgrx::JsonB(summary.clone()).into()],
    );
    summary
}

fn run(sql: &str, args: &[pgrx::datum::DatumWithOid]) {
    Spi::run_with_args(sql, args).unwrap_or_else(|e| error!("deploy failed while writing: {e}"));
}

fn select_strings(sql: &str) -> Vec<String> {
    Spi::connect(|client| {
        client
            .select(sql, None, &[])
            .map(|rows| {
                rows.filter_map(|row| row.get::<String>(1).ok().flatten())
                    .collect()
            })
            .unwrap_or_else(|e| error!("deploy failed while reading: {e}"))
    })
}
