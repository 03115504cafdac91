//! Planning a deployment of Nango's zero-YAML format: a project with an `index.ts` and no `nango.yaml`.
//!
//! As Nango's CLI does it: the entries are the side-effect imports `import './<integration>/<kind>/<name>.js'`
//! of `index.ts` (nothing else counts); each entry's top level runs (in QuickJS, see
//! [`crate::script::definitions`]) and its default export is the definition `createSync`/`createAction`/
//! `createOnEvent` returned; the definitions are checked with the compiler's rules and messages and mapped
//! to what a `nango.yaml` deploy stores: frequency, sync type, models with their JSON Schema (made by zod
//! itself), the metadata and action input/output models named as the CLI names them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{DeployError, DeploymentPlan, ProjectFormat, Scripted, compile_reachable, with_zod};
use crate::config::frequency::{FrequencyError, parse_frequency_with_minimum};
use crate::config::json_schema::model_from_json_schema_text;
use crate::config::{
    ActionConfig, Endpoint, IntegrationConfig, Model, NangoConfig, ON_EVENTS, OnEventConfig,
    SyncConfig, SyncType, check_name,
};
use crate::script::StoredModule;
use crate::script::checks::check_file;
use crate::script::definitions::{RawDefinition, read_definitions};

/// The entry list of a zero-YAML project.
pub const INDEX_FILE: &str = "index.ts";

/// How long, and with how much memory, the top levels of a project's entries may run at deploy.
#[derive(Debug, Clone, Copy)]
pub struct DefinitionLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
    /// Polled while the code runs: true stops it (the deploying session was cancelled).
    pub cancelled: fn() -> bool,
}

/// One entry of `index.ts`: the file it names and the line it is on.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryPoint {
    pub file: String,
    pub line: usize,
}

/// Plans a zero-YAML deployment of `files` (path → source, `index.ts` among them).
pub fn plan_zero_yaml(
    files: &BTreeMap<String, String>,
    min_frequency: Duration,
    packages: &dyn Fn(&str) -> Option<String>,
    limits: DefinitionLimits,
) -> Result<DeploymentPlan, DeployError> {
    let index = files.get(INDEX_FILE).ok_or_else(|| DeployError::File {
        file: INDEX_FILE.into(),
        message: "the folder has neither a nango.yaml nor an index.ts; a zero-YAML project lists its scripts in index.ts".into(),
    })?;
    let entries = entry_points(index, files)?;
    let entry_files: Vec<&str> = entries.iter().map(|e| e.file.as_str()).collect();
    let (zod, bundled) = with_zod(files, packages);
    // Nango's compile checks run on each TypeScript file of the project the entries reach, before its
    // imports are resolved (a refused import gets the compiler's message, not "not installed").
    let mut warnings = Vec::new();
    let mut check = |path: &str, source: &str| {
        if !path.ends_with(".ts") {
            return Ok(());
        }
        let entry = entry_files.contains(&path);
        warnings.extend(
            check_file(path, source, entry).map_err(|e| DeployError::File {
                file: format!("{}:{}:{}", e.file, e.line, e.column),
                message: e.message,
            })?,
        );
        Ok(())
    };
    let modules = compile_reachable(files, &zod, &entry_files, bundled, &mut check)?;
    let stored: HashMap<String, StoredModule> = modules
        .iter()
        .map(|(path, (_, module))| {
            (
                path.clone(),
                StoredModule::new(module.js.clone(), module.source_map.clone()),
            )
        })
        .collect();
    let entry_paths: Vec<String> = entries.iter().map(|e| e.file.clone()).collect();
    let raw = read_definitions(&stored, &entry_paths, limits).map_err(|e| DeployError::File {
        file: e.file,
        message: e.message,
    })?;
    let mut project = Project {
        warnings,
        ..Project::default()
    };
    for definition in &raw {
        project.add(definition, min_frequency)?;
    }
    project.check_integrations()?;
    Ok(project.into_plan(modules, index))
}

