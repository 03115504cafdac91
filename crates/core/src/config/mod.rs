//! `nango.yaml`: the flat v1 format and the v2 `syncs:`/`actions:` format, detected as Nango detects them
//! (by the keys of the first integration), with Nango's validation. Every error names the file and line.

pub mod frequency;
pub mod json_schema;
mod lines;
pub mod models;
pub mod yaml;

use serde::Serialize;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::time::Duration;

pub use frequency::{FrequencyError, parse_frequency, parse_frequency_with_minimum};
pub use models::{Field, FieldType, Model};

/// The name used for the config file in errors.
pub const CONFIG_FILE: &str = "nango.yaml";

/// A deploy-stopping problem in `nango.yaml`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// A parsed `nango.yaml`.
#[derive(Debug, Clone, Serialize)]
pub struct NangoConfig {
    pub integrations: Vec<IntegrationConfig>,
    pub models: BTreeMap<String, Model>,
    pub warnings: Vec<String>,
}

/// One integration (its key is the `provider_config_key`).
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationConfig {
    pub key: String,
    pub provider: Option<String>,
    pub syncs: Vec<SyncConfig>,
    pub actions: Vec<ActionConfig>,
    /// `on-events:` (and the deprecated `post-connection-scripts:`), in the order written.
    pub on_events: Vec<OnEventConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncType {
    Full,
    Incremental,
}

impl SyncType {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncType::Full => "full",
            SyncType::Incremental => "incremental",
        }
    }
}

/// An endpoint declared for a sync or action (`GET /tickets`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    pub method: String,
    pub path: String,
    pub group: Option<String>,
}

impl Endpoint {
    /// `METHOD /path`, what makes two endpoints the same.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncConfig {
    pub name: String,
    pub description: String,
    pub runs: String,
    /// The interval `runs` stands for, in seconds.
    pub frequency_secs: u64,
    pub output: Vec<String>,
    pub sync_type: SyncType,
    pub track_deletes: bool,
    pub auto_start: bool,
    pub endpoints: Vec<Endpoint>,
    pub input: Option<String>,
    pub scopes: Vec<String>,
    pub version: String,
    /// The webhook subscriptions whose payloads the sync's webhook handler takes.
    pub webhook_subscriptions: Vec<String>,
    /// `{definitions: {Model: JSON Schema}}` of its models and metadata, for a zero-YAML sync.
    pub json_schema: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionConfig {
    pub name: String,
    pub description: String,
    pub input: Option<String>,
    pub output: Vec<String>,
    pub endpoint: Option<Endpoint>,
    pub scopes: Vec<String>,
    pub version: String,
    /// `{definitions: {…}}` of its input and output, for a zero-YAML action.
    pub json_schema: Option<serde_json::Value>,
}

/// A script run on a connection's event (`on-events:`, or `createOnEvent`).
#[derive(Debug, Clone, Serialize)]
pub struct OnEventConfig {
    pub name: String,
    /// `post-connection-creation`, `pre-connection-deletion` or `validate-connection`.
    pub event: String,
}

/// The events an on-event script may run on.
pub const ON_EVENTS: [&str; 3] = [
    "post-connection-creation",
    "pre-connection-deletion",
    "validate-connection",
];

/// Parses and validates `nango.yaml`. `min_frequency` is the smallest `runs:` interval accepted.
pub fn parse_config(text: &str, min_frequency: Duration) -> Result<NangoConfig, ConfigError> {
    let root: Value = yaml::parse_bounded(text).map_err(|e| ConfigError {
        file: CONFIG_FILE.into(),
        line: e.line().unwrap_or(1),
        message: format!("invalid YAML: {}", strip_location(&e.to_string())),
    })?;
    let ctx = Ctx { text };
    let root = match root {
        Value::Mapping(m) => m,
        Value::Null => Mapping::new(),
        _ => return Err(ctx.error(&[], "the file must be a mapping with an `integrations` key")),
    };
    let integrations = match root.get("integrations") {
        Some(Value::Mapping(m)) => m.clone(),
        Some(Value::Null) | None => {
            return Err(ctx.error(&[], "Invalid file format, you should have at least an `integrations` property at the root level"));
        }
        Some(_) => {
            return Err(ctx.error(
                &["integrations"],
                "`integrations` must be a mapping of integration keys",
            ));
        }
    };
    let mut warnings = Vec::new();
    let models = match root.get("models") {
        Some(Value::Mapping(m)) => models::parse_models(m, &mut warnings).map_err(|e| {
            let mut path = vec!["models", e.model.as_str()];
            if let Some(field) = &e.field {
                path.push(field);
            }
            ctx.error(&path, &format!("model {}: {}", e.model, e.message))
        })?,
        Some(Value::Null) | None => BTreeMap::new(),
        Some(_) => return Err(ctx.error(&["models"], "`models` must be a mapping of model names")),
    };
    let v2 = integrations
        .values()
        .next()
        .and_then(Value::as_mapping)
        .is_some_and(|first| {
            ["syncs", "actions", "on-events"]
                .iter()
                .any(|k| first.contains_key(*k))
        });
    let mut parsed = Vec::new();
    for (key, value) in &integrations {
        let key = key
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{key:?}"));
        let integration = match value {
            Value::Mapping(m) => m,
            Value::Null => &Mapping::new(),
            _ => {
                return Err(ctx.error(
                    &["integrations", &key],
                    &format!("integration {key} must be a mapping"),
                ));
            }
        };
        let integration = if v2 {
            ctx.integration_v2(&key, integration, &models, min_frequency)?
        } else {
            ctx.integration_v1(&key, integration, &models)?
        };
        parsed.push(integration);
    }
    let mut config = NangoConfig {
        integrations: parsed,
        models,
        warnings,
    };
    ctx.validate(&mut config)?;
    Ok(config)
}

fn strip_location(message: &str) -> String {
    message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_string()
}

struct Ctx<'a> {
    text: &'a str,
}

