//! Planning a deployment without touching Postgres: parse `nango.yaml`, find each sync's and action's script
//! where Nango puts it, compile every module reachable from those scripts, and refuse imports that do not
//! resolve. A project without `nango.yaml` is Nango's zero-YAML format ([`zero_yaml`]). The extension writes
//! the plan in one transaction.

pub mod changes;
pub mod folder;
pub mod zero_yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::config::{ActionConfig, NangoConfig, OnEventConfig, SyncConfig, parse_config};
use crate::script::bundled::{self, ZOD_MANIFEST};
use crate::script::compile::{CompiledModule, compile};
use crate::script::modules::{is_bare, package_manifest_path, resolve_import};
use crate::script::nango_module;
use crate::script::node::{self, Builtin};

/// A deploy-stopping problem, located in a file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Compile(#[from] crate::script::compile::CompileError),
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

/// A sync or action with the file its code starts in.
#[derive(Debug, Clone)]
pub struct Scripted<T> {
    pub integration: String,
    pub config: T,
    pub entry_file: String,
}

/// The two project formats Nango has had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectFormat {
    /// `nango.yaml` with scripts exporting functions.
    Yaml,
    /// `index.ts` listing scripts that export `createSync`/`createAction`/`createOnEvent` definitions.
    ZeroYaml,
}

impl ProjectFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectFormat::Yaml => "yaml",
            ProjectFormat::ZeroYaml => "zero-yaml",
        }
    }
}

/// Everything a deployment stores.
#[derive(Debug)]
pub struct DeploymentPlan {
    pub format: ProjectFormat,
    /// The text the deploy was configured by: `nango.yaml`, or `index.ts` for a zero-YAML project.
    pub config_text: String,
    pub config: NangoConfig,
    pub syncs: Vec<Scripted<SyncConfig>>,
    pub actions: Vec<Scripted<ActionConfig>>,
    pub on_events: Vec<Scripted<OnEventConfig>>,
    /// Compiled modules by path, with their source.
    pub modules: BTreeMap<String, (String, CompiledModule)>,
}

/// Plans a deployment of `config_text` (nango.yaml) with the folder's `files` (path → source).
pub fn plan(
    config_text: &str,
    files: &BTreeMap<String, String>,
    min_frequency: Duration,
) -> Result<DeploymentPlan, DeployError> {
    plan_with_packages(config_text, files, min_frequency, &|_| None)
}

/// [`plan`], with `packages` reading files of the folder's `node_modules` (`node_modules/zod/package.json`)
/// that `files` does not hold, for bare imports.
pub fn plan_with_packages(
    config_text: &str,
    files: &BTreeMap<String, String>,
    min_frequency: Duration,
    packages: &dyn Fn(&str) -> Option<String>,
) -> Result<DeploymentPlan, DeployError> {
    let config = parse_config(config_text, min_frequency)?;
    let mut syncs = Vec::new();
    let mut actions = Vec::new();
    let mut on_events = Vec::new();
    for integration in &config.integrations {
        let key = &integration.key;
        locate(
            files,
            key,
            "on-events",
            &integration.on_events,
            |e| &e.name,
            &mut on_events,
        )?;
        locate(
            files,
            key,
            "syncs",
            &integration.syncs,
            |s| &s.name,
            &mut syncs,
        )?;
        locate(
            files,
            key,
            "actions",
            &integration.actions,
            |a| &a.name,
            &mut actions,
        )?;
    }
    let entries: Vec<&str> = syncs
        .iter()
        .map(|s| s.entry_file.as_str())
        .chain(actions.iter().map(|a| a.entry_file.as_str()))
        .chain(on_events.iter().map(|e| e.entry_file.as_str()))
        .collect();
    let (zod, bundled) = with_zod(files, packages);
    let modules = compile_reachable(files, &zod, &entries, bundled, &mut |_, _| Ok(()))?;
    Ok(DeploymentPlan {
        format: ProjectFormat::Yaml,
        config_text: config_text.to_string(),
        config,
        syncs,
        actions,
        on_events,
        modules,
    })
}

