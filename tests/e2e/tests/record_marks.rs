//! `nango.records(model, delta => …)` starts reading at the least cursor marked since `delta` in
//! `nango.record_marks`: it reads only the rows written since then, and it stays exact when the scheduler
//! merges the marks of an older time into hourly and daily ones. Its own binary, hence its own cluster: the
//! test moves every record and mark of the model back in time.

use std::time::{Duration, Instant};

use pg_nango_e2e::*;
use serde_json::{Value, json};

/// Ids `nango.records` returns for `delta`, in cursor order.
fn delta_ids(client: &mut Client, delta: &str) -> Vec<String> {
    client
        .query(
            "SELECT id FROM nango.records('Item', delta => $1::text::timestamptz)",
            &[&delta],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// What the delta read should return: the ids whose `last_modified_at` is at or after `delta`, read
/// from the table itself.
fn modified_since(client: &mut Client, delta: &str) -> Vec<String> {
    client
        .query(
            "SELECT external_id FROM nango.stored_records
             WHERE model = 'Item' AND last_modified_at >= $1::text::timestamptz ORDER BY cursor",
            &[&delta],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Rows of `nango.stored_records` the executor read for a delta read (returned or removed by a filter),
/// reading by index as it would in a store larger than this test's.
fn rows_read(client: &mut Client, delta: &str) -> i64 {
    client.batch_execute("SET enable_seqscan = off").unwrap();
    let plan: Value = client
        .query_one(
            &format!(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM nango.records('Item', delta => '{delta}')"
            ),
            &[],
        )
        .unwrap()
        .get(0);
    fn walk(node: &Value, total: &mut i64) {
        if node["Relation Name"] == "stored_records" {
            for key in ["Actual Rows", "Rows Removed by Filter"] {
                *total +=
                    node[key].as_i64().unwrap_or(0) * node["Actual Loops"].as_i64().unwrap_or(1);
            }
        }
        for child in node["Plans"].as_array().into_iter().flatten() {
            walk(child, total);
        }
    }
    let mut total = 0;
    walk(&plan[0]["Plan"], &mut total);
    total
}

/// The marks of model Item: `(until, after_cursor)`, in order.
fn marks(client: &mut Client) -> Vec<(String, i64)> {
    pairs(
        client,
        "SELECT until::text, after_cursor FROM nango.record_marks WHERE model = 'Item' ORDER BY until",
        &[],
    )
}

fn save(client: &mut Client, ids: &[&str], title: &str) -> i64 {
    let records: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "title": title}))
        .collect();
    let (job, status) = run_steps(client, "e2e", "marks", json!([{"save": records}]));
    assert_eq!(status, "SUCCESS");
    job
}

/// Moves the records written so far and their marks back in time by `by` (an interval).
fn age_everything(client: &mut Client, by: &str) {
    client
        .batch_execute(&format!(
            "UPDATE nango.stored_records SET last_modified_at = last_modified_at - interval '{by}',
                                             first_seen_at = first_seen_at - interval '{by}';
             UPDATE nango.record_marks SET until = until - interval '{by}';"
        ))
        .unwrap();
}

#[test]
fn delta_reads_start_at_the_marks_and_stay_exact_when_they_merge() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "marks");

    // Two writes a minute apart, two days ago; then one now.
    save(&mut client, &["a1", "a2"], "old");
    age_everything(&mut client, "1 minute");
    save(&mut client, &["a3"], "old");
    age_everything(&mut client, "50 hours");
    // (The scheduler may merge them from now on.)
    let aged = marks(&mut client);
    assert_eq!(aged.len(), 2, "one mark per minute written");
    let job = save(&mut client, &["a2", "a4"], "new");
    let started = job_started_at(&mut client, job);

    // Before everything, at a3's write and just after it, at the last run's start, after everything.
    let points: Vec<String> = {
        let row = client
            .query_one(
                "SELECT (min(last_modified_at) - interval '1 hour')::text,
                        (min(last_modified_at) FILTER (WHERE external_id = 'a3'))::text,
                        (min(last_modified_at) FILTER (WHERE external_id = 'a3') + interval '1 microsecond')::text,
                        $1::text, (now() + interval '1 minute')::text
                 FROM nango.stored_records WHERE model = 'Item'",
                &[&started],
            )
            .unwrap();
        (0..5).map(|i| row.get(i)).collect()
    };
    let check = |client: &mut Client, when: &str| {
        for delta in &points {
            assert_eq!(
                delta_ids(client, delta),
                modified_since(client, delta),
                "delta => {delta} ({when}), marks {:?}",
                marks(client)
            );
        }
    };
    check(&mut client, "marks as written");
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    assert_eq!(
        sorted(delta_ids(&mut client, &points[0])),
        ["a1", "a2", "a3", "a4"]
    );
    assert_eq!(
        sorted(delta_ids(&mut client, &points[1])),
        ["a2", "a3", "a4"]
    );
    assert_eq!(sorted(delta_ids(&mut client, &started)), ["a2", "a4"]);
    assert_eq!(
        rows_read(&mut client, &started),
        2,
        "a delta read of the last run reads only what the run wrote"
    );
    assert!(delta_ids(&mut client, &points[4]).is_empty());
    assert_eq!(
        rows_read(&mut client, &points[4]),
        0,
        "a delta since a time with no write after it reads nothing at all"
    );

    // The scheduler merges at its next cleanup, which a reload brings forward.
    let newest = marks(&mut client).last().cloned();
    client.batch_execute("SELECT pg_reload_conf()").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let merged = loop {
        let now = marks(&mut client);
        if now[..now.len() - 1] != aged[..] {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the old marks were not merged: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // The two old minutes became one mark (unless they straddle midnight), holding the lesser cursor.
    assert_eq!(
        merged[0].1,
        aged[0].1.min(aged[1].1),
        "marks {aged:?} -> {merged:?}"
    );
    assert!(
        merged[0].0 >= aged[0].0,
        "a merged mark ends no earlier than the marks it merged: {aged:?} -> {merged:?}"
    );
    assert_eq!(
        merged.last(),
        newest.as_ref(),
        "this minute's mark stays as it is"
    );
    check(&mut client, "merged marks");
    assert_eq!(rows_read(&mut client, &started), 2);
    assert_eq!(rows_read(&mut client, &points[4]), 0);

    // A model whose marks are gone (deleted by hand) is read from its start: slower, still exact.
    client
        .batch_execute("DELETE FROM nango.record_marks WHERE model = 'Item'")
        .unwrap();
    check(&mut client, "no marks");
    assert_eq!(rows_read(&mut client, &started), 4);
}