impl Ctx<'_> {
    fn error(&self, path: &[&str], message: &str) -> ConfigError {
        let line = if path.is_empty() {
            1
        } else {
            lines::line_of(self.text, path).unwrap_or(1)
        };
        ConfigError {
            file: CONFIG_FILE.into(),
            line,
            message: message.to_string(),
        }
    }

    fn integration_v2(
        &self,
        key: &str,
        integration: &Mapping,
        models: &BTreeMap<String, Model>,
        min_frequency: Duration,
    ) -> Result<IntegrationConfig, ConfigError> {
        let provider = integration
            .get("provider")
            .and_then(Value::as_str)
            .map(str::to_string);
        if integration.contains_key("on-events")
            && integration.contains_key("post-connection-scripts")
        {
            return Err(self.error(
                &["integrations", key, "post-connection-scripts"],
                &format!("integration {key}: post-connection-scripts and on-events cannot both be used; post-connection-scripts is deprecated, list its scripts under on-events: post-connection-creation"),
            ));
        }
        let mut syncs = Vec::new();
        if let Some(section) = integration.get("syncs") {
            let section = section.as_mapping().ok_or_else(|| {
                self.error(&["integrations", key, "syncs"], "`syncs` must be a mapping")
            })?;
            for (name, body) in section {
                let name = name.as_str().unwrap_or_default().to_string();
                let path = ["integrations", key, "syncs", name.as_str()];
                let body = body
                    .as_mapping()
                    .ok_or_else(|| self.error(&path, &format!("sync {name} must be a mapping")))?;
                syncs.push(self.sync(key, &name, body, &path, models, Some(min_frequency))?);
            }
        }
        let mut actions = Vec::new();
        if let Some(section) = integration.get("actions") {
            let section = section.as_mapping().ok_or_else(|| {
                self.error(
                    &["integrations", key, "actions"],
                    "`actions` must be a mapping",
                )
            })?;
            for (name, body) in section {
                let name = name.as_str().unwrap_or_default().to_string();
                let path = ["integrations", key, "actions", name.as_str()];
                let body = body.as_mapping().ok_or_else(|| {
                    self.error(&path, &format!("action {name} must be a mapping"))
                })?;
                actions.push(self.action(&name, body, &path, true)?);
            }
        }
        let on_events = self.on_events(key, integration)?;
        Ok(IntegrationConfig {
            key: key.to_string(),
            provider,
            syncs,
            actions,
            on_events,
        })
    }

    /// v1: every key of the integration is a script; `type: action` makes it an action, anything else a sync.
    fn integration_v1(
        &self,
        key: &str,
        integration: &Mapping,
        models: &BTreeMap<String, Model>,
    ) -> Result<IntegrationConfig, ConfigError> {
        let mut syncs = Vec::new();
        let mut actions = Vec::new();
        for (name, body) in integration {
            let name = name.as_str().unwrap_or_default().to_string();
            let path = ["integrations", key, name.as_str()];
            let Some(body) = body.as_mapping() else {
                continue;
            };
            if body.get("type").and_then(Value::as_str) == Some("action") {
                actions.push(self.action(&name, body, &path, false)?);
            } else if body.contains_key("returns") {
                syncs.push(self.sync(key, &name, body, &path, models, None)?);
            }
        }
        Ok(IntegrationConfig {
            key: key.to_string(),
            provider: None,
            syncs,
            actions,
            on_events: Vec::new(),
        })
    }

    fn sync(
        &self,
        integration: &str,
        name: &str,
        body: &Mapping,
        path: &[&str],
        models: &BTreeMap<String, Model>,
        min_frequency: Option<Duration>,
    ) -> Result<SyncConfig, ConfigError> {
        let v2 = min_frequency.is_some();
        check_name(name).map_err(|m| self.error(path, &m))?;
        let runs = match body.get("runs") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(self.error(
                    &child(path, "runs"),
                    "runs must be a string and include the word \"every\".",
                ));
            }
            None if v2 => {
                return Err(self.error(
                    path,
                    &format!("sync {name}: a runs property is required (e.g. runs: every hour)"),
                ));
            }
            None => "every day".to_string(),
        };
        let interval = match min_frequency {
            Some(minimum) => parse_frequency_with_minimum(&runs, minimum),
            None => parse_frequency(&runs),
        }
        .map_err(|e| self.error(&child(path, "runs"), &format!("sync {name}: {e}")))?;
        let output_key = if v2 { "output" } else { "returns" };
        let output = string_list(body.get(output_key)).map_err(|_| {
            self.error(
                &child(path, output_key),
                &format!("{output_key} must be a string or an array of strings."),
            )
        })?;
        if output.is_empty() {
            return Err(self.error(path, &format!("sync {name}: An output property is required to specify what is returned from the sync.")));
        }
        let sync_type = match body.get("sync_type") {
            None => {
                if v2 {
                    SyncType::Full
                } else {
                    SyncType::Incremental
                }
            }
            Some(Value::String(s)) if s == "incremental" => SyncType::Incremental,
            Some(Value::String(s)) if s == "full" => SyncType::Full,
            Some(_) => {
                return Err(self.error(
                    &child(path, "sync_type"),
                    "sync_type must be either 'incremental' or 'full'.",
                ));
            }
        };
        let track_deletes =
            self.bool_field(body, "track_deletes", false, &child(path, "track_deletes"))?;
        // Deletion detection marks everything a run did not see as deleted, which is only right when the
        // run fetches everything. v2 refuses the combination (as Nango's current definitions do); v1 has
        // no sync_type key, so a v1 sync that asks for it is a full sync.
        let sync_type = match sync_type {
            SyncType::Incremental if track_deletes && v2 => {
                return Err(self.error(
                    &child(path, "track_deletes"),
                    &format!("sync {name}: track_deletes cannot be used with sync_type: incremental (an incremental run does not see every record); use sync_type: full, or trackDeletesStart/trackDeletesEnd in the script"),
                ));
            }
            SyncType::Incremental if track_deletes => SyncType::Full,
            other => other,
        };
        let auto_start = self.bool_field(body, "auto_start", true, &child(path, "auto_start"))?;
        let description = self.description(body, &child(path, "description"))?;
        let endpoints = match body.get("endpoint") {
            None if v2 => {
                return Err(self.error(path, &format!("sync {name}: An endpoint property is required to specify how to retrieve the data.")));
            }
            None => Vec::new(),
            Some(value) => self.endpoints(value, "GET", &child(path, "endpoint"))?,
        };
        if v2 && endpoints.len() != output.len() {
            return Err(self.error(
                &child(path, "endpoint"),
                &format!("sync {name}: there are {} endpoints for {} output models; give one endpoint per output model", endpoints.len(), output.len()),
            ));
        }
        for model in &output {
            let Some(definition) = models.get(model) else {
                return Err(self.error(
                    &child(path, output_key),
                    &format!("sync {name}: output model {model} is not defined in models"),
                ));
            };
            if definition.field("id").is_none() {
                return Err(self.error(&["models", model], &format!("model {model} is used as the output of sync {integration}/{name} and must have an id field")));
            }
        }
        Ok(SyncConfig {
            name: name.to_string(),
            description,
            runs,
            frequency_secs: interval.as_secs().max(1),
            output,
            sync_type,
            track_deletes,
            auto_start,
            endpoints,
            input: body
                .get("input")
                .and_then(Value::as_str)
                .map(str::to_string),
            scopes: self.scopes(body, path)?,
            version: self.version(body, path)?,
            webhook_subscriptions: string_list(body.get("webhook-subscriptions")).map_err(
                |_| {
                    self.error(
                        &child(path, "webhook-subscriptions"),
                        "webhook-subscriptions must be a string or an array of strings.",
                    )
                },
            )?,
            json_schema: None,
        })
    }

    fn action(
        &self,
        name: &str,
        body: &Mapping,
        path: &[&str],
        v2: bool,
    ) -> Result<ActionConfig, ConfigError> {
        check_name(name).map_err(|m| self.error(path, &m))?;
        let output_key = if v2 { "output" } else { "returns" };
        let output = string_list(body.get(output_key)).map_err(|_| {
            self.error(
                &child(path, output_key),
                &format!("{output_key} must be a string or an array of strings."),
            )
        })?;
        let endpoint = match body.get("endpoint") {
            None if v2 => {
                return Err(self.error(path, &format!("action {name}: An endpoint property is required to specify how to trigger the action.")));
            }
            None => None,
            Some(value) => self
                .endpoints(value, "POST", &child(path, "endpoint"))?
                .into_iter()
                .next(),
        };
        Ok(ActionConfig {
            name: name.to_string(),
            description: self.description(body, &child(path, "description"))?,
            input: body
                .get("input")
                .and_then(Value::as_str)
                .map(str::to_string),
            output,
            endpoint,
            scopes: self.scopes(body, path)?,
            version: self.version(body, path)?,
            json_schema: None,
        })
    }

    /// `on-events: {post-connection-creation: [name, …], …}`, or `post-connection-scripts: [name, …]` (the
    /// deprecated spelling of `post-connection-creation`).
    fn on_events(
        &self,
        key: &str,
        integration: &Mapping,
    ) -> Result<Vec<OnEventConfig>, ConfigError> {
        let mut on_events = Vec::new();
        if let Some(names) = integration.get("post-connection-scripts") {
            let path = ["integrations", key, "post-connection-scripts"];
            for name in string_list(Some(names)).map_err(|_| {
                self.error(
                    &path,
                    "post-connection-scripts must be a list of script names",
                )
            })? {
                check_name(&name).map_err(|m| self.error(&path, &m))?;
                on_events.push(OnEventConfig {
                    name,
                    event: ON_EVENTS[0].to_string(),
                });
            }
        }
        let Some(section) = integration.get("on-events") else {
            return Ok(on_events);
        };
        let path = ["integrations", key, "on-events"];
        let section = section.as_mapping().ok_or_else(|| {
            self.error(
                &path,
                "`on-events` must be a mapping of event: [script names]",
            )
        })?;
        for (event, names) in section {
            let event = event.as_str().unwrap_or_default();
            let path = ["integrations", key, "on-events", event];
            if !ON_EVENTS.contains(&event) {
                return Err(self.error(
                    &path,
                    &format!(
                        "unknown event \"{event}\"; the events are {}",
                        ON_EVENTS.join(", ")
                    ),
                ));
            }
            for name in string_list(Some(names)).map_err(|_| {
                self.error(
                    &path,
                    &format!("on-events: {event} must be a list of script names"),
                )
            })? {
                check_name(&name).map_err(|m| self.error(&path, &m))?;
                on_events.push(OnEventConfig {
                    name,
                    event: event.to_string(),
                });
            }
        }
        Ok(on_events)
    }

    fn scopes(&self, body: &Mapping, path: &[&str]) -> Result<Vec<String>, ConfigError> {
        scopes(body.get("scopes")).map_err(|_| {
            self.error(
                &child(path, "scopes"),
                "scopes must be a string or an array of strings.",
            )
        })
    }

    fn version(&self, body: &Mapping, path: &[&str]) -> Result<String, ConfigError> {
        version(body.get("version")).map_err(|_| {
            self.error(
                &child(path, "version"),
                "version must be an integer, string or a semver string (1, \"1\" or \"1.0.0\").",
            )
        })
    }

    fn bool_field(
        &self,
        body: &Mapping,
        key: &str,
        default: bool,
        path: &[&str],
    ) -> Result<bool, ConfigError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.error(path, &format!("{key} must be a boolean."))),
        }
    }

    fn description(&self, body: &Mapping, path: &[&str]) -> Result<String, ConfigError> {
        match body.get("description") {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.trim().to_string()),
            Some(_) => Err(self.error(path, "description must be a string.")),
        }
    }

    fn endpoints(
        &self,
        value: &Value,
        default_method: &str,
        path: &[&str],
    ) -> Result<Vec<Endpoint>, ConfigError> {
        let items: Vec<&Value> = match value {
            Value::Sequence(items) => items.iter().collect(),
            other => vec![other],
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => {
                    let (method, path_part) = match s.split_once(' ') {
                        Some((m, p)) => (m.trim().to_uppercase(), p.trim().to_string()),
                        None => (default_method.to_string(), s.trim().to_string()),
                    };
                    if !path_part.starts_with('/')
                        || !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str())
                    {
                        return Err(self.error(
                            path,
                            &format!("endpoint \"{s}\" must look like \"GET /path\""),
                        ));
                    }
                    Ok(Endpoint {
                        method,
                        path: path_part,
                        group: None,
                    })
                }
                Value::Mapping(m) => {
                    let endpoint_path = m.get("path").and_then(Value::as_str).unwrap_or_default();
                    if !endpoint_path.starts_with('/') {
                        return Err(self.error(path, "endpoint path must start with /"));
                    }
                    Ok(Endpoint {
                        method: m
                            .get("method")
                            .and_then(Value::as_str)
                            .unwrap_or(default_method)
                            .to_uppercase(),
                        path: endpoint_path.to_string(),
                        group: m.get("group").and_then(Value::as_str).map(str::to_string),
                    })
                }
                _ => Err(self.error(
                    path,
                    "endpoint must be a string (\"GET /path\") or a mapping with method and path",
                )),
            })
            .collect()
    }

    /// Checks across integrations: a model is the output of at most one sync of an integration, and an
    /// endpoint is declared once per integration.
    fn validate(&self, config: &mut NangoConfig) -> Result<(), ConfigError> {
        let names: Vec<String> = config.models.keys().cloned().collect();
        for integration in &config.integrations {
            for action in &integration.actions {
                for output in action
                    .output
                    .iter()
                    .filter(|o| !config.models.contains_key(*o))
                {
                    let path = [
                        "integrations",
                        integration.key.as_str(),
                        "actions",
                        action.name.as_str(),
                        "output",
                    ];
                    let ty = models::parse_type_expression(output, &names, &mut config.warnings)
                        .map_err(|e| self.error(&path, &format!("action {}: {e}", action.name)))?;
                    if !matches!(ty, FieldType::Union { .. }) {
                        config.warnings.push(format!(
                            "The output {output} of action {}/{} is not a model; it is used as a literal type",
                            integration.key, action.name
                        ));
                    }
                }
            }
            let mut outputs: BTreeMap<&str, &str> = BTreeMap::new();
            for sync in &integration.syncs {
                for model in &sync.output {
                    if let Some(other) = outputs.insert(model, &sync.name) {
                        return Err(self.error(
                            &["integrations", &integration.key, "syncs", &sync.name, "output"],
                            &format!("model {model} is the output of both sync {other} and sync {} of integration {}", sync.name, integration.key),
                        ));
                    }
                }
            }
            let declared = integration
                .syncs
                .iter()
                .flat_map(|sync| {
                    sync.endpoints
                        .iter()
                        .map(move |e| ("syncs", sync.name.as_str(), e))
                })
                .chain(integration.actions.iter().filter_map(|action| {
                    action
                        .endpoint
                        .as_ref()
                        .map(|e| ("actions", action.name.as_str(), e))
                }));
            let mut endpoints: BTreeMap<String, &str> = BTreeMap::new();
            for (section, script, endpoint) in declared {
                let path = [
                    "integrations",
                    integration.key.as_str(),
                    section,
                    script,
                    "endpoint",
                ];
                let key = endpoint.key();
                if let Some(other) = endpoints.insert(key.clone(), script) {
                    return Err(self.error(
                        &path,
                        &format!("endpoint {key} is declared by both {other} and {script}"),
                    ));
                }
                if let Some(missing) = path_models(&endpoint.path)
                    .into_iter()
                    .find(|model| !config.models.contains_key(*model))
                {
                    return Err(self.error(
                        &path,
                        &format!("endpoint {key} refers to model {missing}, which is not defined in models"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `path` with one more key.
fn child<'a>(path: &[&'a str], key: &'a str) -> Vec<&'a str> {
    path.iter().copied().chain(std::iter::once(key)).collect()
}

pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "script name \"{name}\" may use letters, digits, _ and - only"
        ));
    }
    Ok(())
}

fn string_list(value: Option<&Value>) -> Result<Vec<String>, ()> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or(()))
            .collect(),
        Some(_) => Err(()),
    }
}

