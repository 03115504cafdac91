//! The records engine end to end, driven by the fixture's `records` sync (its steps come from the
//! connection's metadata): change detection, bad batches, batchUpdate and batchDelete, net counts and
//! their notifications, reads by delta, filter, limit and cursor, and a reader paging by cursor while
//! several syncs write the same model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pg_nango_e2e::*;
use serde_json::{Value, json};

/// `id -> (xmin, cursor, data, _nango_metadata)` of a connection's Item records, read from the table.
fn stored(
    client: &mut Client,
    connection_id: &str,
) -> BTreeMap<String, (String, i64, Value, Value)> {
    client
        .query(
            "SELECT r.external_id, r.xmin::text, r.cursor, r.data, nango._record_metadata(r)
             FROM nango.stored_records r JOIN nango.connections c ON c.id = r.connection
             WHERE r.model = 'Item' AND c.connection_id = $1",
            &[&connection_id],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2), row.get(3), row.get(4))))
        .collect()
}

fn counts(client: &mut Client, job: i64) -> Value {
    job_outcome(client, job).1["Item"].clone()
}

#[test]
fn the_content_hash_labels_each_record_and_leaves_unchanged_ones_alone() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "rec-hash");
    let first = json!([{"save": [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}, {"id": "c", "title": "C"}]}]);
    let (job, status) = run_steps(&mut client, "e2e", "rec-hash", first);
    assert_eq!(status, "SUCCESS");
    assert_eq!(
        counts(&mut client, job),
        json!({"added": 3, "updated": 0, "deleted": 0})
    );
    let before = stored(&mut client, "rec-hash");
    // Nango's data_hash: md5 of the record's JSON.stringify text.
    let hash_is_nangos: bool = client
        .query_one(
            "SELECT data_hash = md5('{\"id\":\"a\",\"title\":\"A\"}')::uuid FROM nango.stored_records
             WHERE model = 'Item' AND external_id = 'a'
               AND connection = (SELECT id FROM nango.connections WHERE connection_id = 'rec-hash')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(hash_is_nangos);

    // `a` is the same, `c` the same content with its keys in another order, `b` changed.
    let second = json!([
        {"save": [{"id": "a", "title": "A"}, {"id": "b", "title": "B2"}]},
        {"saveReordered": [{"id": "c", "title": "C"}]}
    ]);
    let (job, status) = run_steps(&mut client, "e2e", "rec-hash", second);
    assert_eq!(status, "SUCCESS");
    assert_eq!(
        counts(&mut client, job),
        json!({"added": 0, "updated": 1, "deleted": 0})
    );
    let after = stored(&mut client, "rec-hash");
    for id in ["a", "c"] {
        assert_eq!(
            before[id], after[id],
            "{id} is not rewritten: same row version, same cursor"
        );
    }
    let (b_before, b_after) = (&before["b"], &after["b"]);
    assert!(b_after.1 > b_before.1, "b moves to a new cursor");
    assert_eq!(b_after.2, json!({"id": "b", "title": "B2"}));
    assert_eq!(b_after.3["last_action"], "UPDATED");
    assert_eq!(b_after.3["first_seen_at"], b_before.3["first_seen_at"]);
    let logs = job_logs(&mut client, job);
    assert!(
        logs.iter().any(|(level, message, _)| level == "info"
            && message == "batchSave Item: 2 records, 1 written, 1 unchanged"),
        "{logs:?}"
    );

    // Deleting twice deletes once; saving a deleted record again adds it again.
    let third =
        json!([{"delete": [{"id": "c"}]}, {"delete": [{"id": "c"}, {"id": "never-saved"}]}]);
    let (job, _) = run_steps(&mut client, "e2e", "rec-hash", third);
    assert_eq!(
        counts(&mut client, job),
        json!({"added": 0, "updated": 0, "deleted": 1})
    );
    let deleted = stored(&mut client, "rec-hash")["c"].clone();
    assert_eq!(
        deleted.2,
        json!({"id": "c", "title": "C"}),
        "the last payload is kept"
    );
    assert_eq!(deleted.3["last_action"], "DELETED");
    assert!(deleted.3["deleted_at"].is_string());

    let fourth = json!([{"save": [{"id": "c", "title": "C"}]}]);
    let (job, _) = run_steps(&mut client, "e2e", "rec-hash", fourth);
    assert_eq!(
        counts(&mut client, job),
        json!({"added": 1, "updated": 0, "deleted": 0})
    );
    let revived = stored(&mut client, "rec-hash")["c"].clone();
    assert_eq!(revived.3["last_action"], "ADDED");
    assert_eq!(revived.3["deleted_at"], Value::Null);
    assert!(
        revived.3["first_seen_at"].as_str() > before["c"].3["first_seen_at"].as_str(),
        "first_seen_at starts over"
    );
    assert_eq!(revived.3["first_seen_at"], revived.3["last_modified_at"]);
}

