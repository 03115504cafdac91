//! `cargo pgrx test`: the SQL functions that need no background worker, called inside a test backend (each
//! test runs in a transaction that is rolled back). Deploy validation, connection and credential checks,
//! `nango.records` paging and filters, and the typed views a deploy makes. Runs, schedules and
//! notifications need the workers and a client that commits: the end-to-end tests in `tests/e2e` cover them.

use pgrx::prelude::*;

/// The SQLSTATE and message of the error `sql` raises, or `None` if it succeeds. The statement runs in a
/// subtransaction (a PL/pgSQL exception block), so the test's transaction goes on after the error.
fn error_of(sql: &str) -> Option<String> {
    Spi::run(
        "CREATE OR REPLACE FUNCTION pg_temp.error_of(statement text) RETURNS text LANGUAGE plpgsql AS $$
         BEGIN
             EXECUTE statement;
             RETURN NULL;
         EXCEPTION WHEN OTHERS THEN
             RETURN SQLSTATE || ' ' || SQLERRM;
         END $$",
    )
    .expect("create pg_temp.error_of");
    Spi::get_one_with_args::<String>("SELECT pg_temp.error_of($1)", &[sql.into()])
        .expect("run pg_temp.error_of")
}

fn count(sql: &str) -> i64 {
    Spi::get_one::<i64>(sql).expect("count").expect("a count")
}

const CONFIG: &str = "integrations:
    demo:
        syncs:
            tickets:
                runs: every hour
                auto_start: false
                output: Ticket
                endpoint: GET /tickets
models:
    Ticket:
        id: string
        subject: string
        priority: number
        urgent: boolean
        opened_at: date
";

const SCRIPT: &str = "export default async function fetchData(nango) {
    await nango.batchSave([{ id: '1', subject: 'Hello' }], 'Ticket');
}
";

/// Deploys the one-sync project above; returns the summary.
fn deploy() -> serde_json::Value {
    let files = serde_json::json!({ "demo/syncs/tickets.ts": SCRIPT });
    Spi::get_one_with_args::<pgrx::JsonB>(
        "SELECT nango.deploy($1, $2)",
        &[CONFIG.into(), pgrx::JsonB(files).into()],
    )
    .expect("deploy")
    .expect("a summary")
    .0
}

#[pg_schema]
mod tests {
    use super::*;
    use serde_json::json;

    #[pg_test]
    fn deploy_refuses_bad_input_with_its_place_and_changes_nothing() {
        let bad_yaml = error_of("SELECT nango.deploy('integrations: [', '{}'::jsonb)").unwrap();
        assert!(bad_yaml.starts_with("22023 deploy failed: "), "{bad_yaml}");
        assert_eq!(
            error_of("SELECT nango.deploy(NULL, '[1]'::jsonb)").as_deref(),
            Some("22023 files must be a JSON object of path: source")
        );
        let missing_script = error_of(&format!(
            "SELECT nango.deploy($cfg${CONFIG}$cfg$, '{{}}'::jsonb)"
        ))
        .unwrap();
        assert!(
            missing_script.starts_with(
                "22023 deploy failed: demo/syncs/tickets.ts: no script for sync tickets"
            ),
            "{missing_script}"
        );
        let broken = error_of(&format!(
            "SELECT nango.deploy($cfg${CONFIG}$cfg$, '{{\"demo/syncs/tickets.ts\": \"export default async function (nango) {{ let = ; }}\"}}'::jsonb)"
        ))
        .unwrap();
        assert!(
            broken.starts_with("22023 deploy failed: demo/syncs/tickets.ts:1"),
            "{broken}"
        );
        assert_eq!(count("SELECT count(*) FROM nango.sync_configs"), 0);
        assert_eq!(count("SELECT count(*) FROM nango.files"), 0);
    }