fn scopes(value: Option<&Value>) -> Result<Vec<String>, ()> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or(()))
            .collect(),
        Some(_) => Err(()),
    }
}

fn version(value: Option<&Value>) -> Result<String, ()> {
    let semver = |s: &str| {
        let parts: Vec<&str> = s.split('.').collect();
        (parts.len() == 1 || parts.len() == 3)
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    };
    match value {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if semver(s) => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
        Some(_) => Err(()),
    }
}

/// The model names an endpoint path refers to: `{Model}` or `{Model:field}`.
fn path_models(path: &str) -> Vec<&str> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split('}').next())
        .map(|inside| inside.split(':').next().unwrap_or_default().trim())
        .filter(|name| name.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(30);

    const V2: &str = "integrations:
  github:
    syncs:
      issues:
        runs: every half hour
        output: GithubIssue
        sync_type: incremental
        track_deletes: false
        description: |
          Fetches issues
        endpoint: GET /github/issues
    actions:
      create-issue:
        endpoint: POST /github/issues
        input: GithubIssue
        output: GithubIssue
models:
  GithubIssue:
    id: integer
    title: string
";

    #[test]
    fn parses_v2() {
        let config = parse_config(V2, MIN).unwrap();
        let github = &config.integrations[0];
        let sync = &github.syncs[0];
        assert_eq!(sync.name, "issues");
        assert_eq!(sync.frequency_secs, 1800);
        assert_eq!(sync.sync_type, SyncType::Incremental);
        assert!(sync.auto_start);
        assert_eq!(sync.description, "Fetches issues");
        assert_eq!(
            sync.endpoints[0],
            Endpoint {
                method: "GET".into(),
                path: "/github/issues".into(),
                group: None
            }
        );
        assert_eq!(github.actions[0].name, "create-issue");
        assert_eq!(github.actions[0].endpoint.as_ref().unwrap().method, "POST");
    }

    #[test]
    fn parses_v1() {
        let text = "integrations:\n  provider:\n    sync:\n      type: sync\n      runs: every day\n      returns: GithubIssue\n    \
                    createIssue:\n      type: action\n      returns: GithubIssue\nmodels:\n  GithubIssue:\n    id: string\n";
        let config = parse_config(text, MIN).unwrap();
        let integration = &config.integrations[0];
        assert_eq!(integration.syncs[0].sync_type, SyncType::Incremental);
        assert_eq!(integration.syncs[0].output, vec!["GithubIssue"]);
        assert_eq!(integration.actions[0].name, "createIssue");
    }

    #[test]
    fn errors_name_the_line() {
        let bad_runs = V2.replace("every half hour", "every 10s");
        let err = parse_config(&bad_runs, MIN).unwrap_err();
        assert_eq!(err.line, 5, "{err}");
        assert!(err.message.contains("too short"), "{err}");

        let no_id = V2.replace("    id: integer\n", "");
        let err = parse_config(&no_id, MIN).unwrap_err();
        assert!(err.message.contains("must have an id field"), "{err}");
        assert_eq!(err.line, 18);

        let bad_type = V2.replace("sync_type: incremental", "sync_type: sometimes");
        let err = parse_config(&bad_type, MIN).unwrap_err();
        assert_eq!(
            (err.line, err.message.as_str()),
            (7, "sync_type must be either 'incremental' or 'full'.")
        );

        let syntax = "integrations:\n  github:\n    syncs: [\n";
        let err = parse_config(syntax, MIN).unwrap_err();
        assert!(err.message.starts_with("invalid YAML"), "{err}");
        assert!(err.to_string().starts_with("nango.yaml:"));

        let missing_model = V2.replace(
            "output: GithubIssue\n        sync_type",
            "output: Nope\n        sync_type",
        );
        let err = parse_config(&missing_model, MIN).unwrap_err();
        assert_eq!(err.line, 6, "{err}");
    }

    #[test]
    fn on_events_in_both_spellings() {
        let sync = "    syncs:\n      contacts:\n        runs: every hour\n        output: Contact\n        endpoint: GET /contacts\n";
        let models = "models:\n  Contact:\n    id: string\n";
        let text = format!(
            "integrations:\n  crm:\n{sync}    on-events:\n      post-connection-creation: [setup, welcome]\n      validate-connection: check\n{models}"
        );
        let config = parse_config(&text, MIN).unwrap();
        let events: Vec<(&str, &str)> = config.integrations[0]
            .on_events
            .iter()
            .map(|e| (e.name.as_str(), e.event.as_str()))
            .collect();
        assert_eq!(
            events,
            [
                ("setup", "post-connection-creation"),
                ("welcome", "post-connection-creation"),
                ("check", "validate-connection")
            ]
        );
        let old =
            format!("integrations:\n  crm:\n{sync}    post-connection-scripts: [setup]\n{models}");
        let config = parse_config(&old, MIN).unwrap();
        assert_eq!(
            config.integrations[0].on_events[0].event,
            "post-connection-creation"
        );
        let bad =
            format!("integrations:\n  crm:\n{sync}    on-events:\n      on-sunday: [x]\n{models}");
        let err = parse_config(&bad, MIN).unwrap_err();
        assert_eq!(err.line, 9, "{err}");
        assert!(
            err.message.starts_with("unknown event \"on-sunday\""),
            "{err}"
        );
    }

    #[test]
    fn no_integrations_key() {
        let err = parse_config("models: {}\n", MIN).unwrap_err();
        assert!(err.message.contains("integrations"));
    }
}