#[test]
fn a_bad_batch_is_rejected_whole_naming_the_index() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "rec-bad");
    let long_id = "x".repeat(256);
    let cases = [
        (
            json!([{"id": "x1"}, {"title": "no id"}]),
            "record at index 1 has no id field",
        ),
        (
            json!([{"id": "x1"}, {"id": "x2"}, {"id": long_id}]),
            "record at index 2 has an id longer than 255 characters",
        ),
        (
            json!([{"id": "x1"}, 5]),
            "record at index 1 is not an object",
        ),
    ];
    for (batch, reason) in cases {
        let steps = json!([{"save": [{"id": "ok"}]}, {"save": batch}]);
        let (job, status) = run_steps(&mut client, "e2e", "rec-bad", steps);
        assert_eq!(status, "ERROR");
        let error = job_outcome(&mut client, job).2.expect("an error");
        let description = error["description"].as_str().unwrap();
        assert!(
            description.contains(&format!("nango.batchSave: {reason}")),
            "{description}"
        );
        let ids: Vec<String> = stored(&mut client, "rec-bad").into_keys().collect();
        assert_eq!(ids, ["ok"], "nothing of the bad batch is written");
    }

    // A repeated id keeps its last occurrence, with a warning.
    let steps = json!([{"save": [{"id": "dup", "title": "first"}, {"id": "other"}, {"id": "dup", "title": "last"}]}]);
    let (job, status) = run_steps(&mut client, "e2e", "rec-bad", steps);
    assert_eq!(status, "SUCCESS");
    assert_eq!(stored(&mut client, "rec-bad")["dup"].2["title"], "last");
    assert_eq!(counts(&mut client, job)["added"], 2);
    let logs = job_logs(&mut client, job);
    assert!(
        logs.iter()
            .any(|(level, message, _)| level == "warn" && message.contains("duplicate id 'dup'")),
        "{logs:?}"
    );
}

#[test]
fn batch_update_merges_deeply_and_batch_delete_keeps_the_payload() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "rec-merge");
    let record = json!({"id": "m", "title": "T", "details": {"a": 1, "nested": {"x": 1, "y": 2}}, "tags": ["a", "b"]});
    let steps = json!([{"save": [record, {"id": "n", "title": "N"}]}]);
    run_steps(&mut client, "e2e", "rec-merge", steps);

    let steps = json!([{"update": [
        {"id": "m", "details": {"nested": {"y": 3}, "b": 2}, "tags": ["c"]},
        {"id": "ghost", "title": "G"}
    ]}]);
    let (job, status) = run_steps(&mut client, "e2e", "rec-merge", steps);
    assert_eq!(status, "SUCCESS");
    assert_eq!(
        counts(&mut client, job),
        json!({"added": 0, "updated": 1, "deleted": 0})
    );
    let records = stored(&mut client, "rec-merge");
    assert_eq!(
        records["m"].2,
        json!({"id": "m", "title": "T", "details": {"a": 1, "b": 2, "nested": {"x": 1, "y": 3}}, "tags": ["c"]}),
        "objects merged, arrays replaced, fields not in the update kept"
    );
    assert_eq!(records["m"].3["last_action"], "UPDATED");
    assert!(
        !records.contains_key("ghost"),
        "batchUpdate creates nothing"
    );
    let logs = job_logs(&mut client, job);
    assert!(
        logs.iter().any(|(level, message, _)| level == "warn"
            && message.contains("batchUpdate Item: 1 records are not stored")
            && message.contains("ghost")),
        "{logs:?}"
    );

    // An update that changes nothing writes nothing; a delete keeps the payload; a deleted record is
    // not updated.
    let cursor_before = records["m"].1;
    let steps = json!([
        {"update": [{"id": "m", "title": "T"}]},
        {"delete": [{"id": "n"}]},
        {"update": [{"id": "n", "title": "changed after delete"}]}
    ]);
    let (job, _) = run_steps(&mut client, "e2e", "rec-merge", steps);
    assert_eq!(
        counts(&mut client, job),
        json!({"added": 0, "updated": 0, "deleted": 1})
    );
    let records = stored(&mut client, "rec-merge");
    assert_eq!(records["m"].1, cursor_before);
    assert_eq!(records["n"].2, json!({"id": "n", "title": "N"}));
    assert_eq!(records["n"].3["last_action"], "DELETED");

    // The merged record saved whole, its keys in the script's order: its text hashes differently from the
    // merge, but the content is what is stored, so it is unchanged.
    let merged = json!({"id": "m", "title": "T", "details": {"nested": {"x": 1, "y": 3}, "a": 1, "b": 2}, "tags": ["c"]});
    let (job, _) = run_steps(&mut client, "e2e", "rec-merge", json!([{"save": [merged]}]));
    assert_eq!(
        counts(&mut client, job),
        json!({"added": 0, "updated": 0, "deleted": 0})
    );
    assert_eq!(stored(&mut client, "rec-merge")["m"], records["m"]);
}