    #[pg_test]
    fn deploy_writes_the_sync_its_model_and_a_typed_view_and_reports_changes() {
        let summary = deploy();
        assert_eq!(
            summary["changes"]["added"],
            json!([
                "file demo/syncs/tickets.ts",
                "model Ticket",
                "sync demo/tickets"
            ])
        );
        assert_eq!(summary["views"], json!({"Ticket": "nango_records.ticket"}));
        let columns = Spi::get_one::<String>(
            "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position)
             FROM information_schema.columns WHERE table_schema = 'nango_records' AND table_name = 'ticket'
               AND column_name NOT LIKE '\\_nango%'",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            columns,
            "id:text,subject:text,priority:double precision,urgent:boolean,opened_at:timestamp with time zone"
        );
        // The same again changes nothing.
        assert_eq!(
            deploy()["changes"],
            json!({"added": [], "changed": [], "removed": []})
        );
    }

    #[pg_test]
    fn connections_check_their_integration_credentials_and_config() {
        deploy();
        let unknown = error_of(
            "SELECT nango.create_connection('nope', 'c1', '{\"type\": \"API_KEY\", \"apiKey\": \"k\"}', '{}')",
        )
        .unwrap();
        assert!(unknown.starts_with("42704 "), "{unknown}");
        let bad_credentials = error_of(
            "SELECT nango.create_connection('demo', 'c1', '{\"type\": \"TELEPATHY\"}', '{\"base_url\": \"http://127.0.0.1:1\"}')",
        )
        .unwrap();
        assert!(bad_credentials.starts_with("22023 "), "{bad_credentials}");
        assert!(
            bad_credentials.contains("unsupported credentials type"),
            "{bad_credentials}"
        );
        assert_eq!(count("SELECT count(*) FROM nango.connections"), 0);
        Spi::run(
            "SELECT nango.create_connection('demo', 'c1', '{\"type\": \"API_KEY\", \"apiKey\": \"secret-key\"}',
                                            '{\"base_url\": \"http://127.0.0.1:1\"}')",
        )
        .unwrap();
        assert_eq!(count("SELECT count(*) FROM nango.connections"), 1);
        // One sync row per deployed sync, paused as auto_start: false says.
        assert_eq!(count("SELECT count(*) FROM nango.syncs WHERE paused"), 1);
        // Created again, as Nango imports a connection: the same row with the new credentials.
        Spi::run(
            "SELECT nango.create_connection('demo', 'c1', '{\"type\": \"API_KEY\", \"apiKey\": \"new-key\"}',
                                            '{\"base_url\": \"http://127.0.0.1:1\"}')",
        )
        .unwrap();
        assert_eq!(count("SELECT count(*) FROM nango.connections"), 1);
        assert_eq!(
            Spi::get_one::<String>("SELECT credentials ->> 'apiKey' FROM nango.credentials")
                .unwrap()
                .as_deref(),
            Some("new-key")
        );
    }

    /// A connection with three stored Ticket records, written as a run would (cursors 1 to 3).
    fn stored_tickets() {
        deploy();
        Spi::run(
            "SELECT nango.create_connection('demo', 'c1', '{\"type\": \"API_KEY\", \"apiKey\": \"k\"}',
                                            '{\"base_url\": \"http://127.0.0.1:1\"}')",
        )
        .unwrap();
        Spi::run(
            "INSERT INTO nango.stored_records (model, connection, external_id, data, data_hash, first_seen_at,
                                               last_modified_at, deleted_at, last_action, cursor)
             SELECT 'Ticket', c.id, r.id, r.data, md5(r.data::text)::uuid, now(), now(), r.deleted, r.action, r.cursor
             FROM nango.connections c,
                  (VALUES ('1', '{\"id\": \"1\", \"subject\": \"One\", \"priority\": 2, \"urgent\": true,
                                  \"opened_at\": \"2024-01-31T10:00:00Z\"}'::jsonb, NULL::timestamptz, 'ADDED', 1),
                          ('2', '{\"id\": \"2\", \"subject\": \"Two\", \"priority\": \"high\"}', NULL, 'UPDATED', 2),
                          ('3', '{\"id\": \"3\", \"subject\": \"Three\"}', now(), 'DELETED', 3))
                      AS r(id, data, deleted, action, cursor)
             WHERE c.connection_id = 'c1'",
        )
        .unwrap();
    }

    #[pg_test]
    fn a_runs_check_of_its_highest_cursor_reads_only_its_connections_records() {
        // 5,000 records of connection 1; connection 2 has none.
        Spi::run(
            "INSERT INTO nango.stored_records (model, connection, external_id, data, data_hash, first_seen_at,
                                               last_modified_at, deleted_at, last_action, cursor)
             SELECT 'Ticket', 1, g::text, '{}', md5(g::text)::uuid, now(), now(), NULL, 'ADDED', g
             FROM generate_series(1, 5000) g;
             ANALYZE nango.stored_records;
             SET LOCAL plan_cache_mode = force_generic_plan;
             SET LOCAL enable_seqscan = off;",
        )
        .unwrap();
        let sql = crate::store::records::LAST_CURSOR_SQL;
        Spi::run(&format!("PREPARE last_cursor(bigint, text) AS {sql}")).unwrap();
        let last = |connection: i64| {
            Spi::get_one::<pgrx::JsonB>(&format!("EXECUTE last_cursor({connection}, 'Ticket')"))
                .unwrap()
                .map(|cursor| cursor.0)
        };
        assert_eq!(last(1), Some(json!(5000)));
        assert_eq!(last(2), None);
        let plan: Vec<String> = Spi::connect(|client| {
            client
                .select(
                    "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE last_cursor(2, 'Ticket')",
                    None,
                    &[],
                )
                .unwrap()
                .filter_map(|row| row.get::<String>(1).ok().flatten())
                .collect()
        });
        let plan = plan.join("\n");
        assert!(plan.contains("stored_records_by_connection"), "{plan}");
        assert!(!plan.contains("Rows Removed"), "{plan}");
    }

    #[pg_test]
    fn records_page_by_cursor_and_filter_by_last_action() {
        stored_tickets();
        let page = |sql: &str| {
            Spi::get_one::<String>(&format!(
                "SELECT string_agg(id || '@' || cursor, ',') FROM ({sql}) r"
            ))
            .unwrap()
            .unwrap_or_default()
        };
        assert_eq!(
            page("SELECT * FROM nango.records('Ticket', connection_id => 'c1', \"limit\" => 2)"),
            "1@1,2@2"
        );
        assert_eq!(
            page("SELECT * FROM nango.records('Ticket', connection_id => 'c1', cursor => '2')"),
            "3@3"
        );
        assert_eq!(
            page("SELECT * FROM nango.records('Ticket', filter => 'added,deleted')"),
            "1@1,3@3"
        );
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT _nango_metadata ->> 'last_action' FROM nango.records('Ticket', filter => 'deleted')"
            )
            .unwrap()
            .as_deref(),
            Some("DELETED")
        );
        let bad_cursor =
            error_of("SELECT * FROM nango.records('Ticket', cursor => 'not-a-cursor')").unwrap();
        assert!(bad_cursor.starts_with("22023 "), "{bad_cursor}");
        let bad_filter =
            error_of("SELECT * FROM nango.records('Ticket', filter => 'eaten')").unwrap();
        assert!(bad_filter.starts_with("22023 "), "{bad_filter}");
    }

    #[pg_test]
    fn typed_views_read_each_field_with_its_type() {
        stored_tickets();
        let row = Spi::get_one::<String>(
            "SELECT concat_ws('|', subject, priority, urgent, opened_at AT TIME ZONE 'UTC', _nango_last_action)
             FROM nango_records.ticket WHERE id = '1'",
        )
        .unwrap()
        .unwrap();
        assert_eq!(row, "One|2|t|2024-01-31 10:00:00|ADDED");
        // A value of the wrong type reads as NULL instead of failing the query.
        assert_eq!(
            Spi::get_one::<f64>("SELECT priority FROM nango_records.ticket WHERE id = '2'")
                .unwrap(),
            None
        );
        assert_eq!(count("SELECT count(*) FROM nango_records.ticket"), 3);
    }
}
