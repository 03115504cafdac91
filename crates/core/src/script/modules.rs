//! Module resolution as a bundler would do it for a Nango folder: `../mappers/to-issue.js` from
//! `github/syncs/issues.ts` is `github/mappers/to-issue.ts`; extensionless and `/index` forms work too; a bare
//! specifier (`zod`) is a package of the folder's `node_modules`, entered through its `package.json` as an
//! ES-module bundler would. Deploy uses it to refuse unresolvable imports; the runtime uses it to load the
//! compiled modules from memory (the packages' `package.json` files are deployed with them).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::module::{Declared, WriteOptions};
use rquickjs::{Ctx, Error, Module, Result};

use super::nango_module;

/// Resolves `specifier` imported by `importer` against the set of known files. `None` for a bare specifier
/// (`zod`) or a file that does not exist.
pub fn resolve(importer: &str, specifier: &str, exists: &dyn Fn(&str) -> bool) -> Option<String> {
    if !(specifier.starts_with("./") || specifier.starts_with("../") || specifier.starts_with('/'))
    {
        return None;
    }
    let dir = importer.rsplit_once('/').map_or("", |(d, _)| d);
    let joined = normalize(dir, specifier)?;
    let stem = joined
        .strip_suffix(".js")
        .or_else(|| joined.strip_suffix(".mjs"))
        .unwrap_or(&joined);
    [
        format!("{stem}.ts"),
        joined.clone(),
        format!("{joined}.ts"),
        format!("{joined}.js"),
        format!("{joined}/index.ts"),
        format!("{joined}/index.js"),
    ]
    .into_iter()
    .find(|candidate| exists(candidate))
}

/// Resolves any import: relative to `importer`, or a package from `node_modules`. `read` gives a file's text
/// (for `package.json`).
pub fn resolve_import(
    importer: &str,
    specifier: &str,
    exists: &dyn Fn(&str) -> bool,
    read: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    if is_bare(specifier) {
        resolve_package(specifier, exists, read)
    } else {
        resolve(importer, specifier, exists)
    }
}

/// Whether `specifier` names a package (`zod`, `@scope/pkg/sub`) rather than a file.
pub fn is_bare(specifier: &str) -> bool {
    !(specifier.starts_with('.') || specifier.starts_with('/'))
}

/// The `package.json` of the package a bare specifier names.
pub fn package_manifest_path(specifier: &str) -> Option<String> {
    split_package(specifier).map(|(name, _)| format!("node_modules/{name}/package.json"))
}

/// `@scope/pkg/sub/path` → (`@scope/pkg`, `sub/path`).
fn split_package(specifier: &str) -> Option<(&str, Option<&str>)> {
    let parts = if specifier.starts_with('@') { 2 } else { 1 };
    let mut end = 0;
    for (count, (index, _)) in specifier.match_indices('/').enumerate() {
        if count + 1 == parts {
            end = index;
            break;
        }
    }
    if end == 0 {
        return (!specifier.is_empty() && (parts == 1 || specifier.contains('/')))
            .then_some((specifier, None));
    }
    Some((&specifier[..end], Some(&specifier[end + 1..])))
}

/// A package's entry for `specifier`: its `exports` (conditions `import`, `module`, `default`), else
/// `module`, else `main`, else `index.js`; then the file as a bundler would find it.
pub fn resolve_package(
    specifier: &str,
    exists: &dyn Fn(&str) -> bool,
    read: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let (name, subpath) = split_package(specifier)?;
    let root = format!("node_modules/{name}");
    let manifest: serde_json::Value =
        serde_json::from_str(&read(&format!("{root}/package.json"))?).ok()?;
    let key = subpath.map_or_else(|| ".".to_string(), |s| format!("./{s}"));
    let target = manifest
        .get("exports")
        .and_then(|exports| export_target(exports, &key))
        .or_else(|| match subpath {
            Some(sub) => Some(format!("./{sub}")),
            None => ["module", "main"]
                .iter()
                .find_map(|field| manifest.get(*field)?.as_str().map(str::to_string)),
        })
        .unwrap_or_else(|| "./index.js".into());
    let path = normalize(&root, &target)?;
    [
        path.clone(),
        format!("{path}.js"),
        format!("{path}.mjs"),
        format!("{path}/index.js"),
        format!("{path}/index.mjs"),
    ]
    .into_iter()
    .find(|candidate| exists(candidate))
}