/// The entries of `index.ts`, as the CLI finds them: lines `import './<path>'` (`.js` added when the path
/// has no extension), each naming a `.ts` file of the folder by its `.js` name.
pub fn entry_points(
    index: &str,
    files: &BTreeMap<String, String>,
) -> Result<Vec<EntryPoint>, DeployError> {
    let mut entries = Vec::new();
    for (number, line) in index.lines().enumerate() {
        let Some(path) = side_effect_import(line) else {
            continue;
        };
        let at = |message: String| DeployError::File {
            file: format!("{INDEX_FILE}:{}", number + 1),
            message,
        };
        let with_js = if path.ends_with(".js") {
            path.to_string()
        } else {
            format!("{path}.js")
        };
        let relative = with_js.trim_start_matches("./");
        let typescript = format!("{}.ts", relative.trim_end_matches(".js"));
        let file = [typescript.as_str(), relative]
            .into_iter()
            .find(|candidate| files.contains_key(*candidate))
            .ok_or_else(|| {
                at(format!(
                    "imports '{path}', but the folder has no {typescript}"
                ))
            })?;
        if relative
            .split('/')
            .any(|part| part == ".." || part.is_empty())
        {
            return Err(at(format!(
                "imports '{path}', which leaves the project folder"
            )));
        }
        if relative.split('/').count() < 3 {
            return Err(at(format!(
                "imports '{path}'; a script must be at <integration>/<syncs|actions|on-events>/<name>.ts"
            )));
        }
        if !entries.iter().any(|e: &EntryPoint| e.file == file) {
            entries.push(EntryPoint {
                file: file.to_string(),
                line: number + 1,
            });
        }
    }
    if entries.is_empty() {
        return Err(DeployError::File {
            file: INDEX_FILE.into(),
            message: "No entry points found in index.ts (list each script as import './<integration>/syncs/<name>.js';)".into(),
        });
    }
    Ok(entries)
}

/// The path of a line `import './x/y.js';` (at the start of the line, single or double quotes).
fn side_effect_import(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("import ")?;
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &rest[1..];
    let end = rest.find(['\'', '"'])?;
    let path = &rest[..end];
    (rest[end..].starts_with(quote) && path.starts_with("./")).then_some(path)
}

/// The definitions read so far, by integration.
#[derive(Default)]
struct Project {
    integrations: Vec<IntegrationConfig>,
    syncs: Vec<Scripted<SyncConfig>>,
    actions: Vec<Scripted<ActionConfig>>,
    on_events: Vec<Scripted<OnEventConfig>>,
    models: BTreeMap<String, Model>,
    /// The integration whose definition each model came from, for the warning on a clash.
    model_owner: BTreeMap<String, (String, Value)>,
    warnings: Vec<String>,
}

/// Where an entry lies: integration, kind folder, script name.
struct Place<'a> {
    file: &'a str,
    integration: String,
    folder: String,
    name: String,
}

impl<'a> Place<'a> {
    fn of(file: &'a str) -> Place<'a> {
        let parts: Vec<&str> = file.split('/').collect();
        let name = parts[parts.len() - 1];
        let name = name
            .strip_suffix(".ts")
            .or_else(|| name.strip_suffix(".js"))
            .unwrap_or(name);
        Place {
            file,
            integration: parts[parts.len() - 3].to_string(),
            folder: parts[parts.len() - 2].to_string(),
            name: name.to_string(),
        }
    }

    fn error(&self, property: &str, message: impl std::fmt::Display) -> DeployError {
        DeployError::File {
            file: self.file.to_string(),
            message: if property.is_empty() {
                message.to_string()
            } else {
                format!("{property}: {message}")
            },
        }
    }

    /// `ActionInput_<integration>_<name>`, …: the integration with non-alphanumerics as `_`, the name without.
    fn model_name(&self, prefix: &str) -> String {
        let integration: String = self
            .integration
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name: String = self
            .name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        format!("{prefix}_{integration}_{name}")
    }
}

/// A definition's fields, read with a located error for each wrong type.
struct Fields<'a> {
    place: &'a Place<'a>,
    object: &'a Map<String, Value>,
    helper: &'static str,
}

impl Fields<'_> {
    fn property(&self, key: &str) -> String {
        format!("{} > {key}", self.helper)
    }

    fn string(&self, key: &str) -> Result<Option<String>, DeployError> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.place.error(&self.property(key), "must be a string")),
        }
    }

    fn bool(&self, key: &str) -> bool {
        self.object.get(key) == Some(&Value::Bool(true))
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, DeployError> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    self.place
                        .error(&self.property(key), "must be an array of strings")
                }),
            Some(_) => Err(self
                .place
                .error(&self.property(key), "must be an array of strings")),
        }
    }

    fn endpoint(&self, key: &str, value: &Value) -> Result<Endpoint, DeployError> {
        let bad = || {
            self.place.error(
                &self.property(key),
                "an endpoint must be { method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: '/…', group?: string }",
            )
        };
        let method = value
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(bad)?;
        let path = value.get("path").and_then(Value::as_str).ok_or_else(bad)?;
        if !["GET", "POST", "PATCH", "PUT", "DELETE"].contains(&method) || !path.starts_with('/') {
            return Err(bad());
        }
        let group = match value.get("group") {
            None | Some(Value::Null) => None,
            Some(Value::String(g)) => Some(g.clone()),
            Some(_) => return Err(bad()),
        };
        Ok(Endpoint {
            method: method.to_string(),
            path: path.to_string(),
            group,
        })
    }

    fn require_exec(&self) -> Result<(), DeployError> {
        if self.object.get("exec") == Some(&Value::Bool(true)) {
            Ok(())
        } else {
            Err(self
                .place
                .error(&self.property("exec"), "must be a function"))
        }
    }
}

