//! A run whose worker is killed with SIGKILL: PostgreSQL restarts its processes, the scheduler ends the
//! run as failed, what was committed stays, and the next run proceeds normally. Its own binary, because
//! the crash restarts the whole cluster.

use std::time::{Duration, Instant};

use pg_nango_e2e::*;

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
            && record_ids(&mut client, "Slow", "crash-victim") == ["before-the-wait"]
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

    let mut client = reconnect(client);
    let status: String = client
        .query_one("SELECT nango.wait_for_job($1, '60 seconds')", &[&job])
        .unwrap()
        .get(0);
    let error = job_outcome(&mut client, job).2;
    assert_eq!(status, "ERROR");
    let error = error.expect("an error");
    assert_eq!(error["type"], "worker_crashed");
    // The committed batch stays; the one after the kill never happened.
    assert_eq!(
        record_ids(&mut client, "Slow", "crash-victim"),
        ["before-the-wait"]
    );

    let (_, status) = run_sync(&mut client, "e2e", "slow", "crash-victim");
    assert_eq!(status, "SUCCESS");
    assert_eq!(
        record_ids(&mut client, "Slow", "crash-victim"),
        ["after-the-wait", "before-the-wait"]
    );
}
