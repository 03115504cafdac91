//! Many small syncs: the fixed cost of a run, and how many one-page runs a server completes per second.
//!
//! Nango's users sync one integration per customer: thousands of connections, each a small sync every few
//! minutes. This section creates `connections` connections of the fixture's `records` sync, each fetching
//! one page of 100 records, and prints:
//!
//! - **fixed cost**: runs triggered one after another on an idle server, from the job's queueing to the
//!   script's first line, with where that time goes (`nango.jobs.phases`: wait for a worker, the worker's
//!   start, the claim, the engine and modules);
//! - **throughput**: every connection's run triggered in one statement, jobs/s from the first queueing to
//!   the last end, with the median phases of those runs;
//! - **memory**: the private memory of the run workers after the first runs and at the end.
//!
//! [`zero_yaml_fixed_cost`] gives the fixed cost of a run of a project whose models are zod schemas, as
//! Nango's current format has them: the repository's zero-YAML example.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pg_nango_e2e::{API_KEY, Client, create_connection, mock, project_files, repo_root};
use serde_json::{Value, json};

/// Runs triggered one after another for the fixed cost.
const SEQUENTIAL_RUNS: usize = 50;

/// Records of the one page each run fetches.
const PAGE_RECORDS: usize = 100;

/// Creates the connections (`small-1` …) and prints the section.
pub fn many_small_syncs(client: &mut Client, connections: usize, record: fn(usize) -> Value) {
    let page: Vec<Value> = (0..PAGE_RECORDS).map(record).collect();
    mock().set_dataset("small", page);
    create_connections(client, 1, connections);
    let concurrency: String = client
        .query_one("SHOW nango.max_concurrent_syncs", &[])
        .unwrap()
        .get(0);
    println!(
        "\n## Many small syncs ({connections} connections, one page of {PAGE_RECORDS} records each, nango.max_concurrent_syncs = {concurrency})"
    );

    // The fixed cost: one run at a time on an otherwise idle server.
    let mut sequential = Vec::new();
    for n in 0..SEQUENTIAL_RUNS {
        let job = trigger(
            client,
            "e2e",
            "records",
            &format!("small-{}", n % connections + 1),
        );
        wait_for(client, &[job]);
        sequential.push(job);
    }
    let phases = phases_of(client, &sequential);
    println!("fixed cost, {SEQUENTIAL_RUNS} runs one after another (median ms):");
    print_phases(&phases);

    // Throughput: every connection at once.
    let started = Instant::now();
    let jobs: Vec<i64> = client
        .query(
            "SELECT nango.trigger_sync('e2e', 'records', 'small-' || n) FROM generate_series(1, $1::int) n",
            &[&(connections as i32)],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let early_memory = wait_for_with_memory(client, &jobs, connections.min(100));
    let wall = started.elapsed().as_secs_f64();
    let late_memory = run_worker_memory(client);
    let span: f64 = client
        .query_one(
            "SELECT extract(epoch FROM max(ended_at) - min(created_at))::float8 FROM nango.jobs WHERE id = ANY($1)",
            &[&jobs],
        )
        .unwrap()
        .get(0);
    println!(
        "throughput, {connections} runs triggered in one statement: {:.1} s from the first queueing to the last end ({:.1} s as the client waited): {:.1} jobs/s",
        span,
        wall,
        connections as f64 / span
    );
    println!("median ms of those runs:");
    print_phases(&phases_of(client, &jobs));
    let workers: i64 = client
        .query_one(
            "SELECT count(DISTINCT pid) FROM nango.jobs WHERE id = ANY($1)",
            &[&jobs],
        )
        .unwrap()
        .get(0);
    println!("run worker processes used: {workers}");
    println!(
        "private memory (RssAnon) of the run workers alive: after {} runs {}; at the end {}",
        connections.min(100),
        describe_memory(&early_memory),
        describe_memory(&late_memory)
    );
}

/// Creates the connections `small-<first>` … `small-<last>`, each syncing one page of the `small` dataset.
pub fn create_connections(client: &mut Client, first: usize, last: usize) {
    client
        .execute(
            "SELECT count(nango.create_connection('e2e', 'small-' || n, $1, $2)) FROM generate_series($3::int, $4::int) n",
            &[
                &json!({"type": "API_KEY", "apiKey": API_KEY}),
                &json!({"base_url": mock().url()}),
                &(first as i32),
                &(last as i32),
            ],
        )
        .expect("create the connections");
    client
        .execute(
            "SELECT count(nango.set_metadata('e2e', 'small-' || n, $1)) FROM generate_series($2::int, $3::int) n",
            &[
                &json!({"steps": [{"dataset": "small", "limit": PAGE_RECORDS}]}),
                &(first as i32),
                &(last as i32),
            ],
        )
        .expect("set the connections' metadata");
}

/// The fixed cost of a run of `examples/zero-yaml`'s `tickets` sync (its models and checkpoint are zod
/// schemas; three pages of the mock's tickets). Deploys the example in place of the fixture: run it last.
pub fn zero_yaml_fixed_cost(client: &mut Client) {
    let files = project_files(&repo_root().join("examples/zero-yaml"));
    client
        .batch_execute("SELECT nango.create_integration('github', 'github-pat')")
        .expect("create the example's github integration");
    client
        .query_one(
            "SELECT nango.deploy(NULL, $1::jsonb, allow_destructive => true)",
            &[&files],
        )
        .expect("deploy examples/zero-yaml");
    create_connection(client, "demo", "zod-example");
    let jobs: Vec<i64> = (0..SEQUENTIAL_RUNS)
        .map(|_| {
            let job = trigger(client, "demo", "tickets", "zod-example");
            wait_for(client, &[job]);
            job
        })
        .collect();
    println!(
        "\n## A zero-YAML sync with zod models (examples/zero-yaml's tickets, three pages of 100 records)"
    );
    println!("fixed cost, {SEQUENTIAL_RUNS} runs one after another (median ms):");
    print_phases(&phases_of(client, &jobs));
}

/// Queues a run of `integration`'s `sync` for `connection`.
fn trigger(client: &mut Client, integration: &str, sync: &str, connection: &str) -> i64 {
    client
        .query_one(
            "SELECT nango.trigger_sync($1, $2, $3)",
            &[&integration, &sync, &connection],
        )
        .unwrap()
        .get(0)
}

/// Waits until every job has ended; panics unless all succeeded.
fn wait_for(client: &mut Client, jobs: &[i64]) {
    wait_for_with_memory(client, jobs, usize::MAX);
}

/// Waits until every job has ended, sampling the run workers' memory once `sample_after` jobs have ended.
fn wait_for_with_memory(
    client: &mut Client,
    jobs: &[i64],
    sample_after: usize,
) -> HashMap<i32, u64> {
    let mut sampled = HashMap::new();
    loop {
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE status IN ('QUEUED', 'RUNNING')),
                        count(*) FILTER (WHERE status NOT IN ('QUEUED', 'RUNNING', 'SUCCESS')),
                        min(error::text) FILTER (WHERE status NOT IN ('QUEUED', 'RUNNING', 'SUCCESS'))
                 FROM nango.jobs WHERE id = ANY($1)",
                &[&jobs],
            )
            .unwrap();
        let (active, failed): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(
            failed,
            0,
            "small sync runs failed: {:?}",
            row.get::<_, Option<String>>(2)
        );
        if sampled.is_empty() && jobs.len() - active as usize >= sample_after {
            sampled = run_worker_memory(client);
        }
        if active == 0 {
            return sampled;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// RssAnon in kB of each run worker alive, by pid.
fn run_worker_memory(client: &mut Client) -> HashMap<i32, u64> {
    client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_nango run'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| {
            let pid: i32 = row.get(0);
            (pid, crate::memory_of(pid).1)
        })
        .filter(|(_, kb)| *kb > 0)
        .collect()
}

