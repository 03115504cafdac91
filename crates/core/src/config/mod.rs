//! `nango.yaml`: the flat v1 format and the v2 `syncs:`/`actions:` format, detected as Nango detects them
//! (by the keys of the first integration), with Nango's validation. Every error names the file and line.

pub mod frequency;
mod lines;
pub mod models;

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
}

/// Parses and validates `nango.yaml`. `min_frequency` is the smallest `runs:` interval accepted.
pub fn parse_config(text: &str, min_frequency: Duration) -> Result<NangoConfig, ConfigError> {
    let root: Value = serde_yaml::from_str(text).map_err(|e| ConfigError {
        file: CONFIG_FILE.into(),
        line: e.location().map_or(1, |l| l.line()),
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
        Ok(IntegrationConfig {
            key: key.to_string(),
            provider,
            syncs,
            actions,
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
            scopes: scopes(body.get("scopes")),
            version: version(body.get("version")),
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
            scopes: scopes(body.get("scopes")),
            version: version(body.get("version")),
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
        for integration in &config.integrations {
            let mut outputs: BTreeMap<&str, &str> = BTreeMap::new();
            let mut endpoints: BTreeMap<String, &str> = BTreeMap::new();
            for sync in &integration.syncs {
                for model in &sync.output {
                    if let Some(other) = outputs.insert(model, &sync.name) {
                        return Err(self.error(
                            &["integrations", &integration.key, "syncs", &sync.name, "output"],
                            &format!("model {model} is the output of both sync {other} and sync {} of integration {}", sync.name, integration.key),
                        ));
                    }
                }
                for endpoint in &sync.endpoints {
                    let key = format!("{} {}", endpoint.method, endpoint.path);
                    if let Some(other) = endpoints.insert(key.clone(), &sync.name) {
                        return Err(self.error(
                            &[
                                "integrations",
                                &integration.key,
                                "syncs",
                                &sync.name,
                                "endpoint",
                            ],
                            &format!(
                                "endpoint {key} is declared by both {other} and {}",
                                sync.name
                            ),
                        ));
                    }
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

fn check_name(name: &str) -> Result<(), String> {
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

fn scopes(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn version(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
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
    fn no_integrations_key() {
        let err = parse_config("models: {}\n", MIN).unwrap_err();
        assert!(err.message.contains("integrations"));
    }
}