fn export_target(exports: &serde_json::Value, key: &str) -> Option<String> {
    match exports {
        serde_json::Value::Object(map) if map.keys().any(|k| k.starts_with('.')) => {
            map.get(key).and_then(condition_target)
        }
        _ if key == "." => condition_target(exports),
        _ => None,
    }
}

/// The target of an export condition object for an ES-module importer.
fn condition_target(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(target) => Some(target.clone()),
        serde_json::Value::Object(map) => ["import", "module", "default"]
            .iter()
            .find_map(|condition| map.get(*condition).and_then(condition_target)),
        serde_json::Value::Array(options) => options.iter().find_map(condition_target),
        _ => None,
    }
}

/// Joins a relative specifier onto a directory, folding `.` and `..`. `None` if it climbs above the root.
fn normalize(dir: &str, specifier: &str) -> Option<String> {
    let mut parts: Vec<&str> = if specifier.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in specifier.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// A compiled module kept in memory for the runtime (a row of `nango.files`: `js`, `source_map`), with the
/// QuickJS bytecode of its first compilation.
///
/// A run worker keeps its deployment's modules from run to run: every run has a fresh QuickJS runtime, and
/// declaring a module again from its bytecode skips the parsing and compiling, which for a project that
/// imports zod is most of the start of a run (18 ms down to 4 ms here). The bytecode is written by this
/// process's engine from the deployed JavaScript and never leaves its memory: bytecode from anywhere else
/// (a table, a file) could be crafted to corrupt the engine, which does not check it.
#[derive(Debug, Default, serde::Deserialize)]
pub struct StoredModule {
    pub js: String,
    pub source_map: Option<String>,
    /// Set by the first run that declares the module.
    #[serde(skip)]
    bytecode: OnceLock<Vec<u8>>,
}

impl StoredModule {
    /// A module not compiled yet.
    pub fn new(js: String, source_map: Option<String>) -> StoredModule {
        StoredModule {
            js,
            source_map,
            bytecode: OnceLock::new(),
        }
    }

    /// The size of the bytecode kept for this module (0 before its first run).
    pub fn bytecode_len(&self) -> usize {
        self.bytecode.get().map_or(0, Vec::len)
    }

    /// Declares the module `name` in `ctx`, from its bytecode after its first run.
    fn declare<'js>(&self, ctx: &Ctx<'js>, name: &str) -> Result<Module<'js, Declared>> {
        declare_compiled_once(ctx, name, &self.js, &self.bytecode)
    }
}

/// Declares the module `name` of JavaScript `js` in `ctx`: from the bytecode in `bytecode` if an earlier
/// declaration left it there, else from the JavaScript, leaving its bytecode in `bytecode`. The bytecode in
/// `bytecode` must only ever be set by this function, for this `name` and `js`.
pub(crate) fn declare_compiled_once<'js>(
    ctx: &Ctx<'js>,
    name: &str,
    js: &str,
    bytecode: &OnceLock<Vec<u8>>,
) -> Result<Module<'js, Declared>> {
    if let Some(bytes) = bytecode.get() {
        // SAFETY: the bytes were written below by `Module::write` of this same engine build, in this
        // process, from `js` under `name`; QuickJS copies what it reads, and the bytes outlive the call.
        // Reading a module loads its imports on the way, re-entering the runtime's resolver and loader:
        // both only read the run's module map, and this reads `bytecode` without holding a lock.
        match unsafe { Module::load(ctx.clone(), bytes) } {
            Ok(module) => return Ok(module),
            // Not expected; the JavaScript is still there.
            Err(_) => drop(ctx.catch()),
        }
    }
    let module = Module::declare(ctx.clone(), name, js)?;
    match module.write(WriteOptions::default()) {
        Ok(bytes) => {
            let _ = bytecode.set(bytes);
        }
        // A module QuickJS cannot write (none known) is compiled again each time.
        Err(_) => drop(ctx.catch()),
    }
    Ok(module)
}

impl Clone for StoredModule {
    /// A copy of the module's text, compiled again by its first run.
    fn clone(&self) -> StoredModule {
        StoredModule::new(self.js.clone(), self.source_map.clone())
    }
}

/// The deployed modules of a run by path, shared by the resolver and the loader, and kept by a run worker
/// from run to run with their bytecode.
pub type ModuleMap = Arc<HashMap<String, Arc<StoredModule>>>;

/// Modules not compiled yet, for a run.
pub fn module_map(modules: HashMap<String, StoredModule>) -> ModuleMap {
    Arc::new(
        modules
            .into_iter()
            .map(|(path, module)| (path, Arc::new(module)))
            .collect(),
    )
}

