//! The typed views `nango_records.<model>` made by `nango.deploy`: names from `nango.yaml` cannot inject SQL
//! (whatever `standard_conforming_strings` says), names that map to one view or column are told apart, and
//! grants and views built on a typed view survive a redeploy. Its own binary: these deploys replace the
//! fixture's, one test at a time.

use std::sync::Mutex;

use pg_nango_e2e::*;
use serde_json::{Value, json};

/// Each test deploys its own config over the others'.
static DEPLOYS: Mutex<()> = Mutex::new(());

const CONNECTION: &str = "views-conn";

/// A sync that saves the records the connection's metadata holds: `{"records": {"Model": [record, …]}}`.
const SAVE: &str = "export default async function fetchData(nango) {
    const { records = {} } = await nango.getMetadata();
    for (const [model, list] of Object.entries(records)) {
        await nango.batchSave(list, model);
    }
}
";

/// A config whose `views` integration has one sync saving these models, defined by `models` (YAML lines
/// under `models:`).
fn config(outputs: &[&str], models: &str) -> String {
    let endpoints: Vec<String> = (0..outputs.len())
        .map(|i| format!("GET /views/{i}"))
        .collect();
    format!(
        "integrations:\n  views:\n    provider: demo\n    syncs:\n      save:\n        runs: every hour\n        auto_start: false\n        output: {}\n        endpoint: {}\nmodels:\n{models}",
        serde_json::to_string(outputs).unwrap(),
        serde_json::to_string(&endpoints).unwrap(),
    )
}

fn files() -> Value {
    json!({"views/syncs/save.js": SAVE})
}

/// Deploys as `client`'s role; returns the summary.
fn deploy(client: &mut Client, config: &str) -> Value {
    client
        .query_one(
            "SELECT nango.deploy($1::text, $2::jsonb, true)",
            &[&config, &files()],
        )
        .unwrap_or_else(|e| panic!("deploy: {e}"))
        .get(0)
}

/// Saves `records` (`{"Model": [record, …]}`) through the sync.
fn save(client: &mut Client, records: Value) {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM nango.connections WHERE provider_config_key = 'views' AND connection_id = $1)",
            &[&CONNECTION],
        )
        .unwrap()
        .get(0);
    if !exists {
        create_connection(client, "views", CONNECTION);
    }
    set_metadata(client, "views", CONNECTION, &json!({ "records": records }));
    let (job, status) = run_sync(client, "views", "save", CONNECTION);
    assert_eq!(status, "SUCCESS", "{:?}", job_outcome(client, job));
}

/// `"name"`, as the tests build their queries.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The value of `column` in the row of `view` (qualified) whose `id` is `id`, as text.
fn read(client: &mut Client, view: &str, column: &str, id: &str) -> Option<String> {
    client
        .query_one(
            &format!("SELECT {}::text FROM {view} WHERE id = $1", ident(column)),
            &[&id],
        )
        .unwrap_or_else(|e| panic!("read {column} from {view}: {e}"))
        .get(0)
}

/// The columns of `nango_records.<view>` in order.
fn columns(client: &mut Client, view: &str) -> Vec<String> {
    client
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'nango_records' AND table_name = $1 ORDER BY ordinal_position",
            &[&view],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    DEPLOYS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn a_field_name_cannot_inject_sql_under_either_string_setting() {
    let _guard = lock();
    let mut admin = connect();
    for setting in ["off", "on"] {
        // Short, so that the field name fits in 63 bytes and keeps its exact name as the column's.
        let role = format!("va_{setting}");
        admin
            .batch_execute(&format!(
                "CREATE ROLE {role} LOGIN;
                 GRANT USAGE ON SCHEMA nango TO {role};
                 GRANT EXECUTE ON FUNCTION nango.deploy(text, jsonb, boolean) TO {role};"
            ))
            .unwrap();
        let field = format!("\\' FROM nango.stored_records r; ALTER ROLE {role} SUPERUSER; --");
        // In YAML single quotes a backslash is itself and '' is one quote.
        let yaml_key = format!("'{}'", field.replace('\'', "''"));
        let config = config(
            &["Evil"],
            &format!("  Evil:\n    id: string\n    {yaml_key}: string\n"),
        );
        let mut attacker = connect_as(&role);
        attacker
            .batch_execute(&format!("SET standard_conforming_strings = {setting}"))
            .unwrap();
        let summary = deploy(&mut attacker, &config);
        assert_eq!(summary["views"], json!({"Evil": "nango_records.evil"}));
        let superuser: bool = admin
            .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role])
            .unwrap()
            .get(0);
        assert!(
            !superuser,
            "{role} became superuser with standard_conforming_strings = {setting}"
        );
        let columns = columns(&mut admin, "evil");
        assert_eq!(columns[..2], ["id".to_string(), field.clone()]);
        save(
            &mut admin,
            json!({"Evil": [{"id": "1", field.as_str(): format!("saved with {setting}")}]}),
        );
        assert_eq!(
            read(&mut admin, "nango_records.evil", &field, "1"),
            Some(format!("saved with {setting}"))
        );
    }
}

