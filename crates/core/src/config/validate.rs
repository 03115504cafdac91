//! The checks of a whole `nango.yaml` once every integration is read: an action's output that is not a
//! model must read as a type (a warning when it is a literal), a model is the output of one sync of an
//! integration at most, and an endpoint is declared once per integration and refers only to defined
//! models. They need all the scripts and models, so they run after the reading (`integrations`).

use std::collections::BTreeMap;

use super::{ConfigError, Ctx, FieldType, NangoConfig, models};

impl Ctx<'_> {
    /// Checks across integrations: a model is the output of at most one sync of an integration, and an
    /// endpoint is declared once per integration.
    pub(super) fn validate(&self, config: &mut NangoConfig) -> Result<(), ConfigError> {
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

/// The model names an endpoint path refers to: `{Model}` or `{Model:field}`.
fn path_models(path: &str) -> Vec<&str> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split('}').next())
        .map(|inside| inside.split(':').next().unwrap_or_default().trim())
        .filter(|name| name.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .collect()
}