/// `packages`, with the bundled zod for a folder without its own (Nango's runner gives every script zod),
/// and whether the bundled one is used.
fn with_zod<'a>(
    files: &BTreeMap<String, String>,
    packages: &'a dyn Fn(&str) -> Option<String>,
) -> (impl Fn(&str) -> Option<String> + 'a, bool) {
    let own_zod = files.contains_key(ZOD_MANIFEST) || packages(ZOD_MANIFEST).is_some();
    let read = move |path: &str| {
        packages(path).or_else(|| {
            (!own_zod)
                .then(|| bundled::zod_file(path).map(str::to_string))
                .flatten()
        })
    };
    (read, !own_zod)
}

/// Finds the script of each of an integration's `configs` of one kind and adds them to `located`.
fn locate<T: Clone>(
    files: &BTreeMap<String, String>,
    integration: &str,
    kind: &str,
    configs: &[T],
    name: impl Fn(&T) -> &String,
    located: &mut Vec<Scripted<T>>,
) -> Result<(), DeployError> {
    for config in configs {
        located.push(Scripted {
            integration: integration.to_string(),
            entry_file: find_script(files, integration, kind, name(config))?,
            config: config.clone(),
        });
    }
    Ok(())
}

/// `<integration>/<kind>/<name>.ts`, else `<name>.ts` at the root (`.js` accepted for both); an on-event
/// script may also be in the older `<integration>/post-connection-scripts/`.
fn find_script(
    files: &BTreeMap<String, String>,
    integration: &str,
    kind: &str,
    name: &str,
) -> Result<String, DeployError> {
    let mut candidates = vec![
        format!("{integration}/{kind}/{name}.ts"),
        format!("{integration}/{kind}/{name}.js"),
        format!("{name}.ts"),
        format!("{name}.js"),
    ];
    if kind == "on-events" {
        candidates.push(format!("{integration}/post-connection-scripts/{name}.ts"));
    }
    candidates
        .iter()
        .find(|c| files.contains_key(c.as_str()))
        .cloned()
        .ok_or_else(|| DeployError::File {
            file: candidates[0].clone(),
            message: format!(
                "no script for {} {name} of integration {integration} (looked for {})",
                &kind[..kind.len() - 1],
                candidates.join(", ")
            ),
        })
}

/// Compiles the entry modules and every module they import, transitively. `check` sees each file of the
/// folder (not of `node_modules`) before it is compiled, and may refuse it.
fn compile_reachable(
    files: &BTreeMap<String, String>,
    packages: &dyn Fn(&str) -> Option<String>,
    entries: &[&str],
    bundled_zod: bool,
    check: &mut dyn FnMut(&str, &str) -> Result<(), DeployError>,
) -> Result<BTreeMap<String, (String, CompiledModule)>, DeployError> {
    let read = |path: &str| {
        files.get(path).cloned().or_else(|| {
            path.starts_with("node_modules/")
                .then(|| packages(path))
                .flatten()
        })
    };
    let exists = |path: &str| read(path).is_some();
    let mut compiled = BTreeMap::new();
    let mut pending: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
    let mut seen: BTreeSet<String> = pending.iter().cloned().collect();
    while let Some(path) = pending.pop() {
        let source = read(&path).unwrap_or_default();
        if path.ends_with(".cjs") {
            return Err(DeployError::File {
                file: path,
                message: "is a CommonJS module; only packages that ship ES modules can be imported"
                    .into(),
            });
        }
        if !path.starts_with("node_modules/") {
            check(&path, &source)?;
        }
        let module = match bundled_zod
            .then(|| bundled::compile_zod_file(&path))
            .flatten()
        {
            Some(compiled) => compiled?,
            None => compile(&path, &source)?,
        };
        for specifier in &module.imports {
            if nango_module::is_nango_import(specifier) {
                continue;
            }
            match node::builtin(specifier) {
                Some(Builtin::Provided(_)) => continue,
                Some(Builtin::Missing) => {
                    return Err(DeployError::File {
                        message: missing_builtin(&path, specifier),
                        file: path,
                    });
                }
                None => {}
            }
            let target = resolve_import(&path, specifier, &exists, &read).ok_or_else(|| DeployError::File {
                file: path.clone(),
                message: if let Some(message) = unsupported_package(specifier) {
                    message
                } else if is_bare(specifier) {
                    format!("imports the package '{specifier}', which is not installed in the folder's node_modules (run npm install in the folder)")
                } else {
                    format!("imports '{specifier}', which is not a file of the folder")
                },
            })?;
            // The runtime resolves the package again through its package.json, so it is deployed too.
            if let Some(manifest) = is_bare(specifier)
                .then(|| package_manifest_path(specifier))
                .flatten()
                && !compiled.contains_key(&manifest)
                && let Some(text) = read(&manifest)
            {
                let stored = CompiledModule {
                    js: text.clone(),
                    source_map: None,
                    imports: Vec::new(),
                };
                compiled.insert(manifest, (text, stored));
            }
            if seen.insert(target.clone()) {
                pending.push(target);
            }
        }
        compiled.insert(path, (source, module));
    }
    Ok(compiled)
}

