//! The store's statistics: a write into `nango.stored_records` while the table has none (new, or emptied by
//! `TRUNCATE`) analyzes it, so the planner looks a batch's records up by primary key rather than scanning
//! a connection's records for each id. Its own binary: it empties the store of its cluster.

use pg_nango_e2e::*;
use serde_json::json;

fn has_statistics(client: &mut Client) -> bool {
    client
        .query_one(
            "SELECT reltuples >= 0 FROM pg_class WHERE oid = 'nango.stored_records'::regclass",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn a_write_into_a_store_without_statistics_analyzes_it() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "stats");
    let save = json!([{"save": [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}]}]);
    let (_, status) = run_steps(&mut client, "e2e", "stats", save.clone());
    assert_eq!(status, "SUCCESS");
    assert!(
        has_statistics(&mut client),
        "the first write analyzed the store"
    );

    // Emptied while the run worker stays up: the next write analyzes it again.
    client
        .batch_execute("TRUNCATE nango.stored_records")
        .unwrap();
    assert!(!has_statistics(&mut client));
    let (job, status) = run_steps(&mut client, "e2e", "stats", save);
    assert_eq!(status, "SUCCESS");
    assert_eq!(
        job_outcome(&mut client, job).1["Item"],
        json!({"added": 2, "updated": 0, "deleted": 0})
    );
    assert!(
        has_statistics(&mut client),
        "the write after the TRUNCATE analyzed the store"
    );
}