#[test]
fn counts_and_notifications_are_the_net_change_of_the_run() {
    let mut client = connect();
    let mut listener = connect();
    listener.batch_execute("LISTEN nango").unwrap();
    create_connection(&mut client, "e2e", "rec-net");
    let steps = json!([{"save": [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}, {"id": "c", "title": "C"}]}]);
    let (job, _) = run_steps(&mut client, "e2e", "rec-net", steps);
    let bodies = notifications_for(&mut listener, job, 1);
    assert_eq!(bodies.len(), 1);
    assert_eq!(
        bodies[0]["responseResults"],
        json!({"added": 3, "updated": 0, "deleted": 0})
    );

    // Each record counts once, by where it ends: a updated twice, new added then changed, b deleted then
    // saved again (added), c deleted.
    let steps = json!([
        {"save": [{"id": "a", "title": "A2"}]},
        {"save": [{"id": "a", "title": "A3"}, {"id": "new", "title": "x"}]},
        {"save": [{"id": "new", "title": "y"}]},
        {"delete": [{"id": "b"}, {"id": "c"}]},
        {"save": [{"id": "b", "title": "B"}]}
    ]);
    let (job, status) = run_steps(&mut client, "e2e", "rec-net", steps);
    assert_eq!(status, "SUCCESS");
    let expected = json!({"added": 1, "updated": 2, "deleted": 1});
    assert_eq!(counts(&mut client, job), expected);
    let bodies = notifications_for(&mut listener, job, 1);
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["responseResults"], expected);

    // The counts are what a reader of the delta finds.
    let modified_after = bodies[0]["modifiedAfter"].as_str().unwrap().to_string();
    let delta: Vec<(String, String)> = pairs(
        &mut client,
        "SELECT id, _nango_metadata ->> 'last_action' FROM nango.records('Item', delta => $1::text::timestamptz, connection_id => 'rec-net')",
        &[&modified_after],
    );
    let mut delta_sorted = delta.clone();
    delta_sorted.sort();
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        delta_sorted,
        pairs(&[
            ("a", "UPDATED"),
            ("b", "ADDED"),
            ("c", "DELETED"),
            ("new", "UPDATED")
        ])
    );
}

/// `(records, looked_up)` of each batchSave of a job, from its log lines' payloads.
fn saves_looked_up(client: &mut Client, job: i64) -> Vec<(i64, bool)> {
    pairs(
        client,
        "SELECT (payload ->> 'records')::bigint, (payload ->> 'looked_up')::boolean FROM nango.logs
         WHERE job = $1 AND message LIKE 'batchSave %' ORDER BY id",
        &[&job],
    )
}

