//! `nango.yaml`: the flat v1 format and the v2 `syncs:`/`actions:` format, detected as Nango detects them
//! (by the keys of the first integration), with Nango's validation. Every error names the file and line.
//!
//! This module holds what a parsed config is and the entry point, [`parse_config`]; the integrations are
//! read in `integrations` and checked across in `validate`.

pub mod frequency;
mod integrations;
pub mod json_schema;
mod lines;
pub mod models;
mod validate;
pub mod yaml;

use serde::Serialize;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::time::Duration;

pub use frequency::{FrequencyError, parse_frequency, parse_frequency_with_minimum};
pub(crate) use integrations::check_name;
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

/// The text being parsed, so that an error can name the line of the key it is about ([`Ctx::error`]). The
/// reading of the integrations (`integrations`) and the checks across them (`validate`) are its methods.
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