#[test]
fn a_name_postgres_cannot_store_is_refused_naming_model_and_field() {
    let _guard = lock();
    let mut client = connect();
    let config = config(
        &["Ticket"],
        "  Ticket:\n    id: string\n    \"sub\\0ject\": string\n",
    );
    let (message, _) = db_error(
        client
            .query_one(
                "SELECT nango.deploy($1::text, $2::jsonb, true)",
                &[&config, &files()],
            )
            .unwrap_err(),
    );
    assert_eq!(
        message,
        "deploy failed: model \"Ticket\", field \"sub\\0ject\": the field name holds a NUL character, which Postgres cannot store"
    );
}

#[test]
fn models_that_map_to_one_view_name_each_get_a_view() {
    let _guard = lock();
    let mut client = connect();
    let models = ["name", "Name", "HTTPRequest", "HttpRequest"];
    let definitions: String = models
        .iter()
        .map(|m| format!("  {m}:\n    id: string\n    which: string\n"))
        .collect();
    let summary = deploy(&mut client, &config(&models, &definitions));
    assert_eq!(
        summary["views"],
        json!({
            "name": "nango_records.name_2",
            "Name": "nango_records.name",
            "HTTPRequest": "nango_records.http_request",
            "HttpRequest": "nango_records.http_request_2",
        })
    );
    let warnings = summary["warnings"].to_string();
    assert!(
        warnings.contains(r#"model \"HttpRequest\": its view is nango_records.\"http_request_2\""#),
        "{warnings}"
    );
    let records: serde_json::Map<String, Value> = models
        .iter()
        .map(|m| (m.to_string(), json!([{"id": "1", "which": m}])))
        .collect();
    save(&mut client, Value::Object(records));
    for model in models {
        let view = summary["views"][model].as_str().unwrap();
        assert_eq!(
            read(&mut client, view, "which", "1").as_deref(),
            Some(model),
            "{view}"
        );
    }
    // A redeploy with the models in another order keeps every view where it was.
    let reordered: String = models
        .iter()
        .rev()
        .map(|m| format!("  {m}:\n    id: string\n    which: string\n"))
        .collect();
    let again = deploy(&mut client, &config(&models, &reordered));
    assert_eq!(again["views"], summary["views"]);
}

#[test]
fn a_field_name_past_63_bytes_gets_a_column() {
    let _guard = lock();
    let mut client = connect();
    let long = format!("field_{}", "x".repeat(64));
    assert_eq!(long.len(), 70);
    let summary = deploy(
        &mut client,
        &config(
            &["LongField"],
            &format!(
                "  LongField:\n    id: string\n    {long}: string\n    _nango_cursor: string\n"
            ),
        ),
    );
    let columns = columns(&mut client, "long_field");
    let column = columns[1].clone();
    assert!(
        column.len() <= 63 && column.starts_with("field_xxx") && column != long[..63],
        "{column}"
    );
    assert_eq!(columns[2], "_nango_cursor_2");
    assert!(columns.contains(&"_nango_cursor".to_string()));
    let warnings = summary["warnings"].to_string();
    assert!(warnings.contains(&column), "{warnings}");
    assert!(warnings.contains("_nango_cursor_2"), "{warnings}");
    save(
        &mut client,
        json!({"LongField": [{"id": "1", long.as_str(): "long value", "_nango_cursor": "mine"}]}),
    );
    let view = "nango_records.long_field";
    assert_eq!(
        read(&mut client, view, &column, "1").as_deref(),
        Some("long value")
    );
    assert_eq!(
        read(&mut client, view, "_nango_cursor_2", "1").as_deref(),
        Some("mine")
    );
    // The metadata column is still the record's cursor.
    let cursor = read(&mut client, view, "_nango_cursor", "1").unwrap();
    assert!(cursor.parse::<i64>().is_ok(), "{cursor}");
}

#[test]
fn grants_on_a_typed_view_survive_redeploys() {
    let _guard = lock();
    let mut admin = connect();
    let v1 = config(
        &["Grant"],
        "  Grant:\n    id: string\n    subject: string\n",
    );
    deploy(&mut admin, &v1);
    save(
        &mut admin,
        json!({"Grant": [{"id": "1", "subject": "hello"}]}),
    );
    admin
        .batch_execute(
            "CREATE ROLE views_analyst LOGIN;
             GRANT USAGE ON SCHEMA nango_records TO views_analyst;
             GRANT SELECT ON nango_records.\"grant\" TO views_analyst;",
        )
        .unwrap();
    let added = config(
        &["Grant"],
        "  Grant:\n    id: string\n    subject: string\n    added?: number\n",
    );
    // The same deploy, one that adds a field (replaced in place) and one that changes a field's type and
    // removes another (dropped and created again).
    let changed = config(
        &["Grant"],
        "  Grant:\n    id: string\n    subject: number\n",
    );
    for (step, config) in [("same", &v1), ("added", &added), ("changed", &changed)] {
        deploy(&mut admin, config);
        let granted: bool = admin
            .query_one(
                "SELECT has_table_privilege('views_analyst', 'nango_records.\"grant\"', 'SELECT')",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(granted, "the grant is gone after the {step} deploy");
        let mut analyst = connect_as("views_analyst");
        let ids: i64 = analyst
            .query_one(
                "SELECT count(*) FROM nango_records.\"grant\" WHERE id = '1'",
                &[],
            )
            .unwrap_or_else(|e| panic!("read after the {step} deploy: {e}"))
            .get(0);
        assert_eq!(ids, 1, "after the {step} deploy");
    }
    // The recreated view reads the new type: "hello" is no number.
    assert_eq!(
        read(&mut admin, "nango_records.\"grant\"", "subject", "1"),
        None
    );
}

#[test]
fn a_view_built_on_a_typed_view_survives_a_redeploy_that_adds_a_field() {
    let _guard = lock();
    let mut client = connect();
    let v1 = config(&["Note"], "  Note:\n    id: string\n    text: string\n");
    deploy(&mut client, &v1);
    save(
        &mut client,
        json!({"Note": [{"id": "1", "text": "first", "pinned": true}]}),
    );
    client
        .batch_execute(
            "CREATE VIEW public.my_notes AS SELECT id, text FROM nango_records.note WHERE _nango_deleted_at IS NULL",
        )
        .unwrap();
    let summary = deploy(
        &mut client,
        &config(
            &["Note"],
            "  Note:\n    pinned?: boolean\n    id: string\n    text: string\n",
        ),
    );
    assert_eq!(summary["views"], json!({"Note": "nango_records.note"}));
    let text: String = client
        .query_one("SELECT text FROM public.my_notes WHERE id = '1'", &[])
        .unwrap()
        .get(0);
    assert_eq!(text, "first");
    assert_eq!(
        read(&mut client, "nango_records.note", "pinned", "1").as_deref(),
        Some("true")
    );
    // Removing a field would need the view dropped: the deploy says which views stand in the way.
    let (message, _) = db_error(
        client
            .query_one(
                "SELECT nango.deploy($1::text, $2::jsonb, true)",
                &[&config(&["Note"], "  Note:\n    id: string\n"), &files()],
            )
            .unwrap_err(),
    );
    assert_eq!(
        message,
        "deploy failed: nango_records.\"note\" must be dropped (a column was removed or changed type) but public.my_notes depend on it"
    );
    client.batch_execute("DROP VIEW public.my_notes").unwrap();
}