#[test]
fn a_first_sync_inserts_new_records_without_lookup_and_still_finds_repeated_ones() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "rec-fresh");
    // a and b, then c are new; b comes again (changed), then a is deleted and saved again.
    let steps = json!([
        {"save": [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}]},
        {"save": [{"id": "c", "title": "C"}]},
        {"save": [{"id": "b", "title": "B2"}, {"id": "e", "title": "E"}]},
        {"delete": [{"id": "a"}]},
        {"save": [{"id": "a", "title": "A"}, {"id": "f", "title": "F"}]}
    ]);
    let (job, status) = run_steps(&mut client, "e2e", "rec-fresh", steps);
    assert_eq!(status, "SUCCESS", "{:?}", job_logs(&mut client, job));
    assert_eq!(
        saves_looked_up(&mut client, job),
        [(2, false), (1, false), (2, true), (2, true)],
        "new records are inserted as they are until an id comes again"
    );
    assert_eq!(
        counts(&mut client, job),
        json!({"added": 4, "updated": 1, "deleted": 0})
    );
    let rows = stored(&mut client, "rec-fresh");
    let summary: Vec<(&str, Value, Value)> = rows
        .iter()
        .map(|(id, (_, _, data, metadata))| {
            (
                id.as_str(),
                data["title"].clone(),
                metadata["last_action"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a", json!("A"), json!("ADDED")),
            ("b", json!("B2"), json!("UPDATED")),
            ("c", json!("C"), json!("ADDED")),
            ("e", json!("E"), json!("ADDED")),
            ("f", json!("F"), json!("ADDED"))
        ]
    );
    // Cursors follow the batches: c, then b and e, then a and f.
    let cursor = |id: &str| rows[id].1;
    assert!(cursor("c") < cursor("b").min(cursor("e")));
    assert!(cursor("b").max(cursor("e")) < cursor("a").min(cursor("f")));

    // The next run finds the records stored: it looks them up, and nothing changes.
    let steps = json!([{"save": [{"id": "c", "title": "C"}, {"id": "g", "title": "G"}]}]);
    let (job, _) = run_steps(&mut client, "e2e", "rec-fresh", steps);
    assert_eq!(saves_looked_up(&mut client, job), [(2, true)]);
    assert_eq!(
        counts(&mut client, job),
        json!({"added": 1, "updated": 0, "deleted": 0})
    );
    assert_eq!(rows["c"], stored(&mut client, "rec-fresh")["c"]);
}

#[test]
fn a_record_stored_by_another_writer_during_a_first_sync_is_looked_up() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "rec-fresh-other");
    let steps = json!([
        {"save": [{"id": "a", "title": "A"}]},
        {"pauseMs": 1500},
        {"save": [{"id": "b", "title": "B"}, {"id": "x", "title": "X"}]}
    ]);
    set_metadata(
        &mut client,
        "e2e",
        "rec-fresh-other",
        &json!({"steps": steps}),
    );
    let job: i64 = client
        .query_one(
            "SELECT nango.trigger_sync('e2e', 'records', 'rec-fresh-other')",
            &[],
        )
        .unwrap()
        .get(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while saves_looked_up(&mut client, job).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no first batch");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // While the run pauses, x is stored by another writer, as the store's writers write: under the
    // model's lock, with the next cursor.
    client
        .batch_execute(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtext('pg_nango records'), hashtext('Item'));
             INSERT INTO nango.stored_records
                 (model, connection, external_id, data, data_hash, first_seen_at, last_modified_at, last_action, cursor)
             SELECT 'Item', c.id, 'x', '{\"id\": \"x\", \"title\": \"elsewhere\"}',
                    md5('{\"id\":\"x\",\"title\":\"elsewhere\"}')::uuid, now(), now(), 'ADDED',
                    nextval('nango.record_cursor')
             FROM nango.connections c WHERE c.connection_id = 'rec-fresh-other';
             COMMIT;",
        )
        .unwrap();
    let status: String = client
        .query_one("SELECT nango.wait_for_job($1, '60 seconds')", &[&job])
        .unwrap()
        .get(0);
    assert_eq!(status, "SUCCESS", "{:?}", job_logs(&mut client, job));
    assert_eq!(saves_looked_up(&mut client, job), [(1, false), (2, true)]);
    assert_eq!(
        counts(&mut client, job),
        json!({"added": 2, "updated": 1, "deleted": 0})
    );
    let x = stored(&mut client, "rec-fresh-other")["x"].clone();
    assert_eq!(x.2, json!({"id": "x", "title": "X"}));
    assert_eq!(x.3["last_action"], "UPDATED");
}

