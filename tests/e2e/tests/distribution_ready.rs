//! The schema stays ready to be spread over a Citus cluster (docs/scaling.md): every table of schema `nango`
//! is classified here as distributed by connection, a reference table, or local to the coordinator, and the
//! catalog is checked against the rules a distribution by connection imposes. A new table that is in no list
//! fails the test, so the classification stays true.

use std::collections::BTreeSet;

use pg_nango_e2e::*;
use serde_json::json;

/// Distributed by `connection` (the `nango.connections.id` of the row): what grows with the records.
const PER_CONNECTION: &[&str] = &["stored_records", "delete_windows", "seen_records"];

/// Copied to every node: the configuration, the catalog and the connections, small and read by every
/// query that joins them.
const REFERENCE: &[&str] = &[
    "providers",
    "integrations",
    "connections",
    "deployments",
    "files",
    "models",
    "sync_configs",
    "action_configs",
    "on_event_configs",
];

/// Left on the coordinator: the schedule and its runs (the scheduler claims them with row locks across all
/// connections), the secrets (only the coordinator's workers read them) and the per-model marks of the
/// record cursors (written under the model's lock, which lives there too).
const COORDINATOR_LOCAL: &[&str] = &[
    "syncs",
    "record_marks",
    "jobs",
    "logs",
    "webhook_payloads",
    "checkpoints",
    "locks",
    "credentials",
    "integration_secrets",
    "environment_variables",
];

/// The distribution column of every per-connection table.
const CONNECTION_COLUMN: &str = "connection";

fn class_of(table: &str) -> Option<&'static str> {
    if PER_CONNECTION.contains(&table) {
        Some("per-connection")
    } else if REFERENCE.contains(&table) {
        Some("reference")
    } else if COORDINATOR_LOCAL.contains(&table) {
        Some("coordinator-local")
    } else {
        None
    }
}

/// Every table of schema nango is in exactly one list, and every listed table exists.
#[test]
fn every_table_is_classified() {
    let mut client = connect();
    let tables: BTreeSet<String> = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'nango' AND c.relkind IN ('r', 'p')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let unclassified: Vec<&String> = tables.iter().filter(|t| class_of(t).is_none()).collect();
    assert!(
        unclassified.is_empty(),
        "tables of schema nango in no list of tests/e2e/tests/distribution_ready.rs (decide how each is \
         distributed, see docs/scaling.md): {unclassified:?}"
    );
    let listed: Vec<&str> = PER_CONNECTION
        .iter()
        .chain(REFERENCE)
        .chain(COORDINATOR_LOCAL)
        .copied()
        .collect();
    let missing: Vec<&&str> = listed.iter().filter(|t| !tables.contains(**t)).collect();
    assert!(
        missing.is_empty(),
        "listed tables that do not exist: {missing:?}"
    );
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a table is in two lists");
}

/// Every per-connection table has a NOT NULL bigint `connection` column.
#[test]
fn per_connection_tables_carry_the_connection() {
    let mut client = connect();
    for table in PER_CONNECTION {
        let column: Option<(String, bool)> = client
            .query_opt(
                "SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a
                 WHERE a.attrelid = ('nango.' || $1)::regclass AND a.attname = $2 AND NOT a.attisdropped",
                &[table, &CONNECTION_COLUMN],
            )
            .unwrap()
            .map(|row| (row.get(0), row.get(1)));
        assert_eq!(
            column,
            Some(("bigint".to_string(), true)),
            "nango.{table} must have a NOT NULL bigint column {CONNECTION_COLUMN}"
        );
    }
}

/// Each unique index (primary keys and unique constraints included) of a per-connection table covers the
/// connection column: a shard can only enforce uniqueness among its own rows.
#[test]
fn unique_indexes_of_per_connection_tables_include_the_connection() {
    let mut client = connect();
    let offending: Vec<(String, String)> = pairs(
        &mut client,
        "SELECT t.relname::text, i.relname::text
         FROM pg_index x
         JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_class t ON t.oid = x.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = 'nango' AND t.relname = ANY ($1) AND x.indisunique
           AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                           WHERE a.attrelid = t.oid AND a.attname = $2
                             AND a.attnum = ANY (x.indkey::smallint[]))
         ORDER BY 1, 2",
        &[&PER_CONNECTION, &CONNECTION_COLUMN],
    );
    assert!(
        offending.is_empty(),
        "unique indexes of per-connection tables without the {CONNECTION_COLUMN} column (table, index): {offending:?}"
    );
    // Exclusion constraints cannot be enforced across shards either.
    let exclusions: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE n.nspname = 'nango' AND c.contype = 'x'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(exclusions, 0, "exclusion constraints in schema nango");
}

