//! `nango.deploy`: reads a `nango-integrations` folder (or the same content passed in), plans it with
//! `pg_nango_core::deploy`, and replaces the deployed syncs, actions, models and code in the caller's
//! transaction, so a deploy is all or nothing and a failed one leaves the previous deployment running.

use std::collections::BTreeMap;
use std::path::Path;

use pg_nango_core::deploy::changes::{Changes, Fingerprints};
use pg_nango_core::deploy::folder::{FolderError, read_folder, read_package};
use pg_nango_core::deploy::zero_yaml::{DefinitionLimits, plan_zero_yaml};
use pg_nango_core::deploy::{DeploymentPlan, plan_with_packages};
use pg_nango_core::records::views::{self, ViewChange, ViewPlan};
use pgrx::prelude::*;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::guc;

/// The HINT of a refused deploy.
const NOTHING_DEPLOYED: &str = "Nothing was deployed; the previous deployment keeps running.";

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
        ApiError::not_permitted(
            "deploying from a server path needs membership in pg_read_server_files",
        )
        .hint("Pass the files with nango.deploy(config, files) instead.")
        .raise();
    }
    let root = Path::new(path);
    let folder = read_folder(root).unwrap_or_else(|e| {
        let error = ApiError::invalid(format!("deploy failed: {e}"));
        match e {
            FolderError::NotAProject(_) => error
                .hint("A project has a nango.yaml, or an index.ts for Nango's zero-YAML format."),
            _ => error.hint(NOTHING_DEPLOYED),
        }
        .raise()
    });
    // Packages are read from the folder's node_modules only as far as the scripts import them.
    let packages = |relative: &str| read_package(root, relative);
    deploy_content(
        folder.config.as_deref(),
        folder.files,
        allow_destructive,
        &packages,
    )
}

/// Deploys `config` (nango.yaml) with `files` (`{"github/syncs/issues.ts": "<source>", …}`); with `config`
/// NULL or empty, `files` is a zero-YAML project (`index.ts` and the scripts it lists).
#[pg_extern(name = "deploy", security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn deploy_files(
    config: Option<&str>,
    files: Option<pgrx::JsonB>,
    allow_destructive: default!(bool, false),
) -> pgrx::JsonB {
    let Some(pgrx::JsonB(Value::Object(map))) = files else {
        ApiError::invalid("files must be a JSON object of path: source").raise();
    };
    let mut sources = BTreeMap::new();
    for (path, source) in map {
        match source {
            Value::String(text) => {
                sources.insert(path.trim_start_matches("./").to_string(), text);
            }
            _ => ApiError::invalid(format!(
                "files: the value of \"{path}\" must be the file's source text"
            ))
            .raise(),
        }
    }
    let config = config.filter(|c| !c.trim().is_empty());
    deploy_content(config, sources, allow_destructive, &|_| None)
}

