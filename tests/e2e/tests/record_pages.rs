//! Reading a model page by page with `nango.records(model, "limit" => n, cursor => c)`: a late page's plan
//! starts at its cursor in the (model, cursor) index and reads only its own rows, and `_nango_metadata` is
//! built inline in the query (not by a function call per row), so a page costs the same wherever it is.

use pg_nango_e2e::*;
use serde_json::{Value, json};

#[test]
fn a_late_page_reads_only_its_rows_and_builds_its_metadata_inline() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "pages-read");
    let items: Vec<Value> = (0..2000)
        .map(|n| json!({"id": format!("p{n:05}"), "title": format!("Ticket {n}")}))
        .collect();
    let steps: Vec<Value> = items.chunks(500).map(|c| json!({"save": c})).collect();
    let (_, status) = run_steps(&mut client, "e2e", "pages-read", Value::Array(steps));
    assert_eq!(status, "SUCCESS");
    client
        .batch_execute("ANALYZE nango.stored_records")
        .unwrap();

    // The cursor before the last 100 records.
    let late: String = client
        .query_one(
            "SELECT cursor FROM nango.records('Item') ORDER BY cursor::bigint DESC OFFSET 100 LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    let page = format!("SELECT * FROM nango.records('Item', \"limit\" => 100, cursor => '{late}')");
    let plan: Vec<String> = client
        .query(
            &format!("EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) {page}"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = plan.join("\n");
    // An index scan or a bitmap scan, as the planner likes, either way from the cursor on and 100 rows.
    assert!(
        plan.lines().any(|line| line.contains("Index Scan")
            && line.contains("stored_records_by_cursor")
            && line.contains("(actual rows=100 loops=1)")),
        "the page reads its 100 rows from the cursor index:\n{plan}"
    );
    assert!(
        plan.contains(&format!(
            "Index Cond: ((r.model = 'Item'::text) AND (r.cursor > '{late}'::bigint))"
        )),
        "the index scan starts at the cursor:\n{plan}"
    );
    assert!(
        plan.contains("jsonb_build_object('first_seen_at', r.first_seen_at")
            && !plan.contains("_record_metadata"),
        "_nango_metadata is built inline:\n{plan}"
    );

    // The page itself: the last 100 records in cursor order, each with its metadata.
    let rows = client.query(&page, &[]).unwrap();
    let ids: Vec<String> = rows.iter().map(|row| row.get("id")).collect();
    let expected: Vec<String> = (1900..2000).map(|n| format!("p{n:05}")).collect();
    assert_eq!(ids, expected);
    for row in &rows {
        let metadata: Value = row.get("_nango_metadata");
        let cursor: String = row.get("cursor");
        assert_eq!(metadata["cursor"], json!(cursor));
        assert_eq!(metadata["last_action"], "ADDED");
        assert_eq!(metadata["deleted_at"], Value::Null);
        assert!(metadata["first_seen_at"].is_string() && metadata["last_modified_at"].is_string());
    }
}
