//! Checks on a connection's input made by `nango.create_connection`: the credentials' shape per auth mode,
//! and the connection_config values the provider's URLs use.

use pgrx::prelude::*;

use crate::error::ApiError;

/// Refuses credentials whose shape does not fit their `type` (see `pg_nango_core::providers::auth`); the
/// error names the missing field, never a value.
#[pg_extern(immutable)]
#[search_path(pg_catalog, pg_temp)]
fn _check_credentials(credentials: Option<pgrx::JsonB>) {
    let credentials = credentials.map(|c| c.0).unwrap_or_default();
    match pg_nango_core::providers::auth::check_credentials(&credentials) {
        Ok(()) => {}
        Err(refused) if refused.starts_with("unsupported credentials type") => {
            ApiError::invalid(refused)
                .hint(format!(
                    "Use one of {}.",
                    pg_nango_core::providers::auth::CREDENTIAL_TYPES.join(", ")
                ))
                .raise()
        }
        Err(refused) => ApiError::invalid(refused).raise(),
    }
}

/// Refuses a `connection_config` whose values would change the structure of the provider's URLs: a value
/// the base URL or token URL puts into a host or port (Zendesk's `${connectionConfig.subdomain}`) may not
/// hold `/ ? # @ :` or whitespace. An integration that does not exist is left to the caller to report.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _check_connection_config(provider_config_key: &str, connection_config: pgrx::JsonB) {
    let definition = Spi::get_one_with_args::<pgrx::JsonB>(
        "SELECT p.definition FROM nango.integrations i JOIN nango.providers p ON p.name = i.provider
         WHERE i.unique_key = $1",
        &[provider_config_key.into()],
    )
    .unwrap_or_else(|e| {
        ApiError::internal(format!(
            "could not read the provider of integration \"{provider_config_key}\": {e}"
        ))
        .raise()
    });
    let Some(pgrx::JsonB(definition)) = definition else {
        return;
    };
    let provider: pg_nango_core::providers::Provider = serde_json::from_value(definition)
        .unwrap_or_else(|e| {
            ApiError::internal(format!(
                "the provider of integration \"{provider_config_key}\" is not valid: {e}"
            ))
            .raise()
        });
    if let Err(refused) =
        pg_nango_core::providers::check_connection_config(&provider, &connection_config.0)
    {
        ApiError::invalid(format!("connection_config is refused: {refused}"))
            .hint("A value placed in a URL's host must be a host name part (letters, digits, - and .), one in a port a number.")
            .raise();
    }
}