fn deploy_content(
    config: Option<&str>,
    files: BTreeMap<String, String>,
    allow_destructive: bool,
    packages: &dyn Fn(&str) -> Option<String>,
) -> pgrx::JsonB {
    let planned = match config {
        Some(config) => plan_with_packages(config, &files, guc::min_frequency(), packages),
        None => {
            let limits = guc::script_limits(true);
            let definitions = DefinitionLimits {
                timeout: limits.timeout,
                memory_bytes: limits.memory_bytes,
                // A cancelled statement (Ctrl-C, statement_timeout) stops the definitions' code; the
                // ERROR is raised once it has stopped, outside the engine.
                cancelled: || unsafe { pg_sys::InterruptPending != 0 },
            };
            plan_zero_yaml(&files, guc::min_frequency(), packages, definitions)
        }
    };
    pgrx::check_for_interrupts!();
    let plan = planned.unwrap_or_else(|e| {
        ApiError::invalid(format!("deploy failed: {e}"))
            .hint(NOTHING_DEPLOYED)
            .raise()
    });
    check_removals(&plan, allow_destructive);
    ensure_integrations(&plan);
    let summary = write(&plan);
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
        ApiError::invalid(format!("deploy failed: it would remove {}", names.join(", ")))
            .hint("A deploy is the complete set of syncs and actions; pass allow_destructive => true to remove them.")
            .raise();
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
            ApiError::undefined(format!(
                "deploy failed: integration \"{}\" does not exist and no provider is named \"{provider}\"",
                integration.key
            ))
            .hint("Create it first with nango.create_integration(unique_key, provider), or set provider: in nango.yaml.")
            .raise();
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

fn write(plan: &DeploymentPlan) -> Value {
    // Planned before anything is written: a model whose names Postgres cannot store fails the deploy here.
    let (view_plans, view_warnings, gone_views) = plan_views(plan);
    let before = deployed_fingerprints();
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

    let views = write_views(plan, &view_plans, &gone_views);

    let mut sync_keys = Vec::new();
    for sync in &plan.syncs {
        let c = &sync.config;
        sync_keys.push(json!([sync.integration, c.name]));
        run(
            "INSERT INTO nango.sync_configs AS sc (provider_config_key, name, description, runs, frequency, models, sync_type,
                                                   track_deletes, auto_start, endpoints, entry_file, version,
                                                   webhook_subscriptions, metadata_model, json_schema)
             VALUES ($1, $2, $3, $4, make_interval(secs => $5), $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (provider_config_key, name) DO UPDATE SET
                 description = excluded.description, runs = excluded.runs, frequency = excluded.frequency,
                 models = excluded.models, sync_type = excluded.sync_type, track_deletes = excluded.track_deletes,
                 auto_start = excluded.auto_start, endpoints = excluded.endpoints, entry_file = excluded.entry_file,
                 version = excluded.version, webhook_subscriptions = excluded.webhook_subscriptions,
                 metadata_model = excluded.metadata_model, json_schema = excluded.json_schema",
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
                c.webhook_subscriptions.clone().into(),
                c.input.as_deref().into(),
                c.json_schema.clone().map(pgrx::JsonB).into(),
            ],
        );
    }
    let mut action_keys = Vec::new();
    for action in &plan.actions {
        let c = &action.config;
        action_keys.push(json!([action.integration, c.name]));
        run(
            "INSERT INTO nango.action_configs AS ac (provider_config_key, name, description, input, output, endpoint, entry_file,
                                                     json_schema)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (provider_config_key, name) DO UPDATE SET
                 description = excluded.description, input = excluded.input, output = excluded.output,
                 endpoint = excluded.endpoint, entry_file = excluded.entry_file, json_schema = excluded.json_schema",
            &[
                action.integration.as_str().into(),
                c.name.as_str().into(),
                c.description.as_str().into(),
                c.input.as_deref().into(),
                c.output.clone().into(),
                pgrx::JsonB(serde_json::to_value(&c.endpoint).unwrap_or_default()).into(),
                action.entry_file.as_str().into(),
                c.json_schema.clone().map(pgrx::JsonB).into(),
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
    // On-event scripts carry no state: the deployed set replaces the previous one.
    run("DELETE FROM nango.on_event_configs", &[]);
    for on_event in &plan.on_events {
        run(
            "INSERT INTO nango.on_event_configs (provider_config_key, name, event, entry_file) VALUES ($1, $2, $3, $4)",
            &[
                on_event.integration.as_str().into(),
                on_event.config.name.as_str().into(),
                on_event.config.event.as_str().into(),
                on_event.entry_file.as_str().into(),
            ],
        );
    }
    run("SELECT nango._ensure_syncs()", &[]);
    let changes = Changes::between(&before, &deployed_fingerprints());

    let summary = json!({
        "format": plan.format.as_str(),
        "integrations": plan.config.integrations.iter().map(|i| i.key.clone()).collect::<Vec<_>>(),
        "syncs": plan.syncs.iter().map(|s| json!({"integration": s.integration, "name": s.config.name, "runs": s.config.runs, "models": s.config.output, "file": s.entry_file})).collect::<Vec<_>>(),
        "actions": plan.actions.iter().map(|a| json!({"integration": a.integration, "name": a.config.name, "file": a.entry_file})).collect::<Vec<_>>(),
        "on_events": plan.on_events.iter().map(|e| json!({"integration": e.integration, "name": e.config.name, "event": e.config.event, "file": e.entry_file})).collect::<Vec<_>>(),
        "models": plan.config.models.keys().collect::<Vec<_>>(),
        "views": views,
        "warnings": plan.config.warnings.iter().chain(&view_warnings).collect::<Vec<_>>(),
        "changes": changes,
    });
    run(
        "INSERT INTO nango.deployments (config, summary) VALUES ($1, $2)",
        &[
            plan.config_text.as_str().into(),
            pgrx::JsonB(summary.clone()).into(),
        ],
    );
    summary
}

/// Every deployed sync, action, on-event script, model, project file and package, with a fingerprint of its
/// definition and, for a script, of its entry file's compiled code.
fn deployed_fingerprints() -> Fingerprints {
    select_rows(
        "SELECT kind || ' ' || name, md5(definition) FROM (
             SELECT 'sync' AS kind, sc.provider_config_key || '/' || sc.name AS name,
                    (pg_catalog.to_jsonb(sc) - 'id')::text || coalesce(f.js, '') AS definition
               FROM nango.sync_configs sc LEFT JOIN nango.files f ON f.path = sc.entry_file
             UNION ALL
             SELECT 'action', ac.provider_config_key || '/' || ac.name,
                    (pg_catalog.to_jsonb(ac) - 'id')::text || coalesce(f.js, '')
               FROM nango.action_configs ac LEFT JOIN nango.files f ON f.path = ac.entry_file
             UNION ALL
             SELECT 'on-event', oc.provider_config_key || '/' || oc.name,
                    (pg_catalog.to_jsonb(oc) - 'id')::text || coalesce(f.js, '')
               FROM nango.on_event_configs oc LEFT JOIN nango.files f ON f.path = oc.entry_file
             UNION ALL
             SELECT 'model', m.name, m.definition::text FROM nango.models m
             UNION ALL
             SELECT 'file', f.path, f.js FROM nango.files f WHERE left(f.path, 13) <> 'node_modules/'
             UNION ALL
             -- A package as a whole (`@scope/name` or `name`), with every file of it the scripts reach.
             SELECT 'package', p.package, string_agg(p.path || ':' || p.js, ',' ORDER BY p.path)
               FROM (SELECT f.path, f.js,
                            CASE WHEN split_part(f.path, '/', 2) LIKE '@%'
                                 THEN split_part(f.path, '/', 2) || '/' || split_part(f.path, '/', 3)
                                 ELSE split_part(f.path, '/', 2) END AS package
                       FROM nango.files f WHERE left(f.path, 13) = 'node_modules/') p
              GROUP BY p.package
         ) deployed",
        &[],
        |row| Some((text(row, 1)?, text(row, 2)?)),
    )
    .into_iter()
    .collect()
}

/// The typed views this deploy wants, a warning for each view or column not named as its model or field, and
/// the views of the models no longer deployed.
fn plan_views(plan: &DeploymentPlan) -> (Vec<ViewPlan>, Vec<String>, Vec<String>) {
    let previous: BTreeMap<String, Option<String>> =
        select_rows("SELECT name, view_name FROM nango.models", &[], |row| {
            Some((text(row, 1)?, text(row, 2)))
        })
        .into_iter()
        .collect();
    // Relations in nango_records that are no model's view (a row from before view names were kept has its
    // view at the natural name): a new model's view never takes their name.
    let view_of = |(name, view): (&String, &Option<String>)| {
        view.clone().unwrap_or_else(|| views::snake_case(name))
    };
    let ours: Vec<String> = previous.iter().map(view_of).collect();
    let gone: Vec<String> = previous
        .iter()
        .filter(|(name, _)| !plan.config.models.contains_key(*name))
        .map(view_of)
        .collect();
    let occupied = select_strings_with(
        "SELECT c.relname::text FROM pg_catalog.pg_class c
         WHERE c.relnamespace = 'nango_records'::pg_catalog.regnamespace AND c.relname::text <> ALL ($1)",
        &[ours.into()],
    )
    .into_iter()
    .collect();
    let (plans, warnings) = views::plan_views(&plan.config.models, &previous, &occupied)
        .unwrap_or_else(|e| {
            ApiError::invalid(format!("deploy failed: {e}"))
                .hint(NOTHING_DEPLOYED)
                .raise()
        });
    (plans, warnings, gone)
}

/// Drops the views of models no longer deployed, brings every model's view to its plan and records the
/// models with their view names. Returns `{"Model": "nango_records.view"}`.
fn write_views(plan: &DeploymentPlan, view_plans: &[ViewPlan], gone: &[String]) -> Value {
    // Dropped first, also when a new model takes the name: its grants were given for another model's records.
    for view in gone {
        if view_exists(view) {
            drop_view(view, "its model is no longer deployed");
        }
    }
    run("DELETE FROM nango.models", &[]);
    let mut names = serde_json::Map::new();
    for view_plan in view_plans {
        let model = &plan.config.models[&view_plan.model];
        run(
            "INSERT INTO nango.models (name, definition, view_name) VALUES ($1, $2, $3)",
            &[
                view_plan.model.as_str().into(),
                pgrx::JsonB(serde_json::to_value(model).unwrap_or_default()).into(),
                view_plan.view.as_str().into(),
            ],
        );
        let existing = view_columns(&view_plan.view);
        match view_plan.change(&existing) {
            ViewChange::Replace(sql) => run(&sql, &[]),
            ViewChange::Recreate(sql) => {
                let grants = view_grants(&view_plan.view);
                drop_view(&view_plan.view, "a column was removed or changed type");
                run(&sql, &[]);
                for grant in grants {
                    run(&grant, &[]);
                }
            }
        }
        names.insert(
            view_plan.model.clone(),
            // Quoted only where needed, as a user would type it.
            Value::String(
                Spi::get_one_with_args::<String>(
                    "SELECT 'nango_records.' || pg_catalog.quote_ident($1)",
                    &[view_plan.view.as_str().into()],
                )
                .ok()
                .flatten()
                .unwrap_or_else(|| views::qualified(&view_plan.view)),
            ),
        );
    }
    Value::Object(names)
}

/// Whether `nango_records.<view>` exists.
fn view_exists(view: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class
                        WHERE relnamespace = 'nango_records'::pg_catalog.regnamespace AND relname = $1)",
        &[view.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// The (name, type) of a typed view's columns in order; empty when there is no such view.
fn view_columns(view: &str) -> Vec<(String, String)> {
    select_rows(
        "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod)
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = 'nango_records'::pg_catalog.regnamespace AND c.relname = $1
           AND c.relkind = 'v' AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum",
        &[view.into()],
        |row| Some((text(row, 1)?, text(row, 2)?)),
    )
}

/// The GRANTs that give back the privileges granted on a view (its owner's own are implicit).
fn view_grants(view: &str) -> Vec<String> {
    select_rows(
        "SELECT a.privilege_type, r.rolname::text, a.is_grantable
         FROM pg_catalog.pg_class c
         CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
         LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
         WHERE c.relnamespace = 'nango_records'::pg_catalog.regnamespace AND c.relname = $1
           AND a.grantee <> c.relowner",
        &[view.into()],
        |row| {
            let privilege = text(row, 1).unwrap_or_default();
            let grantable = row.get::<bool>(3).ok().flatten().unwrap_or(false);
            Some(
                views::grant_sql(view, &privilege, text(row, 2).as_deref(), grantable)
                    .unwrap_or_else(|e| ApiError::internal(format!("deploy failed: {e}")).raise()),
            )
        },
    )
}

/// Drops a typed view; refuses when other views are built on it, naming them, rather than dropping them too.
fn drop_view(view: &str, why: &str) {
    let dependents = select_strings_with(
        "SELECT DISTINCT d.ev_class::pg_catalog.regclass::text
         FROM pg_catalog.pg_class c
         JOIN pg_catalog.pg_depend p ON p.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND p.refobjid = c.oid
         JOIN pg_catalog.pg_rewrite d ON p.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.oid = p.objid
         WHERE c.relnamespace = 'nango_records'::pg_catalog.regnamespace AND c.relname = $1 AND d.ev_class <> c.oid
         ORDER BY 1",
        &[view.into()],
    );
    if !dependents.is_empty() {
        ApiError::in_use(format!(
            "deploy failed: {} must be dropped ({why}) but {} depend on it",
            views::qualified(view),
            dependents.join(", ")
        ))
        .hint("Drop the views built on it first (and create them again after the deploy); nothing was deployed.")
        .raise();
    }
    run(&format!("DROP VIEW {}", views::qualified(view)), &[]);
}

fn run(sql: &str, args: &[pgrx::datum::DatumWithOid]) {
    Spi::run_with_args(sql, args).unwrap_or_else(|e| {
        ApiError::internal(format!("deploy failed while writing: {e}")).raise()
    });
}

fn select_strings(sql: &str) -> Vec<String> {
    select_strings_with(sql, &[])
}

fn select_strings_with(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> Vec<String> {
    select_rows(sql, args, |row| text(row, 1))
}

/// The rows of a query, each read by `read` (a row it gives `None` for is left out).
fn select_rows<T>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
    read: impl Fn(&pgrx::spi::SpiHeapTupleData) -> Option<T>,
) -> Vec<T> {
    Spi::connect(|client| {
        client
            .select(sql, None, args)
            .map(|rows| rows.filter_map(|row| read(&row)).collect())
            .unwrap_or_else(|e| {
                ApiError::internal(format!("deploy failed while reading: {e}")).raise()
            })
    })
}

/// Column `ordinal` of a row as text; `None` when it is NULL.
fn text(row: &pgrx::spi::SpiHeapTupleData, ordinal: usize) -> Option<String> {
    row.get::<String>(ordinal).ok().flatten()
}