/// Why scripts here are not Node.js, for the messages below.
const NOT_NODE: &str = "scripts run in QuickJS inside Postgres, not in Node.js";

/// The message for an import of a Node.js built-in module the runtime does not provide.
fn missing_builtin(importer: &str, specifier: &str) -> String {
    let available = node::provided_names().join(", ");
    match package_of(importer) {
        Some(package) => format!(
            "the package '{package}' imports '{specifier}', a Node.js built-in module this runtime does not provide, so the package cannot run here ({NOT_NODE}; the built-in modules available are {available})"
        ),
        None => format!(
            "imports '{specifier}', a Node.js built-in module this runtime does not provide ({NOT_NODE}; the built-in modules available are {available}, and HTTP calls go through nango.proxy)"
        ),
    }
}

/// The packages Nango's runner lets scripts require besides `zod`, `url` and `crypto`, with the Node.js
/// modules they need that this runtime does not have.
const NODE_ONLY_PACKAGES: [(&str, &str); 3] = [
    ("soap", "http, https, stream and fs"),
    ("botbuilder", "http, https, stream and fs"),
    ("unzipper", "stream, fs and zlib"),
];

/// The message for an import of one of [`NODE_ONLY_PACKAGES`] that the folder does not install.
fn unsupported_package(specifier: &str) -> Option<String> {
    let name = specifier.split('/').next()?;
    let (package, needs) = NODE_ONLY_PACKAGES.iter().find(|(p, _)| *p == name)?;
    Some(format!(
        "imports the package '{package}', which Nango's runner provides but which cannot run here: it needs Node.js' {needs} modules, which this runtime does not have ({NOT_NODE})"
    ))
}

/// The package a file of `node_modules` belongs to (`node_modules/@scope/pkg/lib/x.js` → `@scope/pkg`).
fn package_of(path: &str) -> Option<&str> {
    let (_, inside) = path.rsplit_once("node_modules/")?;
    let mut parts = inside.splitn(3, '/');
    let first = parts.next()?;
    if first.starts_with('@') {
        let second = parts.next()?;
        Some(&inside[..first.len() + 1 + second.len()])
    } else {
        Some(first)
    }
}

