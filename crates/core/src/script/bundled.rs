//! The `zod` package bundled with the extension, as Nango's runner supplies it to every script: a folder
//! deployed without `node_modules/zod` gets this one (zod 4, which also serves `zod/v3`, `zod/v4` and
//! `zod/mini`). Its ES-module files, `package.json` and MIT `LICENSE` are fetched from the npm registry at
//! build time (see `build.rs`) and embedded deflated.
//!
//! Deploy stores only the files its imports reach, and compiles each bundled file once per process: zod is
//! large enough (about 1 MB reached from `zod`) that compiling it at every deploy would be felt.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use super::compile::{CompileError, CompiledModule, compile};

const ZOD_DEFLATED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/zod.json.deflate"));

/// The bundled zod's version.
pub const ZOD_VERSION: &str = env!("PG_NANGO_ZOD_VERSION");

/// Where a folder keeps zod's manifest; a folder that has it uses its own zod.
pub const ZOD_MANIFEST: &str = "node_modules/zod/package.json";

/// The bundle's files by path inside the package (`index.js`, `v4/core/core.js`, `LICENSE`).
fn zod_files() -> &'static BTreeMap<String, String> {
    static FILES: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    FILES.get_or_init(|| {
        // The bundle is the build's own output: it inflates and parses, or the build is broken.
        let json = miniz_oxide::inflate::decompress_to_vec_with_limit(ZOD_DEFLATED, 64 << 20)
            .unwrap_or_default();
        serde_json::from_slice(&json).unwrap_or_default()
    })
}

/// A bundled file by its path in a folder (`node_modules/zod/index.js`).
pub fn zod_file(path: &str) -> Option<&'static str> {
    path.strip_prefix("node_modules/zod/")
        .and_then(|inner| zod_files().get(inner))
        .map(String::as_str)
}

/// The bundled zod's license text.
pub fn zod_license() -> &'static str {
    zod_file("node_modules/zod/LICENSE").unwrap_or_default()
}

/// A bundled file compiled, from this process's cache after the first time.
pub fn compile_zod_file(path: &str) -> Option<Result<CompiledModule, CompileError>> {
    static CACHE: OnceLock<Mutex<HashMap<String, CompiledModule>>> = OnceLock::new();
    let source = zod_file(path)?;
    let cache = CACHE.get_or_init(Default::default);
    if let Some(module) = cache.lock().ok().and_then(|c| c.get(path).cloned()) {
        return Some(Ok(module));
    }
    let compiled = compile(path, source);
    if let (Ok(module), Ok(mut cache)) = (&compiled, cache.lock()) {
        cache.insert(path.to_string(), module.clone());
    }
    Some(compiled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_holds_zods_modules_and_license() {
        assert!(
            zod_file(ZOD_MANIFEST)
                .unwrap()
                .contains("\"name\": \"zod\"")
        );
        assert!(zod_file("node_modules/zod/index.js").is_some());
        assert!(zod_file("node_modules/zod/v3/index.js").is_some());
        assert!(zod_file("node_modules/zod/v4/mini/index.js").is_some());
        assert!(zod_file("node_modules/zod/index.cjs").is_none());
        assert!(zod_file("node_modules/zod/src/index.ts").is_none());
        assert!(zod_file("zod/index.js").is_none());
        assert!(zod_license().contains("MIT License"));
        assert!(ZOD_VERSION.starts_with("4."));
    }
}