/// Nango's deploy-time error and warning catalogue, one case each.
#[cfg(test)]
mod catalogue {
    use super::*;

    const MIN: Duration = Duration::from_secs(30);

    fn config(integration: &str, models: &str) -> String {
        format!("integrations:\n  crm:\n{integration}models:\n  Contact:\n    id: string\n{models}")
    }

    const SYNC: &str = "    syncs:\n      contacts:\n        runs: every hour\n        output: Contact\n        endpoint: GET /contacts\n";

    fn error(integration: &str, models: &str) -> String {
        match parse_config(&config(integration, models), MIN) {
            Err(error) => error.to_string(),
            Ok(_) => "accepted".into(),
        }
    }

    fn warnings(integration: &str, models: &str) -> Vec<String> {
        parse_config(&config(integration, models), MIN)
            .expect("the config should be accepted")
            .warnings
    }

    #[test]
    fn every_error_names_file_line_and_reason() {
        let cases: Vec<(String, &str)> = vec![
            (
                error(SYNC, "  Bad-Name:\n    id: string\n"),
                "nango.yaml:11: model Bad-Name: invalid model name",
            ),
            (
                error(
                    &format!(
                        "{SYNC}      again:\n        runs: every hour\n        output: Contact\n        endpoint: GET /again\n"
                    ),
                    "",
                ),
                "model Contact is the output of both sync contacts and sync again",
            ),
            (
                error(
                    SYNC.replace("Contact", "Person").as_str(),
                    "  Person:\n    name: string\n",
                ),
                "must have an id field",
            ),
            (
                error(
                    &format!(
                        "{SYNC}    actions:\n      create:\n        endpoint: GET /contacts\n"
                    ),
                    "",
                ),
                "endpoint GET /contacts is declared by both contacts and create",
            ),
            (
                error(&SYNC.replace("GET /contacts", "[GET /a, GET /b]"), ""),
                "there are 2 endpoints for 1 output models",
            ),
            (
                error(&SYNC.replace("every hour", "every 10s"), ""),
                "Sync interval is too short",
            ),
            (
                error(&SYNC.replace("every hour", "every banana"), ""),
                "Sync interval is invalid",
            ),
            (
                error(SYNC, "  Lead:\n    __extends: Nope\n"),
                "model Nope (in __extends) is not defined",
            ),
            (
                error(SYNC, "  Lead:\n    tags: Record<string, string>\n"),
                "generic type Record<…> is not supported",
            ),
            (
                error(SYNC, "  Lead:\n    tags: '[]'\n"),
                "an empty array type [] needs an item type",
            ),
            (
                error(
                    &format!(
                        "{SYNC}    on-events:\n      post-connection-creation: [setup]\n    post-connection-scripts: [setup]\n"
                    ),
                    "",
                ),
                "post-connection-scripts and on-events cannot both be used",
            ),
            (
                error(&SYNC.replace("        output: Contact\n", ""), ""),
                "An output property is required",
            ),
            (
                error(&SYNC.replace("        endpoint: GET /contacts\n", ""), ""),
                "An endpoint property is required",
            ),
            (
                error(
                    &format!("{SYNC}    actions:\n      create:\n        output: Contact\n"),
                    "",
                ),
                "An endpoint property is required to specify how to trigger the action.",
            ),
            (
                error(&format!("{SYNC}        track_deletes: maybe\n"), ""),
                "track_deletes must be a boolean.",
            ),
            (
                error(&format!("{SYNC}        auto_start: 3\n"), ""),
                "auto_start must be a boolean.",
            ),
            (
                error(&format!("{SYNC}        description: [a]\n"), ""),
                "description must be a string.",
            ),
            (
                error(&format!("{SYNC}        version: v1\n"), ""),
                "version must be an integer, string or a semver string",
            ),
            (
                error(&format!("{SYNC}        scopes: {{a: b}}\n"), ""),
                "scopes must be a string or an array of strings.",
            ),
            (
                error(
                    &format!("{SYNC}        sync_type: incremental\n        track_deletes: true\n"),
                    "",
                ),
                "track_deletes cannot be used with sync_type: incremental",
            ),
            (
                error(&SYNC.replace("GET /contacts", "GET /contacts/{Nope}"), ""),
                "endpoint GET /contacts/{Nope} refers to model Nope, which is not defined",
            ),
        ];
        let mut wrong = Vec::new();
        for (message, expected) in &cases {
            if !message.starts_with("nango.yaml:") || !message.contains(expected) {
                wrong.push(format!("expected {expected:?}, got {message:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn warnings_come_back() {
        let fallback = warnings(SYNC, "  Lead:\n    kind: Unknown\n");
        assert_eq!(
            fallback,
            ["Model Unknown is not defined, using it as a string literal"]
        );
        let cyclic = warnings(SYNC, "  Node:\n    parent: Node | null\n");
        assert_eq!(
            cyclic,
            ["Model Node refers to itself through its fields (a cyclic model); it is accepted"]
        );
        let literal = warnings(
            &format!(
                "{SYNC}    actions:\n      ping:\n        endpoint: POST /ping\n        output: boolean\n"
            ),
            "",
        );
        assert_eq!(
            literal,
            ["The output boolean of action crm/ping is not a model; it is used as a literal type"]
        );
    }
}
