//! The script SDK end to end: checkpoints, deletion detection (explicit windows and `track_deletes`),
//! getRecordsByIds, every pagination kind, and the proxy's retries.

use pg_nango_e2e::*;
use serde_json::{Value, json};

fn people(ids: &[&str]) -> Vec<Value> {
    ids.iter()
        .map(|id| json!({"id": id, "name": format!("Person {id}")}))
        .collect()
}

/// The `cursor` query parameters of the mock's requests for `path`, in order.
fn cursors_requested(path: &str) -> Vec<Option<String>> {
    mock()
        .requests()
        .iter()
        .filter(|r| r["path"] == path)
        .map(|r| r["query"]["cursor"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn checkpoints_survive_a_failed_run_and_deletion_windows_span_runs() {
    let mut client = connect();
    mock().set_dataset("contacts-a", people(&["c1", "c2", "c3", "c4", "c5", "c6"]));
    create_connection_with_metadata(
        &mut client,
        "e2e",
        "contacts-conn",
        &json!({"dataset": "contacts-a", "failAtCursor": "4"}),
    );

    // Run 1 saves two pages, checkpoints cursor 4, then fails.
    let (job, status) = run_sync(&mut client, "e2e", "contacts", "contacts-conn");
    assert_eq!(status, "ERROR");
    let (_, _, error) = job_outcome(&mut client, job);
    let description = error.unwrap()["description"].as_str().unwrap().to_string();
    assert!(
        description.starts_with("stopping at cursor 4 on purpose (at e2e/syncs/contacts.ts:"),
        "{description}"
    );
    let checkpoint: Value = client
        .query_one(
            "SELECT c.checkpoint FROM nango.checkpoints c JOIN nango.syncs s ON s.id = c.sync
             JOIN nango.connections n ON n.id = s.connection WHERE n.connection_id = 'contacts-conn'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(checkpoint, json!({"cursor": "4"}));
    assert_eq!(
        record_actions(&mut client, "Contact", "contacts-conn").len(),
        4
    );

    // Run 2 resumes from the checkpoint, reads only the rest, and closes the window run 1 opened: every
    // contact was seen across the two runs, so nothing is deleted.
    set_metadata(
        &mut client,
        "e2e",
        "contacts-conn",
        &json!({"dataset": "contacts-a"}),
    );
    let (job, status) = run_sync(&mut client, "e2e", "contacts", "contacts-conn");
    assert_eq!(status, "SUCCESS");
    assert_eq!(
        cursors_requested("/datasets/contacts-a"),
        [Some("0".into()), Some("2".into()), Some("4".into())]
    );
    let (_, result, _) = job_outcome(&mut client, job);
    assert_eq!(
        result,
        json!({"Contact": {"added": 2, "updated": 0, "deleted": 0}})
    );
    let logs = job_logs(&mut client, job);
    assert_eq!(logs[0].2, Some(json!({"cursor": "4"})));
    let done = logs.iter().find(|(_, m, _)| m == "done").expect("done log");
    assert_eq!(
        done.2,
        Some(json!({"deletedKeys": [], "knownIds": ["c1"], "c1": "Person c1"}))
    );

    // Run 3 starts over (the checkpoint was cleared); c2 and c5 are gone upstream.
    mock().set_dataset("contacts-a", people(&["c1", "c3", "c4", "c6"]));
    let (job, status) = run_sync(&mut client, "e2e", "contacts", "contacts-conn");
    assert_eq!(status, "SUCCESS");
    let (_, result, _) = job_outcome(&mut client, job);
    assert_eq!(
        result,
        json!({"Contact": {"added": 0, "updated": 0, "deleted": 2}})
    );
    let done = job_logs(&mut client, job)
        .into_iter()
        .find(|(_, m, _)| m == "done")
        .unwrap();
    assert_eq!(done.2.unwrap()["deletedKeys"], json!(["c2", "c5"]));
    assert_eq!(
        record_actions(&mut client, "Contact", "contacts-conn"),
        [
            ("c1".to_string(), "ADDED".to_string()),
            ("c2".into(), "DELETED".into()),
            ("c3".into(), "ADDED".into()),
            ("c4".into(), "ADDED".into()),
            ("c5".into(), "DELETED".into()),
            ("c6".into(), "ADDED".into()),
        ]
    );
}

#[test]
fn track_deletes_applies_only_when_the_run_succeeds() {
    let mut client = connect();
    mock().set_dataset("legacy-a", people(&["a", "b", "c"]));
    create_connection_with_metadata(
        &mut client,
        "e2e",
        "legacy-conn",
        &json!({"dataset": "legacy-a"}),
    );
    assert_eq!(
        run_sync(&mut client, "e2e", "legacy", "legacy-conn").1,
        "SUCCESS"
    );

    // A failed run saw only "a": it deletes nothing.
    mock().set_dataset("legacy-a", people(&["a", "c"]));
    set_metadata(
        &mut client,
        "e2e",
        "legacy-conn",
        &json!({"dataset": "legacy-a", "failAfterFirstPage": true}),
    );
    let (job, status) = run_sync(&mut client, "e2e", "legacy", "legacy-conn");
    assert_eq!(status, "ERROR");
    assert_eq!(job_outcome(&mut client, job).1["LegacyItem"]["deleted"], 0);
    assert!(
        record_actions(&mut client, "LegacyItem", "legacy-conn")
            .iter()
            .all(|(_, action)| action == "ADDED")
    );

    // A successful run that does not see "b" marks it deleted, and says so in its counts.
    set_metadata(
        &mut client,
        "e2e",
        "legacy-conn",
        &json!({"dataset": "legacy-a"}),
    );
    let (job, status) = run_sync(&mut client, "e2e", "legacy", "legacy-conn");
    assert_eq!(status, "SUCCESS");
    assert_eq!(
        job_outcome(&mut client, job).1,
        json!({"LegacyItem": {"added": 0, "updated": 0, "deleted": 1}})
    );
    assert_eq!(
        record_actions(&mut client, "LegacyItem", "legacy-conn"),
        [
            ("a".to_string(), "ADDED".to_string()),
            ("b".into(), "DELETED".into()),
            ("c".into(), "ADDED".into()),
        ]
    );
}

#[test]
fn each_pagination_kind_reads_every_page() {
    let mut client = connect();
    let ids = ["p1", "p2", "p3", "p4", "p5"];
    mock().set_dataset("pages-a", people(&ids));
    for kind in ["cursor", "link", "link-body", "offset"] {
        let connection = format!("pages-{kind}");
        create_connection_with_metadata(
            &mut client,
            "e2e",
            &connection,
            &json!({"kind": kind, "dataset": "pages-a"}),
        );
        let (job, status) = run_sync(&mut client, "e2e", "pages", &connection);
        assert_eq!(
            status,
            "SUCCESS",
            "{kind}: {:?}",
            job_outcome(&mut client, job).2
        );
        let rows = client
            .query(
                "SELECT id, (data ->> 'page')::int FROM nango.records('PagedItem', connection_id => $1) ORDER BY id",
                &[&connection],
            )
            .unwrap();
        let pages: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(
            pages,
            [
                ("p1".to_string(), 1),
                ("p2".into(), 1),
                ("p3".into(), 2),
                ("p4".into(), 2),
                ("p5".into(), 3)
            ],
            "{kind}"
        );
    }
    let link_pages: Vec<Value> = mock()
        .requests()
        .into_iter()
        .filter(|r| r["path"] == "/paged/link/pages-a")
        .map(|r| r["query"]["page"].clone())
        .collect();
    assert_eq!(link_pages, [Value::Null, json!("2"), json!("3")]);
    let offsets: Vec<Value> = mock()
        .requests()
        .into_iter()
        .filter(|r| r["path"] == "/paged/offset/pages-a")
        .map(|r| r["query"]["offset"].clone())
        .collect();
    // The last page is short (1 < limit 2), so no empty page is asked for.
    assert_eq!(offsets, [json!("0"), json!("2"), json!("4")]);
}

/// Runs `e2e/flaky` with this metadata; returns the job's (status, error description, retry log lines).
fn flaky_run(client: &mut Client, name: &str, metadata: Value) -> (String, String, Vec<String>) {
    create_connection_with_metadata(client, "e2e", name, &metadata);
    let (job, status) = run_sync(client, "e2e", "flaky", name);
    let (_, _, error) = job_outcome(client, job);
    let retries = job_logs(client, job)
        .into_iter()
        .filter(|(_, m, _)| m.starts_with("Retrying HTTP call"))
        .map(|(_, m, _)| m)
        .collect();
    let error = error.map_or(String::new(), |e| {
        format!(
            "{}: {}",
            e["type"].as_str().unwrap(),
            e["description"].as_str().unwrap()
        )
    });
    (status, error, retries)
}

#[test]
fn retries_follow_the_status_and_the_rate_limit_headers() {
    let mut client = connect();

    let (status, _, retries) = flaky_run(
        &mut client,
        "flaky-500",
        json!({"key": "k500", "fail": 2, "status": 500, "retries": 3}),
    );
    assert_eq!(status, "SUCCESS");
    // Exponential from nango.retry_base_delay (10 ms in the test cluster).
    assert_eq!(
        retries,
        [
            "Retrying HTTP call (reason: status 500). Waiting for 10ms [1/3]",
            "Retrying HTTP call (reason: status 500). Waiting for 20ms [2/3]"
        ]
    );

    let (status, _, retries) = flaky_run(
        &mut client,
        "flaky-429-after",
        json!({"key": "k429a", "fail": 1, "status": 429, "retry_after": "1", "retries": 2}),
    );
    assert_eq!(status, "SUCCESS");
    assert_eq!(
        retries,
        ["Retrying HTTP call (reason: status 429). Waiting for 1000ms [1/2]"]
    );

    let (status, _, retries) = flaky_run(
        &mut client,
        "flaky-429-reset",
        json!({"key": "k429r", "fail": 1, "status": 429, "reset_in": 2, "retries": 2}),
    );
    assert_eq!(status, "SUCCESS");
    assert_eq!(retries.len(), 1);
    let waited: u64 = retries[0]
        .split("Waiting for ")
        .nth(1)
        .and_then(|rest| rest.split("ms").next())
        .and_then(|ms| ms.parse().ok())
        .unwrap();
    assert!((1000..=2000).contains(&waited), "{}", retries[0]);

    let (status, error, retries) = flaky_run(
        &mut client,
        "flaky-exhausted",
        json!({"key": "kx", "fail": 10, "status": 503, "retries": 2}),
    );
    assert_eq!(status, "ERROR");
    assert_eq!(retries.len(), 2);
    assert!(
        error.starts_with("script_http_error: Request failed with status code 503"),
        "{error}"
    );

    // No `retries`: a 500 fails at once.
    let (status, error, retries) = flaky_run(
        &mut client,
        "flaky-default",
        json!({"key": "kd", "fail": 1, "status": 500, "retries": 0}),
    );
    assert_eq!(status, "ERROR");
    assert!(retries.is_empty());
    assert!(error.contains("status code 500"), "{error}");

    // A 400 is not retryable.
    let (status, _, retries) = flaky_run(
        &mut client,
        "flaky-400",
        json!({"key": "k400", "fail": 1, "status": 400, "retries": 3}),
    );
    assert_eq!(status, "ERROR");
    assert!(retries.is_empty());
}