#[test]
fn no_success_notification_when_the_final_transaction_fails() {
    let mut client = connect();
    let mut listener = connect();
    listener.batch_execute("LISTEN nango").unwrap();
    create_connection(&mut client, "e2e", "rec-final");
    client
        .batch_execute(
            "CREATE FUNCTION refuse_success() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'success refused by a test trigger'; END $$;
             CREATE TRIGGER refuse_success BEFORE UPDATE ON nango.jobs FOR EACH ROW
             WHEN (NEW.status = 'SUCCESS' AND NEW.connection_id = 'rec-final')
             EXECUTE FUNCTION refuse_success();",
        )
        .unwrap();
    let (job, status) = run_steps(
        &mut client,
        "e2e",
        "rec-final",
        json!([{"save": [{"id": "kept"}]}]),
    );
    client
        .batch_execute("DROP TRIGGER refuse_success ON nango.jobs; DROP FUNCTION refuse_success();")
        .unwrap();
    assert_eq!(status, "ERROR");
    let error = job_outcome(&mut client, job).2.unwrap();
    assert_eq!(error["type"], "script_internal_error");
    assert!(
        error["description"]
            .as_str()
            .unwrap()
            .contains("could not record the end of the run: success refused by a test trigger")
    );

    let bodies = notifications_for(&mut listener, job, 1);
    assert_eq!(bodies.len(), 1, "only the failure is announced: {bodies:?}");
    assert_eq!(bodies[0]["success"], false);
    let last_sync_date: Option<String> = client
        .query_one(
            "SELECT last_sync_date::text FROM nango.sync_status WHERE connection_id = 'rec-final' AND sync = 'records'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        last_sync_date, None,
        "a run that did not end well does not advance lastSyncDate"
    );
    assert!(
        stored(&mut client, "rec-final").contains_key("kept"),
        "what the run saved stays"
    );
}

