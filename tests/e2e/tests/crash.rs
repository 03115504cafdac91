//! A run whose worker is killed with SIGKILL: PostgreSQL restarts its processes, the scheduler ends the
//! run as failed, what was committed stays, and the next run proceeds normally. Its own binary, because
//! the crash restarts the whole cluster.

use std::time::{Duration, Instant};

use pg_nango_e2e::*;
use serde_json::Value;

/// Connects, retrying while the cluster recovers from the crash.
fn reconnect() -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match cluster().try_connect() {
            Ok(client) => return client,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(250)),
            Err(error) => panic!("the cluster did not come back after the crash: {error}"),
        }
    }
}

fn saved_ids(client: &mut Client, connection_id: &str) -> Vec<String> {
    record_actions(client, "Slow", connection_id)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn a_killed_run_is_ended_as_crashed_and_the_next_run_proceeds() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "crash-victim");
    let job: i64 = client
        .query_one(
            "SELECT nango.trigger_sync('e2e', 'slow', 'crash-victim')",
            &[],
        )
        .unwrap()
        .get(0);

    // Wait until the first batch is committed and the run waits on the slow endpoint.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        assert!(Instant::now() < deadline, "the run never got going");
        let pid: Option<i32> = client
            .query_one("SELECT pid FROM nango.jobs WHERE id = $1", &[&job])
            .unwrap()
            .get(0);
        if let Some(pid) = pid
            && saved_ids(&mut client, "crash-victim") == ["before-the-wait"]
        {
            break pid;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        unsafe { libc::kill(pid, libc::SIGKILL) },
        0,
        "kill -9 {pid}"
    );
    drop(client);

    let mut client = reconnect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (status, error) = loop {
        let row = client
            .query_one(
                "SELECT status, error FROM nango.jobs WHERE id = $1",
                &[&job],
            )
            .unwrap();
        let status: String = row.get(0);
        if status != "RUNNING" {
            break (status, row.get::<_, Option<Value>>(1));
        }
        assert!(Instant::now() < deadline, "the killed run stayed RUNNING");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, "ERROR");
    let error = error.expect("an error");
    assert_eq!(error["type"], "worker_crashed");
    // The committed batch stays; the one after the kill never happened.
    assert_eq!(saved_ids(&mut client, "crash-victim"), ["before-the-wait"]);

    let (_, status) = run_sync(&mut client, "e2e", "slow", "crash-victim");
    assert_eq!(status, "SUCCESS");
    assert_eq!(
        saved_ids(&mut client, "crash-victim"),
        ["after-the-wait", "before-the-wait"]
    );
}
