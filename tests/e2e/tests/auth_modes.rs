//! Provider catalogs and auth modes: Nango's own providers.yaml loads whole through
//! `nango.upsert_providers`.

use pg_nango_e2e::*;

#[path = "../../../crates/core/tests/support/nango_yaml.rs"]
mod nango_yaml;
use nango_yaml::nango_providers_yaml;

#[test]
fn nangos_whole_catalog_is_upserted() {
    let mut client = connect();
    let yaml = nango_providers_yaml();
    let count: i32 = client
        .query_one("SELECT nango.upsert_providers($1)", &[&yaml])
        .expect("upsert Nango's providers.yaml")
        .get(0);
    assert!(count >= 1000, "{count} providers");
    let row = client
        .query_one(
            "SELECT definition ->> 'auth_mode', definition -> 'proxy' ->> 'base_url'
             FROM nango.providers WHERE name = 'netsuite-tba'",
            &[],
        )
        .expect("netsuite-tba is stored");
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("TBA"));
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some(
            "https://${connectionConfig.accountId}.suitetalk.api.netsuite.com/services/rest/record/v1"
        )
    );
    // An auth-only entry loads; an integration of it can be created.
    client
        .execute(
            "SELECT nango.create_integration('none-auth', 'unauthenticated')",
            &[],
        )
        .expect("create an integration of an entry without credentials");
}