fn describe_memory(memory: &HashMap<i32, u64>) -> String {
    if memory.is_empty() {
        return "no worker alive".into();
    }
    let mut kbs: Vec<u64> = memory.values().copied().collect();
    kbs.sort();
    format!(
        "{} workers, {:.1}–{:.1} MB",
        kbs.len(),
        kbs[0] as f64 / 1024.0,
        kbs[kbs.len() - 1] as f64 / 1024.0
    )
}

/// Median of each phase of these jobs, with the totals: queued → script started, and queued → ended.
fn phases_of(client: &mut Client, jobs: &[i64]) -> Vec<(String, f64)> {
    let row = client
        .query_one(
            "SELECT jsonb_build_object(
                 'wait for a worker', percentile_cont(0.5) WITHIN GROUP (ORDER BY (phases ->> 'wait')::float8 - coalesce((phases ->> 'connect')::float8, 0))::float8,
                 'worker start (new workers only)', coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY (phases ->> 'connect')::float8), 0)::float8,
                 'claim and load', percentile_cont(0.5) WITHIN GROUP (ORDER BY (phases ->> 'claim')::float8)::float8,
                 'engine and modules', percentile_cont(0.5) WITHIN GROUP (ORDER BY (phases ->> 'start')::float8)::float8,
                 'script', percentile_cont(0.5) WITHIN GROUP (ORDER BY (phases ->> 'script')::float8)::float8,
                 'end of the run', percentile_cont(0.5) WITHIN GROUP (ORDER BY
                     extract(epoch FROM ended_at - created_at) * 1000 - (phases ->> 'wait')::float8 - (phases ->> 'claim')::float8
                     - (phases ->> 'start')::float8 - (phases ->> 'script')::float8)::float8,
                 'queued → script running', percentile_cont(0.5) WITHIN GROUP (ORDER BY
                     (phases ->> 'wait')::float8 + (phases ->> 'claim')::float8 + (phases ->> 'start')::float8)::float8,
                 'queued → ended', percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ended_at - created_at) * 1000)::float8)
             FROM nango.jobs WHERE id = ANY($1)",
            &[&jobs],
        )
        .unwrap();
    let medians: Value = row.get(0);
    [
        "wait for a worker",
        "worker start (new workers only)",
        "claim and load",
        "engine and modules",
        "script",
        "end of the run",
        "queued → script running",
        "queued → ended",
    ]
    .iter()
    .map(|name| (name.to_string(), medians[name].as_f64().unwrap_or(f64::NAN)))
    .collect()
}

fn print_phases(phases: &[(String, f64)]) {
    for (name, ms) in phases {
        println!("  {name:<34} {ms:>8.1}");
    }
}
