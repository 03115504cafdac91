//! Reading a project on the laptop: the folder as the server would read it, planned here with the
//! server's own planner so that its mistakes show before anything is sent, and the files of
//! `node_modules` that its imports reach added to what is sent (`nango.deploy(config, files)` takes
//! packages from `files` as a folder deploy takes them from disk).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use pg_nango_core::deploy::folder::{read_folder, read_package};
use pg_nango_core::deploy::zero_yaml::{DefinitionLimits, plan_zero_yaml};
use pg_nango_core::deploy::{DeploymentPlan, plan_with_packages};

use crate::output::Output;

/// The planner's limits on a zero-YAML project's definitions, as generous as the server's defaults allow:
/// the server checks again with its own.
const DEFINITION_TIMEOUT: Duration = Duration::from_secs(30);
const DEFINITION_MEMORY: usize = 256 << 20;

/// A project ready to send: `nango.yaml` (none for zero-YAML) and every file the deploy reads.
pub struct Project {
    pub config: Option<String>,
    pub files: BTreeMap<String, String>,
    /// How many of `files` are package files from `node_modules`.
    pub package_files: usize,
    pub plan: DeploymentPlan,
}

/// Reads and plans the project in `dir`.
pub fn read(dir: &Path, out: &Output) -> anyhow::Result<Project> {
    let spinner = out.spinner(&format!("reading {}", dir.display()));
    let folder = read_folder(dir).map_err(|e| anyhow!("{e}; nothing was sent"))?;
    spinner.set_message(format!("compiling {} files", folder.files.len()));
    let read_packages = RefCell::new(BTreeMap::new());
    let packages = |relative: &str| {
        let text = read_package(dir, relative)?;
        read_packages
            .borrow_mut()
            .insert(relative.to_string(), text.clone());
        Some(text)
    };
    // The server enforces its own minimum frequency; any frequency is let through here.
    let min_frequency = Duration::from_secs(1);
    let planned = match &folder.config {
        Some(config) => plan_with_packages(config, &folder.files, min_frequency, &packages),
        None => plan_zero_yaml(
            &folder.files,
            min_frequency,
            &packages,
            DefinitionLimits {
                timeout: DEFINITION_TIMEOUT,
                memory_bytes: DEFINITION_MEMORY,
                cancelled: || false,
            },
        ),
    };
    spinner.finish_and_clear();
    let plan = planned
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("{} does not deploy; nothing was sent", dir.display()))?;
    let packages = read_packages.into_inner();
    let package_files = packages.len();
    let mut files = folder.files;
    files.extend(packages);
    Ok(Project {
        config: folder.config,
        files,
        package_files,
        plan,
    })
}