/// The foreign keys of schema nango, as (table, referenced table, constraint, whether the connection column
/// of the one is paired with the connection column of the other).
fn foreign_keys(client: &mut Client) -> Vec<(String, String, String, bool)> {
    client
        .query(
            "SELECT t.relname::text, r.relname::text, c.conname::text,
                    EXISTS (SELECT 1 FROM unnest(c.conkey, c.confkey) AS k(a, b)
                            JOIN pg_attribute ta ON ta.attrelid = c.conrelid AND ta.attnum = k.a
                            JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = k.b
                            WHERE ta.attname = $1 AND ra.attname = $1)
             FROM pg_constraint c
             JOIN pg_class t ON t.oid = c.conrelid
             JOIN pg_class r ON r.oid = c.confrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname = 'nango' AND c.contype = 'f'
             ORDER BY 1, 3",
            &[&CONNECTION_COLUMN],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// Foreign keys follow what a Citus cluster can enforce: between two per-connection tables only on the
/// connection column (their rows are then on one shard); from a per-connection table to a reference table;
/// never into a per-connection table from another kind, nor from a per-connection table to a table local to
/// the coordinator.
#[test]
fn foreign_keys_can_be_enforced_by_shard() {
    let mut client = connect();
    let mut offending = Vec::new();
    for (table, referenced, name, on_connection) in foreign_keys(&mut client) {
        let from = class_of(&table).unwrap_or("unclassified");
        let to = class_of(&referenced).unwrap_or("unclassified");
        let allowed = match (from, to) {
            ("per-connection", "per-connection") => on_connection,
            ("per-connection", "reference") => true,
            ("per-connection", _) | (_, "per-connection") => false,
            ("reference", "reference") => true,
            // A reference table's rows are on every node; a row it references must be too.
            ("reference", _) => false,
            ("coordinator-local", "reference" | "coordinator-local") => true,
            _ => false,
        };
        if !allowed {
            offending.push(format!("{name}: {table} ({from}) -> {referenced} ({to})"));
        }
    }
    assert!(
        offending.is_empty(),
        "foreign keys a distribution by connection cannot enforce: {offending:#?}"
    );
}

/// As docs/scaling.md lays the tables out: with the trigger on `nango.connections` dropped (as before making it
/// a reference table), deleting a connection still removes its records, and deleting its schedule rows
/// removes their deletion windows and seen ids, each of which carries the connection.
#[test]
fn deleting_a_connection_removes_its_sharded_rows() {
    let mut client = connect();
    client
        .batch_execute("DROP TRIGGER forget_connection_records ON nango.connections")
        .unwrap();
    let people: Vec<serde_json::Value> = ["p1", "p2", "p3", "p4", "p5", "p6"]
        .iter()
        .map(|id| json!({"id": id, "name": format!("Person {id}")}))
        .collect();
    mock().set_dataset("dist-people", people);
    // The run saves two pages inside a deletion window, then fails: the window stays open with the ids seen.
    create_connection_with_metadata(
        &mut client,
        "e2e",
        "dist-conn",
        &json!({"dataset": "dist-people", "failAtCursor": "4"}),
    );
    let (_, status) = run_sync(&mut client, "e2e", "contacts", "dist-conn");
    assert_eq!(status, "ERROR");
    let connection: i64 = client
        .query_one(
            "SELECT id FROM nango.connections WHERE connection_id = 'dist-conn'",
            &[],
        )
        .unwrap()
        .get(0);
    // Records, windows, seen ids of the connection, and windows whose schedule row is gone.
    let counts = |client: &mut Client| -> Vec<i64> {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM nango.stored_records WHERE connection = $1),
                        (SELECT count(*) FROM nango.delete_windows WHERE connection = $1),
                        (SELECT count(*) FROM nango.seen_records WHERE connection = $1),
                        (SELECT count(*) FROM nango.delete_windows w
                         WHERE NOT EXISTS (SELECT 1 FROM nango.syncs s WHERE s.id = w.sync))",
                &[&connection],
            )
            .unwrap();
        (0..4).map(|i| row.get(i)).collect()
    };
    assert_eq!(counts(&mut client), [4, 1, 4, 0]);
    // The window carries its schedule row's connection.
    let matching: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.delete_windows w JOIN nango.syncs s ON s.id = w.sync
             WHERE w.connection = $1 AND s.connection = w.connection",
            &[&connection],
        )
        .unwrap()
        .get(0);
    assert_eq!(matching, 1);
    client
        .execute("SELECT nango.delete_connection('e2e', 'dist-conn')", &[])
        .unwrap();
    assert_eq!(counts(&mut client), [0, 0, 0, 0]);
}
