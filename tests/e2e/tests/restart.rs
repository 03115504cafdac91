//! PostgreSQL stopped at once (`pg_ctl stop -m immediate`, as a power loss) in the middle of a run, then
//! started again: the run is ended as failed, every batch is either whole or absent, the job's counts
//! match what is stored, and the next run proceeds. Its own binary, because the whole cluster restarts.

use std::time::{Duration, Instant};

use pg_nango_e2e::*;
use serde_json::{Value, json};

fn stored_count(client: &mut Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM nango.records('Item', connection_id => 'restart-victim')",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn a_run_cut_by_a_server_restart_is_failed_and_the_next_run_proceeds() {
    let mut client = connect();
    let items: Vec<Value> = (0..500)
        .map(|n| json!({"id": format!("i{n:03}"), "title": "t"}))
        .collect();
    mock().set_dataset("restart", items);
    create_connection(&mut client, "e2e", "restart-victim");
    let steps = json!([{"dataset": "restart", "limit": 50, "pauseMs": 300}]);
    set_metadata(
        &mut client,
        "e2e",
        "restart-victim",
        &json!({"steps": steps}),
    );
    let job: i64 = client
        .query_one(
            "SELECT nango.trigger_sync('e2e', 'records', 'restart-victim')",
            &[],
        )
        .unwrap()
        .get(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored_count(&mut client) < 100 {
        assert!(Instant::now() < deadline, "the run never saved two batches");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster().crash_restart();

    let mut client = reconnect(client);
    let status: String = client
        .query_one("SELECT nango.wait_for_job($1, '60 seconds')", &[&job])
        .unwrap()
        .get(0);
    let (_, result, error) = job_outcome(&mut client, job);
    assert_eq!(status, "ERROR");
    assert_eq!(error.expect("an error")["type"], "worker_crashed");
    let kept = stored_count(&mut client);
    assert!((100..500).contains(&kept), "{kept} records");
    assert_eq!(kept % 50, 0, "batches are whole or absent");
    assert_eq!(
        result["Item"]["added"],
        json!(kept),
        "the counts match what is stored"
    );

    let (next, status) = run_sync(&mut client, "e2e", "records", "restart-victim");
    assert_eq!(status, "SUCCESS");
    assert_eq!(stored_count(&mut client), 500);
    assert_eq!(
        job_outcome(&mut client, next).1["Item"]["added"],
        json!(500 - kept)
    );
}
