//! Module resolution as a bundler would do it for a Nango folder: `../mappers/to-issue.js` from
//! `github/syncs/issues.ts` is `github/mappers/to-issue.ts`; extensionless and `/index` forms work too.
//! Deploy uses it to refuse unresolvable imports; the runtime uses it to load compiled modules from memory.

use std::collections::HashMap;
use std::rc::Rc;

use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::module::Declared;
use rquickjs::{Ctx, Error, Module, Result};

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

/// A compiled module kept in memory for the runtime.
#[derive(Debug, Clone)]
pub struct StoredModule {
    pub js: String,
    pub source_map: Option<String>,
}

/// The deployed modules of a run, shared by the resolver and the loader.
pub type ModuleMap = Rc<HashMap<String, StoredModule>>;

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
        if self.0.contains_key(name) {
            return Ok(name.to_string());
        }
        resolve(base, name, &|path| self.0.contains_key(path))
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
        let module = self.0.get(name).ok_or_else(|| Error::new_loading(name))?;
        Module::declare(ctx.clone(), name, module.js.as_str())
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
}
