//! SQL functions written in Rust. Each reports bad input as an ERROR that says what and where, with its
//! SQLSTATE ([`crate::error`]), and changes nothing (it runs in the caller's transaction).

pub mod connections;
pub mod deploy;
pub mod on_events;
pub mod oneoff;

use pgrx::prelude::*;

use crate::error::ApiError;

/// The provider catalog compiled into the extension.
const BUNDLED_PROVIDERS: &str = include_str!("../../providers.yaml");

/// Adds or replaces provider catalog entries from a providers YAML document; returns how many.
#[pg_extern(security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn upsert_providers(yaml: &str) -> i32 {
    store_providers(yaml, true)
}

/// Stores catalog entries: `custom` ones (nango.upsert_providers) replace any entry of the same name;
/// bundled ones never replace a custom entry.
fn store_providers(yaml: &str, custom: bool) -> i32 {
    // An alias of a provider the document does not hold is resolved against the stored catalog.
    let stored = |name: &str| {
        Spi::get_one_with_args::<pgrx::JsonB>(
            "SELECT p.definition FROM nango.providers p WHERE p.name = $1",
            &[name.into()],
        )
        .ok()
        .flatten()
        .map(|definition| definition.0)
    };
    let catalog = pg_nango_core::providers::parse_catalog_with(yaml, &stored)
        .unwrap_or_else(|e| ApiError::invalid(e.to_string()).raise());
    for (name, definition) in &catalog {
        Spi::run_with_args(
            "INSERT INTO nango.providers AS p (name, definition, custom) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = now(),
                                              custom = excluded.custom
             WHERE excluded.custom OR NOT p.custom",
            &[
                name.as_str().into(),
                pgrx::JsonB(definition.clone()).into(),
                custom.into(),
            ],
        )
        .unwrap_or_else(|e| {
            ApiError::internal(format!("could not store provider {name}: {e}")).raise()
        });
    }
    catalog.len() as i32
}

/// Loads the bundled catalog; run once by CREATE EXTENSION.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn _load_bundled_providers() -> i32 {
    store_providers(BUNDLED_PROVIDERS, false)
}

extension_sql!(
    "SELECT nango._load_bundled_providers();",
    name = "load_bundled_providers",
    requires = [_load_bundled_providers, upsert_providers, "bootstrap"]
);