pub(crate) struct MemoryResolver(pub ModuleMap);
pub(crate) struct MemoryLoader(pub ModuleMap);

impl Resolver for MemoryResolver {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> Result<String> {
        if self.0.contains_key(name)
            || super::node::is_internal(name)
            || name == nango_module::INTERNAL
        {
            return Ok(name.to_string());
        }
        if nango_module::is_nango_import(name) {
            return Ok(nango_module::INTERNAL.to_string());
        }
        if let Some(super::node::Builtin::Provided(internal)) = super::node::builtin(name) {
            return Ok(internal.to_string());
        }
        let modules = &self.0;
        resolve_import(base, name, &|path| modules.contains_key(path), &|path| {
            modules.get(path).map(|m| m.js.clone())
        })
        .ok_or_else(|| Error::new_resolving(base, name))
    }
}

impl Loader for MemoryLoader {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> Result<Module<'js, Declared>> {
        if let Some(source) = super::node::module_source(name) {
            return Module::declare(ctx.clone(), name, source);
        }
        if name == nango_module::INTERNAL {
            return Module::declare(ctx.clone(), name, nango_module::SOURCE);
        }
        let module = self.0.get(name).ok_or_else(|| Error::new_loading(name))?;
        module.declare(ctx, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_a_bundler() {
        let files = [
            "github/syncs/issues.ts",
            "github/mappers/to-issue.ts",
            "helpers/index.ts",
            "lib/util.js",
        ];
        let exists = |p: &str| files.contains(&p);
        assert_eq!(
            resolve("github/syncs/issues.ts", "../mappers/to-issue.js", &exists).as_deref(),
            Some("github/mappers/to-issue.ts")
        );
        assert_eq!(
            resolve("github/syncs/issues.ts", "../mappers/to-issue", &exists).as_deref(),
            Some("github/mappers/to-issue.ts")
        );
        assert_eq!(
            resolve("github/syncs/issues.ts", "../../helpers", &exists).as_deref(),
            Some("helpers/index.ts")
        );
        assert_eq!(
            resolve("github/syncs/issues.ts", "../../lib/util.js", &exists).as_deref(),
            Some("lib/util.js")
        );
        assert_eq!(
            resolve("github/syncs/issues.ts", "../nope.js", &exists),
            None
        );
        assert_eq!(resolve("github/syncs/issues.ts", "zod", &exists), None);
        assert_eq!(resolve("a.ts", "../../x", &exists), None);
    }

    #[test]
    fn resolves_packages_from_node_modules() {
        let files: HashMap<&str, &str> = [
            ("node_modules/zod/package.json", r#"{"main": "./lib/index.js", "module": "./lib/index.mjs", "exports": {".": {"types": "./index.d.ts", "require": "./lib/index.js", "import": "./lib/index.mjs"}, "./mini": {"import": "./mini/index.js"}}}"#),
            ("node_modules/zod/lib/index.mjs", ""),
            ("node_modules/zod/mini/index.js", ""),
            ("node_modules/@acme/util/package.json", r#"{"module": "dist/index"}"#),
            ("node_modules/@acme/util/dist/index.js", ""),
            ("node_modules/plain/package.json", r#"{"name": "plain"}"#),
            ("node_modules/plain/index.js", ""),
            ("node_modules/plain/extra/thing.mjs", ""),
        ]
        .into_iter()
        .collect();
        let exists = |p: &str| files.contains_key(p);
        let read = |p: &str| files.get(p).map(|s| s.to_string());
        let at = |s: &str| resolve_import("github/syncs/issues.ts", s, &exists, &read);
        assert_eq!(at("zod").as_deref(), Some("node_modules/zod/lib/index.mjs"));
        assert_eq!(
            at("zod/mini").as_deref(),
            Some("node_modules/zod/mini/index.js")
        );
        assert_eq!(
            at("@acme/util").as_deref(),
            Some("node_modules/@acme/util/dist/index.js")
        );
        assert_eq!(at("plain").as_deref(), Some("node_modules/plain/index.js"));
        assert_eq!(
            at("plain/extra/thing").as_deref(),
            Some("node_modules/plain/extra/thing.mjs")
        );
        assert_eq!(at("missing"), None);
        assert_eq!(
            package_manifest_path("@acme/util/x").as_deref(),
            Some("node_modules/@acme/util/package.json")
        );
    }
}
