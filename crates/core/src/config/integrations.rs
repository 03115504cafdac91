//! Reading one integration of `nango.yaml` into its syncs, actions and on-event scripts, in the flat v1
//! format and the v2 `syncs:`/`actions:` one, field by field with Nango's rules: each error is made at the
//! key it is about, so that it names that line. What is checked across integrations is in `validate`.

use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    ActionConfig, ConfigError, Ctx, Endpoint, IntegrationConfig, Model, ON_EVENTS, OnEventConfig,
    SyncConfig, SyncType, parse_frequency, parse_frequency_with_minimum,
};

impl Ctx<'_> {
    pub(super) fn integration_v2(
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
    pub(super) fn integration_v1(
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