impl Project {
    fn add(&mut self, raw: &RawDefinition, min_frequency: Duration) -> Result<(), DeployError> {
        let place = Place::of(&raw.entry);
        check_name(&place.name).map_err(|m| place.error("", m))?;
        let object = match &raw.definition {
            Value::Object(object) => object,
            _ => return Err(place.error("", "its definition could not be read")),
        };
        if let Some(error) = object.get("error").and_then(Value::as_str) {
            return Err(place.error("", error));
        }
        let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
        let (helper, folder) = match kind {
            "sync" => ("createSync", "syncs"),
            "action" => ("createAction", "actions"),
            "onEvent" => ("createOnEvent", "on-events"),
            "function" => {
                return Err(place.error(
                    "",
                    "createFunction (nango/experimental) is not supported: Nango deploys functions through a separate API; define a sync or an action",
                ));
            }
            _ => {
                return Err(place.error(
                    "",
                    format!("{kind} definitions are not supported; define the script with createSync, createAction or createOnEvent"),
                ));
            }
        };
        if place.folder != folder {
            return Err(place.error(
                "",
                format!(
                    "is defined with {helper} but lies in {}/{}/; Nango's deploy reads it from {}/{folder}/{}.ts",
                    place.integration, place.folder, place.integration, place.name
                ),
            ));
        }
        let fields = Fields {
            place: &place,
            object,
            helper,
        };
        fields.require_exec()?;
        let integration = self.integration(&place.integration);
        let duplicate = match kind {
            "sync" => integration.syncs.iter().any(|s| s.name == place.name),
            "action" => integration.actions.iter().any(|a| a.name == place.name),
            _ => self
                .on_events
                .iter()
                .any(|e| e.integration == place.integration && e.config.name == place.name),
        };
        if duplicate {
            return Err(place.error(
                "",
                format!(
                    "{} {}/{} is listed twice in index.ts",
                    &folder[..folder.len() - 1],
                    place.integration,
                    place.name
                ),
            ));
        }
        match kind {
            "sync" => self.add_sync(&place, &fields, min_frequency),
            "action" => self.add_action(&place, &fields),
            _ => self.add_on_event(&place, &fields),
        }
    }

    fn integration(&mut self, key: &str) -> &mut IntegrationConfig {
        if let Some(index) = self.integrations.iter().position(|i| i.key == key) {
            return &mut self.integrations[index];
        }
        self.integrations.push(IntegrationConfig {
            key: key.to_string(),
            provider: None,
            syncs: Vec::new(),
            actions: Vec::new(),
            on_events: Vec::new(),
        });
        self.integrations.last_mut().expect("just pushed")
    }

