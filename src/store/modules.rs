//! The deployed modules a process keeps from run to run. A run worker's next run is most often of the same
//! deploy: it then reads only the hashes of `nango.files` (`known_files` of `nango._script_context`), not
//! their text, and declares each module from the bytecode its first run compiled (see
//! [`StoredModule`]). For a project that imports zod that is about 2 MB of JavaScript and source maps not
//! read, and 14 ms of compiling not done, per run.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use pg_nango_core::script::{ModuleMap, StoredModule};
use serde::{Deserialize, Deserializer};

/// A deployed module as `nango._integration_context` gives it: its hash, and its text unless this process
/// said it holds the module.
#[derive(Debug, Deserialize)]
struct DeployedFile {
    /// None from a database not yet updated to 0.2.0 (`ALTER EXTENSION pg_nango UPDATE`): nothing is kept.
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    js: Option<String>,
    #[serde(default)]
    source_map: Option<String>,
}

thread_local! {
    /// The modules of the last run by path, with their hashes.
    static KEPT: RefCell<HashMap<String, (String, Arc<StoredModule>)>> = RefCell::new(HashMap::new());
}

/// The hashes of the modules this process holds, for `known_files`.
pub fn known_hashes() -> Vec<String> {
    KEPT.with(|kept| {
        kept.borrow()
            .values()
            .map(|(hash, _)| hash.clone())
            .collect()
    })
}

/// Forgets the modules this process holds, after a claim that could not read them: the next claim reads
/// every file's text (and calls the one-argument form, should the function have changed under it).
pub fn forget() {
    KEPT.with(|kept| kept.borrow_mut().clear());
}

/// The call of `nango._script_context` for the connection `connection` (an SQL expression) in a statement
/// whose parameter `$known` is [`known_hashes`]. While this process holds no module, the call has one
/// argument, which every version of the function takes: a database whose extension is not yet updated
/// to 0.2.0 runs its syncs with this library too, every file coming with its text.
pub fn script_context_call(connection: &str, known: usize) -> String {
    if KEPT.with(|kept| kept.borrow().is_empty()) {
        format!("nango._script_context({connection})")
    } else {
        format!("nango._script_context({connection}, ${known})")
    }
}

/// Reads the `files` of a run's context into its modules: those sent without text are the ones kept, the
/// others new. Keeps exactly these for the next run, so what a process holds is one deploy's modules.
pub fn deserialize_files<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<ModuleMap, D::Error> {
    let files: Option<HashMap<String, DeployedFile>> = Option::deserialize(deserializer)?;
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        let (mut modules, mut now) = (HashMap::new(), HashMap::new());
        for (path, file) in files.unwrap_or_default() {
            let module = match file.js {
                Some(js) => Arc::new(StoredModule::new(js, file.source_map)),
                None => match kept.remove(&path) {
                    Some((hash, module)) if Some(&hash) == file.hash.as_ref() => module,
                    // Sent without its text only when its hash was among those this process holds.
                    _ => {
                        return Err(serde::de::Error::custom(format!(
                            "the module \"{path}\" came without its text and this process does not hold it"
                        )));
                    }
                },
            };
            modules.insert(path.clone(), module.clone());
            if let Some(hash) = file.hash {
                now.insert(path, (hash, module));
            }
        }
        *kept = now;
        Ok(Arc::new(modules))
    })
}
