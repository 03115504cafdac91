//! A project folder on disk, read the same way by `nango.deploy(path)` on the server and by the `pg-nango`
//! client: its `nango.yaml` (none for a zero-YAML project, which has an `index.ts`), every script file
//! outside `node_modules`, `dist`, `build` and hidden folders, and the files of its packages on demand.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::is_script_path;
use super::zero_yaml::INDEX_FILE;

/// How deep folders may nest under the project's root before the rest is not read (a symbolic link loop
/// must not recurse forever).
pub const MAX_FOLDER_DEPTH: usize = 32;

/// A project's configuration and script sources, by path relative to its root (`github/syncs/issues.ts`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectFolder {
    /// `nango.yaml`, or `None` for a zero-YAML project.
    pub config: Option<String>,
    pub files: BTreeMap<String, String>,
}

/// A file or folder that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct Unreadable {
    pub path: PathBuf,
    pub source: io::Error,
}

/// Reads the project at `root`. A folder without `nango.yaml` is zero-YAML if it has `index.ts`; with
/// neither, the error is the missing `nango.yaml`.
pub fn read_folder(root: &Path) -> Result<ProjectFolder, Unreadable> {
    let config_path = root.join("nango.yaml");
    let config = match std::fs::read_to_string(&config_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound && root.join(INDEX_FILE).is_file() => None,
        Err(source) => {
            return Err(Unreadable {
                path: config_path,
                source,
            });
        }
    };
    let mut files = BTreeMap::new();
    collect(root, root, 0, &mut files)?;
    Ok(ProjectFolder { config, files })
}

/// A file of the folder's `node_modules` (`node_modules/zod/package.json`), for the planner's bare
/// imports: `None` for any other path, one that climbs out (`..`), or one that cannot be read.
pub fn read_package(root: &Path, relative: &str) -> Option<String> {
    let inside = relative.starts_with("node_modules/")
        && !relative
            .split('/')
            .any(|part| part == ".." || part.is_empty());
    inside
        .then(|| std::fs::read_to_string(root.join(relative)).ok())
        .flatten()
}

fn collect(
    root: &Path,
    dir: &Path,
    depth: usize,
    files: &mut BTreeMap<String, String>,
) -> Result<(), Unreadable> {
    let unreadable = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Unreadable { path, source }
    };
    if depth > MAX_FOLDER_DEPTH {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(unreadable(dir))?.flatten() {
        let path = entry.path();
        let relative = path
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        if path.is_dir() {
            let skipped = matches!(
                entry.file_name().to_str(),
                Some("node_modules" | "dist" | "build") | None
            ) || relative.starts_with('.');
            if !skipped {
                collect(root, &path, depth + 1, files)?;
            }
        } else if is_script_path(&relative) {
            let source = std::fs::read_to_string(&path).map_err(unreadable(&path))?;
            files.insert(relative, source);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scripts_and_skips_what_a_deploy_does_not_need() {
        let root = std::env::temp_dir().join(format!("pg_nango_folder_{}", std::process::id()));
        let write = |relative: &str, text: &str| {
            let path = root.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("nango.yaml", "integrations: {}\n");
        write("github/syncs/issues.ts", "export default 1;");
        write("github/mappers/issue.ts", "export const x = 1;");
        write("node_modules/zod/index.js", "export const z = 1;");
        write("dist/github/syncs/issues.js", "compiled");
        write(".nango/schema.ts", "generated");
        write("README.md", "# docs");
        let folder = read_folder(&root).unwrap();
        assert_eq!(folder.config.as_deref(), Some("integrations: {}\n"));
        assert_eq!(
            folder.files.keys().collect::<Vec<_>>(),
            ["github/mappers/issue.ts", "github/syncs/issues.ts"]
        );
        assert_eq!(
            read_package(&root, "node_modules/zod/index.js").as_deref(),
            Some("export const z = 1;")
        );
        assert_eq!(read_package(&root, "node_modules/../nango.yaml"), None);
        assert_eq!(read_package(&root, "github/syncs/issues.ts"), None);

        std::fs::remove_file(root.join("nango.yaml")).unwrap();
        let error = read_folder(&root).unwrap_err();
        assert!(error.to_string().contains("nango.yaml"), "{error}");
        write("index.ts", "export * from './github/syncs/issues.js';");
        assert_eq!(read_folder(&root).unwrap().config, None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