/// True for files a deployment reads from a folder: scripts, not tests, builds or packages.
pub fn is_script_path(path: &str) -> bool {
    let skipped_dir = path.split('/').any(|part| {
        matches!(
            part,
            "node_modules" | "dist" | "build" | ".nango" | "tests" | "__tests__"
        ) || part.starts_with('.')
    });
    let script = (path.ends_with(".ts") && !path.ends_with(".d.ts"))
        || path.ends_with(".js")
        || path.ends_with(".mjs");
    script && !skipped_dir && !path.ends_with(".test.ts") && !path.ends_with(".spec.ts")
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "integrations:\n  demo:\n    syncs:\n      tickets:\n        runs: every hour\n        output: Ticket\n        endpoint: GET /tickets\nmodels:\n  Ticket:\n    id: string\n";

    fn files(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect()
    }

    #[test]
    fn plans_entry_and_imports() {
        let f = files(&[
            (
                "demo/syncs/tickets.ts",
                "import { map } from '../mappers/ticket.js';\nexport default async function fetchData(n: any) { map(); }\n",
            ),
            ("demo/mappers/ticket.ts", "export function map() {}\n"),
            ("demo/mappers/unused.ts", "this is not even typescript"),
        ]);
        let plan = plan(YAML, &f, Duration::from_secs(30)).unwrap();
        assert_eq!(plan.syncs[0].entry_file, "demo/syncs/tickets.ts");
        assert_eq!(
            plan.modules.keys().collect::<Vec<_>>(),
            vec!["demo/mappers/ticket.ts", "demo/syncs/tickets.ts"]
        );
    }

    #[test]
    fn missing_script_and_bad_imports() {
        let err = plan(YAML, &BTreeMap::new(), Duration::from_secs(30)).unwrap_err();
        assert!(
            err.to_string().contains("no script for sync tickets"),
            "{err}"
        );
        let f = files(&[(
            "demo/syncs/tickets.ts",
            "import { x } from '../nope.js';\nexport default async function f() { x(); }\n",
        )]);
        let err = plan(YAML, &f, Duration::from_secs(30)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "demo/syncs/tickets.ts: imports '../nope.js', which is not a file of the folder"
        );
        let f = files(&[(
            "tickets.ts",
            "import { y } from 'yup';\nexport default async function f() { y(); }\n",
        )]);
        assert!(
            plan(YAML, &f, Duration::from_secs(30))
                .unwrap_err()
                .to_string()
                .contains("package 'yup'")
        );
        let f = files(&[(
            "demo/syncs/tickets.ts",
            "export default async function f( {\n",
        )]);
        assert!(
            matches!(plan(YAML, &f, Duration::from_secs(30)).unwrap_err(), DeployError::Compile(e) if e.file == "demo/syncs/tickets.ts")
        );
    }

    #[test]
    fn node_builtins_and_node_only_packages() {
        let f = files(&[(
            "demo/syncs/tickets.ts",
            "import crypto from 'crypto';\nimport { URL } from 'node:url';\nimport { Buffer } from 'buffer';\nexport default async function f() { crypto.randomUUID(); new URL('x:'); Buffer.from(''); }\n",
        )]);
        let planned = plan(YAML, &f, Duration::from_secs(30)).unwrap();
        assert_eq!(
            planned.modules.keys().collect::<Vec<_>>(),
            vec!["demo/syncs/tickets.ts"]
        );
        let f = files(&[(
            "demo/syncs/tickets.ts",
            "import http from 'node:http';\nexport default async function f() { http.get(''); }\n",
        )]);
        assert_eq!(
            plan(YAML, &f, Duration::from_secs(30))
                .unwrap_err()
                .to_string(),
            "demo/syncs/tickets.ts: imports 'node:http', a Node.js built-in module this runtime does not provide (scripts run in QuickJS inside Postgres, not in Node.js; the built-in modules available are crypto, url, buffer, and HTTP calls go through nango.proxy)"
        );
        let f = files(&[(
            "demo/syncs/tickets.ts",
            "import soap from 'soap';\nexport default async function f() { soap.createClient(); }\n",
        )]);
        assert_eq!(
            plan(YAML, &f, Duration::from_secs(30))
                .unwrap_err()
                .to_string(),
            "demo/syncs/tickets.ts: imports the package 'soap', which Nango's runner provides but which cannot run here: it needs Node.js' http, https, stream and fs modules, which this runtime does not have (scripts run in QuickJS inside Postgres, not in Node.js)"
        );
        let f = files(&[(
            "demo/syncs/tickets.ts",
            "import { Open } from 'unzipper';\nexport default async function f() { Open(); }\n",
        )]);
        let packages = |path: &str| {
            match path {
            "node_modules/unzipper/package.json" => Some(r#"{"module": "index.mjs"}"#.to_string()),
            "node_modules/unzipper/index.mjs" => Some(
                "import fs from 'fs';\nimport { x } from './lib/x.mjs';\nexport const Open = () => fs;\n"
                    .to_string(),
            ),
            _ => None,
        }
        };
        assert_eq!(
            plan_with_packages(YAML, &f, Duration::from_secs(30), &packages)
                .unwrap_err()
                .to_string(),
            "node_modules/unzipper/index.mjs: the package 'unzipper' imports 'fs', a Node.js built-in module this runtime does not provide, so the package cannot run here (scripts run in QuickJS inside Postgres, not in Node.js; the built-in modules available are crypto, url, buffer)"
        );
        assert_eq!(package_of("node_modules/@a/b/lib/c.js"), Some("@a/b"));
        assert_eq!(package_of("node_modules/x/node_modules/y/i.js"), Some("y"));
        assert_eq!(package_of("demo/syncs/t.ts"), None);
    }

    #[test]
    fn zod_comes_bundled_unless_the_folder_has_its_own() {
        let script = "import { z } from 'zod';\nimport * as z3 from 'zod/v3';\nimport * as zm from 'zod/mini';\n\
                      export default async function f() { z.string(); z3.string(); zm.string(); }\n";
        let f = files(&[("tickets.ts", script)]);
        let started = std::time::Instant::now();
        let first = plan(YAML, &f, Duration::from_secs(30)).unwrap();
        let first_took = started.elapsed();
        let started = std::time::Instant::now();
        let again = plan(YAML, &f, Duration::from_secs(30)).unwrap();
        let again_took = started.elapsed();
        eprintln!("a deploy importing the bundled zod took {first_took:?}, then {again_took:?}");
        assert_eq!(
            first.modules.keys().collect::<Vec<_>>(),
            again.modules.keys().collect::<Vec<_>>()
        );
        let stored: Vec<&String> = first.modules.keys().collect();
        assert!(stored.iter().any(|p| *p == "node_modules/zod/package.json"));
        assert!(stored.iter().any(|p| *p == "node_modules/zod/index.js"));
        assert!(stored.iter().any(|p| p.starts_with("node_modules/zod/v3/")));
        assert!(
            stored
                .iter()
                .any(|p| p.starts_with("node_modules/zod/v4/mini/"))
        );
        // Only what the imports reach: ES modules, no CommonJS twins, sources or types.
        assert!(
            stored
                .iter()
                .all(|p| p.ends_with(".js") || p.ends_with(".json") || p.ends_with(".ts"))
        );
        assert!(!stored.iter().any(|p| p.contains("/src/")));
        let only_zod = files(&[(
            "tickets.ts",
            "import { z } from 'zod';\nexport default async function f() { z.string(); }\n",
        )]);
        let only_zod = plan(YAML, &only_zod, Duration::from_secs(30)).unwrap();
        assert!(only_zod.modules.len() < first.modules.len());
        assert!(
            !only_zod
                .modules
                .keys()
                .any(|p| p.starts_with("node_modules/zod/v3/"))
        );

        // A folder with its own zod keeps it.
        let own = files(&[
            (
                "tickets.ts",
                "import { z } from 'zod';\nexport default async function f() { z(); }\n",
            ),
            (
                "node_modules/zod/package.json",
                "{\"name\": \"zod\", \"module\": \"./own.js\"}",
            ),
            ("node_modules/zod/own.js", "export const z = () => 1;\n"),
        ]);
        let plan = plan(YAML, &own, Duration::from_secs(30)).unwrap();
        assert_eq!(
            plan.modules.keys().collect::<Vec<_>>(),
            vec![
                "node_modules/zod/own.js",
                "node_modules/zod/package.json",
                "tickets.ts"
            ]
        );
    }

    #[test]
    fn script_paths() {
        assert!(is_script_path("github/syncs/issues.ts"));
        assert!(!is_script_path("node_modules/zod/index.js"));
        assert!(!is_script_path("models.d.ts"));
        assert!(!is_script_path(".nango/schema.ts"));
        assert!(!is_script_path("github/tests/issues.test.ts"));
    }
}
