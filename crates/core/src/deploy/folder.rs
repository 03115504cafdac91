//! A project folder on disk, read the same way by `nango.deploy(path)` on the server and by the `pg-nango`
//! client: its `nango.yaml` (none for a zero-YAML project, which has an `index.ts`), every script file
//! outside `node_modules`, `dist`, `build` and hidden folders, and the files of its packages on demand.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::is_script_path;
use super::zero_yaml::INDEX_FILE;

/// How deep folders may nest under the project's root before the rest is not read.
pub const MAX_FOLDER_DEPTH: usize = 32;

/// The largest file read (a script or a package's file); a larger one fails the read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The most script files a project may have.
pub const MAX_FILES: usize = 10_000;

/// A project's configuration and script sources, by path relative to its root (`github/syncs/issues.ts`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectFolder {
    /// `nango.yaml`, or `None` for a zero-YAML project.
    pub config: Option<String>,
    pub files: BTreeMap<String, String>,
}

/// Why a project folder could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{} is not a Nango project: it has neither a nango.yaml nor an index.ts (zero-YAML)", .0.display())]
    NotAProject(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{} is larger than {} MB; scripts and their packages are read whole", .0.display(), MAX_FILE_BYTES >> 20)]
    TooLarge(PathBuf),
    #[error("the project has more than {MAX_FILES} script files")]
    TooManyFiles,
}

/// Reads the project at `root`. A folder without `nango.yaml` is zero-YAML if it has `index.ts`.
///
/// Symbolic links to folders are not followed (a link to a parent must not make the walk endless); a
/// linked file is read like any other. Only regular files are read, each of at most [`MAX_FILE_BYTES`].
pub fn read_folder(root: &Path) -> Result<ProjectFolder, FolderError> {
    let config_path = root.join("nango.yaml");
    let config = if config_path.exists() {
        Some(read_file(&config_path)?)
    } else if root.join(INDEX_FILE).is_file() {
        None
    } else if root.is_dir() {
        return Err(FolderError::NotAProject(root.to_path_buf()));
    } else {
        return Err(FolderError::Unreadable {
            path: root.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotFound, "no such folder"),
        });
    };
    let mut files = BTreeMap::new();
    collect(root, root, 0, &mut files)?;
    Ok(ProjectFolder { config, files })
}

/// A regular file's text, refused when larger than [`MAX_FILE_BYTES`].
fn read_file(path: &Path) -> Result<String, FolderError> {
    let unreadable = |source| FolderError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(unreadable(io::Error::other("not a regular file")));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(FolderError::TooLarge(path.to_path_buf()));
    }
    std::fs::read_to_string(path).map_err(unreadable)
}

/// A file of the folder's `node_modules` (`node_modules/zod/package.json`), for the planner's bare
/// imports: `None` for any other path, one that climbs out (`..`), or one that cannot be read.
pub fn read_package(root: &Path, relative: &str) -> Option<String> {
    let inside = relative.starts_with("node_modules/")
        && !relative
            .split('/')
            .any(|part| part == ".." || part.is_empty());
    inside
        .then(|| read_file(&root.join(relative)).ok())
        .flatten()
}

fn collect(
    root: &Path,
    dir: &Path,
    depth: usize,
    files: &mut BTreeMap<String, String>,
) -> Result<(), FolderError> {
    if depth > MAX_FOLDER_DEPTH {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| FolderError::Unreadable {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let relative = path
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        // The entry itself, not what a link points to: a linked folder is not entered.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            let skipped = matches!(
                entry.file_name().to_str(),
                Some("node_modules" | "dist" | "build") | None
            ) || relative.starts_with('.');
            if !skipped {
                collect(root, &path, depth + 1, files)?;
            }
        } else if !kind.is_symlink() || path.is_file() {
            if !is_script_path(&relative) {
                continue;
            }
            if files.len() >= MAX_FILES {
                return Err(FolderError::TooManyFiles);
            }
            files.insert(relative, read_file(&path)?);
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

        // A link to a parent folder is not entered; a linked script is read; a FIFO is not.
        std::os::unix::fs::symlink(&root, root.join("github/loop")).unwrap();
        std::os::unix::fs::symlink(
            root.join("github/syncs/issues.ts"),
            root.join("github/linked.ts"),
        )
        .unwrap();
        let linked = read_folder(&root).unwrap();
        assert_eq!(
            linked.files.keys().collect::<Vec<_>>(),
            [
                "github/linked.ts",
                "github/mappers/issue.ts",
                "github/syncs/issues.ts"
            ]
        );
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("github/fifo.ts"))
            .status()
            .unwrap();
        assert!(status.success());
        let error = read_folder(&root).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("github/fifo.ts: not a regular file"),
            "{error}"
        );
        std::fs::remove_file(root.join("github/fifo.ts")).unwrap();

        std::fs::remove_file(root.join("nango.yaml")).unwrap();
        let error = read_folder(&root).unwrap_err();
        assert!(matches!(error, FolderError::NotAProject(_)), "{error}");
        write("index.ts", "export * from './github/syncs/issues.js';");
        assert_eq!(read_folder(&root).unwrap().config, None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
