//! One-off runs (actions, dry runs) hand their request to a worker through files of the data directory:
//! a caller that is cancelled or terminated while it waits stops its worker, no file outlives its run, and
//! files left behind by a crash are removed.

use std::time::{Duration, Instant};

use pg_nango_e2e::*;

fn one_off_workers(client: &mut Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_nango one-off run'",
            &[],
        )
        .unwrap()
        .get(0)
}

/// Starts the never-ending action in a session of its own; returns that session's backend pid once its
/// worker runs.
fn start_spinning_action(observer: &mut Client) -> (i32, std::thread::JoinHandle<String>) {
    let mut caller = connect();
    let pid: i32 = caller
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let waiting = std::thread::spawn(move || {
        match caller.query_one(
            "SELECT nango.trigger_action('e2e', 'handover', 'spin-action')",
            &[],
        ) {
            Ok(_) => "returned".to_string(),
            Err(error) => error
                .as_db_error()
                .map_or_else(|| error.to_string(), |e| e.message().to_string()),
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while one_off_workers(observer) == 0 {
        assert!(
            Instant::now() < deadline,
            "the action's worker never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (pid, waiting)
}

fn wait_until_no_worker(observer: &mut Client, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while one_off_workers(observer) > 0 {
        assert!(
            Instant::now() < deadline,
            "the worker outlived its {what} caller"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn handover_files() -> Vec<String> {
    std::fs::read_dir(cluster().datadir.join("pg_nango"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_cancelled_or_terminated_caller_stops_its_worker_and_no_file_is_left() {
    let mut observer = connect();
    create_connection(&mut observer, "e2e", "handover");
    // Long enough that only the caller's end can stop the action within the test.
    set_server_setting(&mut observer, "nango.action_timeout = 300");

    let (pid, waiting) = start_spinning_action(&mut observer);
    observer
        .execute("SELECT pg_cancel_backend($1)", &[&pid])
        .unwrap();
    assert_eq!(
        waiting.join().unwrap(),
        "canceling statement due to user request"
    );
    wait_until_no_worker(&mut observer, "cancelled");

    let (pid, waiting) = start_spinning_action(&mut observer);
    observer
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    waiting.join().unwrap();
    wait_until_no_worker(&mut observer, "terminated");
    set_server_setting(&mut observer, "nango.action_timeout = 2");

    // A file left by a crash long ago goes at the next one-off run; the run's own files go with it.
    let stale = cluster()
        .datadir
        .join("pg_nango/oneoff-00000000deadbeef.request.json");
    std::fs::write(&stale, "{}").unwrap();
    let status = std::process::Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&stale)
        .status()
        .unwrap();
    assert!(status.success());
    let output: serde_json::Value = observer
        .query_one(
            "SELECT nango.trigger_action('e2e', 'handover', 'create-ticket', '{\"subject\": \"s\"}')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(output["subject"], "s");
    assert_eq!(handover_files(), Vec::<String>::new());
}