    fn add_sync(
        &mut self,
        place: &Place,
        fields: &Fields,
        min_frequency: Duration,
    ) -> Result<(), DeployError> {
        let runs = fields
            .string("frequency")?
            .ok_or_else(|| place.error("createSync > frequency", "is required"))?;
        let interval = parse_frequency_with_minimum(&runs, min_frequency).map_err(|e| match e {
            FrequencyError::Invalid(_) => place.error(
                "createSync > frequency",
                "Interval is invalid, check syntax here https://github.com/vercel/ms",
            ),
            too_short => place.error("createSync > frequency", too_short),
        })?;
        // Each model's schema comes as JSON text, in zod's property order.
        let models: Vec<(String, String)> = match fields.object.get("models") {
            Some(Value::Array(pairs)) => pairs
                .iter()
                .filter_map(|pair| {
                    Some((
                        pair.get(0)?.as_str()?.to_string(),
                        pair.get(1)?.as_str()?.to_string(),
                    ))
                })
                .collect(),
            _ => {
                return Err(place.error(
                    "createSync > models",
                    "is required: an object of model name: zod schema",
                ));
            }
        };
        if models.is_empty() {
            return Err(place.error("createSync > models", "must name at least one model"));
        }
        let endpoints = match fields.object.get("endpoints") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|item| fields.endpoint("endpoints", item))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => {
                return Err(place.error("createSync > endpoints", "must be an array of endpoints"));
            }
        };
        if endpoints.as_ref().is_some_and(|e| e.len() != models.len()) {
            return Err(place.error(
                "createSync > endpoints",
                "The number of endpoints doesn't match the number of models. You need as many endpoints as models",
            ));
        }
        let sync_type = match fields.string("syncType")?.as_deref() {
            None | Some("full") => SyncType::Full,
            Some("incremental") => SyncType::Incremental,
            Some(_) => {
                return Err(place.error("createSync > syncType", "must be 'full' or 'incremental'"));
            }
        };
        let track_deletes = fields.bool("trackDeletes");
        if sync_type == SyncType::Incremental && track_deletes {
            return Err(place.error(
                "createSync > trackDeletes",
                "Track deletes is not supported for incremental syncs",
            ));
        }
        if track_deletes {
            self.warnings.push(format!(
                "{}: createSync > trackDeletes is deprecated; call nango.trackDeletesStart/trackDeletesEnd in exec instead",
                place.file
            ));
        }
        let endpoints = endpoints.unwrap_or_default();
        let mut seen = BTreeSet::new();
        for endpoint in &endpoints {
            let key = endpoint.key();
            if !seen.insert(key.clone()) {
                return Err(duplicate_endpoint(
                    place.file,
                    "createSync > endpoints",
                    &key,
                ));
            }
        }
        let mut definitions = Map::new();
        for (name, text) in &models {
            if !valid_model_name(name) {
                return Err(place.error(
                    "createSync > models",
                    format!("Model \"{name}\" contains invalid characters. It should start with an uppercase and only contains alphanumeric characters"),
                ));
            }
            let located = |e: String| place.error(&format!("createSync > models > {name}"), e);
            let model = model_from_json_schema_text(name, text).map_err(located)?;
            let schema: Value = serde_json::from_str(text).map_err(|e| located(e.to_string()))?;
            if model.field("id").is_none() {
                return Err(place.error(
                    &format!("createSync > models > {name}"),
                    "a sync's model must have an id field (z.object({ id: z.string(), … }))",
                ));
            }
            self.add_model(&place.integration, model, &schema);
            definitions.insert(name.clone(), schema);
        }
        let metadata_name = match fields.object.get("metadata") {
            Some(schema) if !schema.is_null() => {
                let name = place.model_name("SyncMetadata");
                definitions.insert(name.clone(), schema.clone());
                Some(name)
            }
            _ => None,
        };
        let webhook_subscriptions = fields.strings("webhookSubscriptions")?;
        match fields.object.get("onWebhook") {
            Some(Value::Bool(false)) => {
                return Err(place.error("createSync > onWebhook", "must be a function"));
            }
            Some(Value::Bool(true)) if webhook_subscriptions.is_empty() => {
                self.warnings.push(format!(
                    "{}: createSync has onWebhook but no webhookSubscriptions; nango.handle_webhook runs it only when called without a subscription",
                    place.file
                ));
            }
            _ => {}
        }
        let config = SyncConfig {
            name: place.name.clone(),
            description: fields.string("description")?.unwrap_or_default(),
            runs,
            frequency_secs: interval.as_secs().max(1),
            output: models.iter().map(|(name, _)| name.clone()).collect(),
            sync_type,
            track_deletes,
            auto_start: fields.bool("autoStart"),
            endpoints,
            input: metadata_name,
            scopes: fields.strings("scopes")?,
            version: fields.string("version")?.unwrap_or_default(),
            webhook_subscriptions,
            json_schema: Some(json!({ "definitions": definitions })),
        };
        self.integration(&place.integration)
            .syncs
            .push(config.clone());
        self.syncs.push(Scripted {
            integration: place.integration.clone(),
            config,
            entry_file: place.file.to_string(),
        });
        Ok(())
    }

    fn add_action(&mut self, place: &Place, fields: &Fields) -> Result<(), DeployError> {
        let mut definitions = Map::new();
        let mut schema_of = |key: &str, prefix: &str| -> Result<String, DeployError> {
            let schema = fields
                .object
                .get(key)
                .filter(|s| !s.is_null())
                .ok_or_else(|| {
                    place.error(
                        &format!("createAction > {key}"),
                        "is required: a zod schema (z.void() for none)",
                    )
                })?;
            let name = place.model_name(prefix);
            definitions.insert(name.clone(), schema.clone());
            Ok(name)
        };
        let input = schema_of("input", "ActionInput")?;
        let output = schema_of("output", "ActionOutput")?;
        let endpoint = match fields.object.get("endpoint") {
            None | Some(Value::Null) => None,
            Some(value) => Some(fields.endpoint("endpoint", value)?),
        };
        let config = ActionConfig {
            name: place.name.clone(),
            description: fields.string("description")?.unwrap_or_default(),
            input: Some(input),
            output: vec![output],
            endpoint,
            scopes: fields.strings("scopes")?,
            version: fields.string("version")?.unwrap_or_default(),
            json_schema: Some(json!({ "definitions": definitions })),
        };
        self.integration(&place.integration)
            .actions
            .push(config.clone());
        self.actions.push(Scripted {
            integration: place.integration.clone(),
            config,
            entry_file: place.file.to_string(),
        });
        Ok(())
    }

    fn add_on_event(&mut self, place: &Place, fields: &Fields) -> Result<(), DeployError> {
        let event = fields.string("event")?.unwrap_or_default();
        if !ON_EVENTS.contains(&event.as_str()) {
            return Err(place.error(
                "createOnEvent > event",
                format!(
                    "must be one of {}",
                    ON_EVENTS.map(|e| format!("'{e}'")).join(", ")
                ),
            ));
        }
        self.integration(&place.integration);
        self.on_events.push(Scripted {
            integration: place.integration.clone(),
            config: OnEventConfig {
                name: place.name.clone(),
                event,
            },
            entry_file: place.file.to_string(),
        });
        Ok(())
    }

    /// Keeps a sync's model. Models share one namespace in the database (one typed view each): a model of
    /// the same name defined differently by another integration keeps the first definition, with a warning.
    fn add_model(&mut self, integration: &str, model: Model, schema: &Value) {
        match self.model_owner.get(&model.name) {
            Some((owner, first)) if first != schema => self.warnings.push(format!(
                "model {} is defined differently by integrations {owner} and {integration}; its typed view follows {owner}'s definition",
                model.name
            )),
            Some(_) => {}
            None => {
                self.model_owner
                    .insert(model.name.clone(), (integration.to_string(), schema.clone()));
                self.models.insert(model.name.clone(), model);
            }
        }
    }

    /// The compiler's checks across an integration: a model (metadata included) belongs to one sync, an
    /// endpoint to one sync or action.
    fn check_integrations(&self) -> Result<(), DeployError> {
        for integration in &self.integrations {
            let mut models = BTreeSet::new();
            let mut endpoints = BTreeSet::new();
            for sync in &integration.syncs {
                let file = format!("{}/syncs/{}.ts", integration.key, sync.name);
                for model in sync.output.iter().chain(&sync.input) {
                    if !models.insert(model.clone()) {
                        return Err(DeployError::File {
                            file,
                            message: format!(
                                "createSync > input: Model \"{model}\" is defined multiple times. Please make sure all models are unique per integration."
                            ),
                        });
                    }
                }
                for endpoint in &sync.endpoints {
                    let key = endpoint.key();
                    if !endpoints.insert(key.clone()) {
                        return Err(duplicate_endpoint(&file, "createSync > endpoints", &key));
                    }
                }
            }
            for action in &integration.actions {
                if let Some(endpoint) = &action.endpoint {
                    let key = endpoint.key();
                    if !endpoints.insert(key.clone()) {
                        let file = format!("{}/actions/{}.ts", integration.key, action.name);
                        return Err(duplicate_endpoint(&file, "createAction > endpoint", &key));
                    }
                }
            }
        }
        Ok(())
    }

    fn into_plan(
        self,
        modules: BTreeMap<String, (String, crate::script::compile::CompiledModule)>,
        index: &str,
    ) -> DeploymentPlan {
        DeploymentPlan {
            format: ProjectFormat::ZeroYaml,
            config_text: index.to_string(),
            config: NangoConfig {
                integrations: self.integrations,
                models: self.models,
                warnings: self.warnings,
            },
            syncs: self.syncs,
            actions: self.actions,
            on_events: self.on_events,
            modules,
        }
    }
}

/// `^[A-Z][a-zA-Z0-9_]+$`, the compiler's rule for model names.
fn valid_model_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn duplicate_endpoint(file: &str, property: &str, key: &str) -> DeployError {
    DeployError::File {
        file: file.to_string(),
        message: format!(
            "{property}: Endpoint \"{key}\" is used multiple times. Please make sure all endpoints are unique per integration."
        ),
    }
}
