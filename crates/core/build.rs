//! Bundles the `zod` package, which Nango's runner gives every script, into the library: fetched from the
//! npm registry by `scripts/fetch-npm.sh` (pinned by version and sha512 in `scripts/npm-packages.lock`),
//! its ES-module files, `package.json` and `LICENSE` are written to `$OUT_DIR/zod.json.deflate` as one
//! deflated JSON object (path → text) for `include_bytes!`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("../..");
    let script = root.join("scripts/fetch-npm.sh");
    println!("cargo:rerun-if-changed={}", script.display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("scripts/npm-packages.lock").display()
    );
    let output = Command::new("bash")
        .arg(&script)
        .arg("zod")
        .output()
        .expect("run scripts/fetch-npm.sh (needs bash and curl)");
    if !output.status.success() {
        panic!(
            "scripts/fetch-npm.sh zod failed (the build fetches zod from registry.npmjs.org): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let folder = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let mut files = BTreeMap::new();
    collect(&folder, &folder, &mut files);
    for required in ["package.json", "LICENSE", "index.js"] {
        assert!(
            files.contains_key(required),
            "{} has no {required}",
            folder.display()
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&files["package.json"]).expect("zod's package.json");
    println!(
        "cargo:rustc-env=PG_NANGO_ZOD_VERSION={}",
        manifest["version"].as_str().unwrap_or("unknown")
    );
    let json = serde_json::to_vec(&files).expect("serialize");
    let packed = miniz_oxide::deflate::compress_to_vec(&json, 9);
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("zod.json.deflate");
    std::fs::write(&out, packed).expect("write the zod bundle");
}

/// The package's ES-module files (`*.js`, the package being `"type": "module"`), `package.json` and
/// `LICENSE`, by path inside the package; its TypeScript sources (`src/`) are left out.
fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read the zod folder")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let relative = path
            .strip_prefix(root)
            .expect("inside the package")
            .to_string_lossy()
            .replace('\\', "/");
        if path.is_dir() {
            if relative != "src" {
                collect(root, &path, files);
            }
        } else if relative.ends_with(".js") || relative == "package.json" || relative == "LICENSE" {
            let text = std::fs::read_to_string(&path).expect("read a zod file");
            files.insert(relative, text);
        }
    }
}