/// `nango.records(...)` ids for a query tail such as `filter => 'added'`.
fn read_ids(client: &mut Client, arguments: &str) -> Vec<String> {
    client
        .query(
            &format!(
                "SELECT id FROM nango.records('Item', connection_id => 'rec-read', {arguments})"
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn reads_follow_delta_filter_limit_and_cursor() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "rec-read");
    let first: Vec<Value> = (1..=5)
        .map(|i| json!({"id": format!("r{i}"), "title": "v1"}))
        .collect();
    run_steps(&mut client, "e2e", "rec-read", json!([{"save": first}]));
    let steps = json!([
        {"save": [{"id": "r2", "title": "v2"}]},
        {"delete": [{"id": "r3"}]},
        {"save": [{"id": 6, "title": "numeric id"}]}
    ]);
    let (job, _) = run_steps(&mut client, "e2e", "rec-read", steps);
    let started = job_started_at(&mut client, job);

    assert_eq!(
        read_ids(&mut client, &format!("delta => '{started}'")),
        ["r2", "r3", "6"]
    );
    assert_eq!(
        read_ids(&mut client, "filter => 'added'"),
        ["r1", "r4", "r5", "6"]
    );
    assert_eq!(read_ids(&mut client, "filter => 'updated'"), ["r2"]);
    assert_eq!(read_ids(&mut client, "filter => 'deleted'"), ["r3"]);
    assert_eq!(
        read_ids(&mut client, "filter => 'Added, deleted'"),
        ["r1", "r4", "r5", "r3", "6"]
    );
    assert_eq!(
        read_ids(
            &mut client,
            &format!("delta => '{started}', filter => 'added,updated'")
        ),
        ["r2", "6"]
    );

    // Pages of two, each continuing from the last row's cursor, read everything once in order.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let rows = client
            .query(
                "SELECT id, cursor FROM nango.records('Item', connection_id => 'rec-read', \"limit\" => 2, cursor => $1)",
                &[&cursor],
            )
            .unwrap();
        if rows.is_empty() {
            break;
        }
        assert!(rows.len() <= 2);
        paged.extend(rows.iter().map(|r| r.get::<_, String>(0)));
        cursor = Some(rows.last().unwrap().get(1));
    }
    assert_eq!(paged, read_ids(&mut client, "filter => NULL"));
    assert_eq!(paged.len(), 6);

    assert!(
        read_ids(&mut client, "provider_config_key => 'e2e-other'").is_empty(),
        "another integration's records are not this one's"
    );
    let typed: (String, String) = {
        let row = client
            .query_one("SELECT title, _nango_last_action FROM nango_records.item WHERE id = '6' AND _nango_connection_id = 'rec-read'", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(typed, ("numeric id".to_string(), "ADDED".to_string()));

    let bad_filter = client
        .query(
            "SELECT * FROM nango.records('Item', filter => 'added,gone')",
            &[],
        )
        .unwrap_err();
    assert_eq!(db_error(bad_filter).0, "invalid filter \"gone\"");
    let bad_cursor = client
        .query("SELECT * FROM nango.records('Item', cursor => 'abc')", &[])
        .unwrap_err();
    assert_eq!(db_error(bad_cursor).0, "invalid cursor \"abc\"");
}

/// Writers' datasets: `count` items with ids `<prefix>-<n>` and a title naming the version.
fn dataset(prefix: &str, count: usize, version: &str) -> Vec<Value> {
    (0..count)
        .map(|n| json!({"id": format!("{prefix}-{n:04}"), "title": format!("{prefix} {version}")}))
        .collect()
}

#[test]
fn a_reader_paging_by_cursor_never_misses_a_change_while_syncs_write_the_same_model() {
    let mut client = connect();
    // Three writers of Item: two connections of one integration, one of another integration.
    let writers = [("e2e", "cw-1"), ("e2e", "cw-2"), ("e2e-other", "cw-3")];
    for (integration, connection_id) in writers {
        create_connection(&mut client, integration, connection_id);
        mock().set_dataset(
            &format!("{connection_id}-v1"),
            dataset(connection_id, 400, "v1"),
        );
        // The second pass changes every other record, in another page size.
        let mut v2 = dataset(connection_id, 400, "v1");
        for (n, item) in v2.iter_mut().enumerate().filter(|(n, _)| n % 2 == 0) {
            item["title"] = json!(format!("{connection_id} v2 {n}"));
        }
        mock().set_dataset(&format!("{connection_id}-v2"), v2);
        let steps = json!([
            {"dataset": format!("{connection_id}-v1"), "limit": 10},
            {"dataset": format!("{connection_id}-v2"), "limit": 7}
        ]);
        set_metadata(
            &mut client,
            integration,
            connection_id,
            &json!({"steps": steps}),
        );
    }

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut client = connect();
            let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
            let mut cursor: Option<String> = None;
            let mut last_cursor = 0i64;
            let mut pass = |client: &mut Client, seen: &mut BTreeMap<String, Option<String>>| loop {
                let rows = client
                    .query(
                        "SELECT id, data ->> 'title', cursor FROM nango.records('Item', \"limit\" => 50, cursor => $1)",
                        &[&cursor],
                    )
                    .unwrap();
                for row in &rows {
                    let row_cursor: String = row.get(2);
                    let number: i64 = row_cursor.parse().unwrap();
                    assert!(number > last_cursor, "cursors only grow");
                    last_cursor = number;
                    seen.insert(row.get(0), row.get(1));
                    cursor = Some(row_cursor);
                }
                if rows.len() < 50 {
                    break;
                }
            };
            while !done.load(Ordering::SeqCst) {
                pass(&mut client, &mut seen);
            }
            pass(&mut client, &mut seen);
            seen
        })
    };
    let jobs: Vec<i64> = writers
        .iter()
        .map(|(integration, connection_id)| {
            client
                .query_one(
                    "SELECT nango.trigger_sync($1, 'records', $2)",
                    &[integration, connection_id],
                )
                .unwrap()
                .get(0)
        })
        .collect();
    for job in &jobs {
        let status: String = client
            .query_one("SELECT nango.wait_for_job($1, '120 seconds')", &[job])
            .unwrap()
            .get(0);
        assert_eq!(status, "SUCCESS");
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().expect("the reader");

    let stored: BTreeMap<String, String> = pairs(
        &mut client,
        "SELECT id, data ->> 'title' FROM nango.records('Item') WHERE id LIKE 'cw-%'",
        &[],
    );
    assert_eq!(stored.len(), 1200);
    let seen: BTreeMap<String, Option<String>> = seen
        .into_iter()
        .filter(|(id, _)| id.starts_with("cw-"))
        .collect();
    let missed: Vec<_> = stored
        .iter()
        .filter(|(id, title)| seen.get(*id) != Some(&Some(title.to_string())))
        .take(5)
        .collect();
    assert!(
        missed.is_empty(),
        "the reader missed changes, e.g. {missed:?}"
    );
}
