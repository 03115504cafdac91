//! pg_nango's benchmark (`make bench`): a real cluster with the extension preloaded, the mock API on
//! 127.0.0.1, and the fixture's `records` sync paging through a dataset 1,000 records a page. It prints:
//!
//! 1. **Ingest**: 100,000 records of about 1 KB through a real sync: records/s end to end and for the
//!    store alone (the time of the `batchSave` writes, from the run's logs), against a plain multi-row
//!    `INSERT … ON CONFLICT DO UPDATE` of the same rows into a table of the same shape, in the same run.
//! 2. **Re-sync without changes**: the same data again: time against the first run, and the rows written
//!    (from the logs, the rows stamped with the job, and the table's statistics); then more rounds of an
//!    initial run into an emptied store and its re-sync, and the median of their ratios.
//! 3. **Delta read**: 1,000,000 stored records of which 1% were changed by a sync: `nango.records(model,
//!    delta)` returns exactly those, its plan (EXPLAIN ANALYZE), and its time against a full read.
//! 4. **Memory**: the peak resident memory of the job's worker during the ingest.
//! 5. **Many small syncs** ([`small_syncs`], first): the fixed cost of a run and one-page runs per second
//!    over 1,000 connections, with where the time goes and the run workers' memory.
//! 6. **The scheduler at scale** ([`scheduler`], second): 10,000 scheduled syncs: the idle scheduler's
//!    CPU, its sequential scans, and how late due syncs start.
//! 7. **Peers** (after 2.): the same pages synced by a plain client script (HTTP and a multi-row
//!    `INSERT … ON CONFLICT` a page) and by dlt's `rest_api` source: first sync and unchanged re-sync.
//! 8. **Paged reads** (after 3.): `nango.records` 1,000 rows a page by cursor through the 1,000,000 stored
//!    records: rows/s, the first page against the last, and the last page's plan.
//! 9. **Native against JavaScript**: sha256 and base64 of 10 MB through `crypto`/`Buffer` (native) and
//!    through JavaScript implementations in QuickJS. In-process, no cluster: `-- native` runs it alone.
//! 10. **A zero-YAML sync with zod models** (last): the fixed cost of a run of `examples/zero-yaml`'s
//!     `tickets`, whose modules import zod.
//!
//! `-- small` runs 5., 6. and 10. alone; `-- ingest` runs 1., 2., 4. and 7. alone.
//!
//! Figures are for comparing within one run; machines here are noisy.

use std::time::{Duration, Instant};

use pg_nango_e2e::{Client, Cluster, create_connection, job_started_at, mock, prepare};
use serde_json::{Value, json};

mod deploy;
mod dlt;
mod native;
mod peers;
mod reads;
mod scheduler;
mod small_syncs;

const PAGE: usize = 1000;

/// Stops the benchmark's cluster when the run ends, also on a panic.
struct Running(Cluster);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.stop();
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("native") {
        native::native_against_javascript();
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("deploy") {
        let entries = std::env::args()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(200);
        deploy::zero_yaml_against_yaml(entries);
        return;
    }
    let small_only = std::env::args().nth(1).as_deref() == Some("small");
    let ingest_only = std::env::args().nth(1).as_deref() == Some("ingest");
    let records_count = setting("PG_NANGO_BENCH_RECORDS", 100_000);
    let connections = setting("PG_NANGO_BENCH_CONNECTIONS", 1000).max(1);
    let scheduled = setting("PG_NANGO_BENCH_SCHEDULED", 10_000).max(connections);
    let stored_count = setting("PG_NANGO_BENCH_STORED", 1_000_000);
    let rounds = setting("PG_NANGO_BENCH_ROUNDS", 5).max(1);
    let cluster = Running(Cluster::start(
        "bench",
        true,
        &[
            "nango.min_frequency = 1",
            "nango.script_timeout = 3600",
            // As a user runs it: durable commits (the test clusters run without fsync).
            "fsync = on",
            "shared_buffers = '1GB'",
            "max_wal_size = '4GB'",
            "nango.allowed_hosts = '127.0.0.1'",
        ],
    ));
    prepare(&cluster.0, None);
    let mut client = cluster.0.connect();
    create_connection(&mut client, "e2e", "bench");

    if small_only {
        small_syncs::many_small_syncs(&mut client, connections, small_record);
        scheduler::scheduler_at_scale(&mut client, connections, scheduled);
        small_syncs::zero_yaml_fixed_cost(&mut client);
        return;
    }
    let records: Vec<Value> = (0..records_count)
        .map(|n| record(&format!("rec-{n:07}"), n, "open"))
        .collect();
    let bytes: usize = records.iter().map(|r| r.to_string().len()).sum();
    mock().set_dataset("bench", records.clone());
    println!("pg_nango benchmark");
    println!(
        "dataset: {records_count} records, {} bytes each on average, pages of {PAGE}",
        bytes / records_count
    );

    if !ingest_only {
        small_syncs::many_small_syncs(&mut client, connections, small_record);
        scheduler::scheduler_at_scale(&mut client, connections, scheduled);
    }

    // 1. Ingest, and the job worker's memory.
    settle(&mut client);
    let initial = run(&mut client, "bench");
    let store_rate = records_count as f64 / (initial.store_ms / 1000.0);
    let plain = plain_insert(&mut client, &records);
    let plain_rate = records_count as f64 / plain.as_secs_f64();
    println!("\n## Ingest ({records_count} records, initial sync)");
    println!(
        "end to end (job start to end):   {:>8.2} s  {:>9.0} records/s",
        initial.seconds,
        records_count as f64 / initial.seconds
    );
    println!(
        "store alone (batchSave writes):  {:>8.2} s  {:>9.0} records/s",
        initial.store_ms / 1000.0,
        store_rate
    );
    println!(
        "plain INSERT … ON CONFLICT:      {:>8.2} s  {:>9.0} records/s",
        plain.as_secs_f64(),
        plain_rate
    );
    println!(
        "store / plain insert rate:       {:>8.0} %",
        100.0 * store_rate / plain_rate
    );
    println!(
        "end to end / plain insert rate:  {:>8.0} %",
        100.0 * (records_count as f64 / initial.seconds) / plain_rate
    );
    println!(
        "records written: {} (added {})",
        initial.written, initial.added
    );
    let per_batch: Vec<f64> = client
        .query("SELECT (payload ->> 'ms')::float8 FROM nango.logs WHERE job = $1 AND message LIKE 'batchSave %' ORDER BY id", &[&initial.job])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let tenth = (per_batch.len() / 10).max(1);
    let average = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "one batchSave of {PAGE}: {:.1} ms on average over the first tenth of the run, {:.1} ms over the last",
        average(&per_batch[..tenth]),
        average(&per_batch[per_batch.len() - tenth..])
    );
    let fetch_only = run_steps(
        &mut client,
        json!([{"dataset": "bench", "limit": PAGE, "save": false}]),
    );
    println!(
        "the same run fetching and parsing the pages without saving them: {:.2} s",
        fetch_only.seconds
    );

    println!("\n## Memory of the job worker during the ingest");
    println!(
        "peak resident (VmHWM, shared buffers it touched included): {:.0} MB",
        initial.peak_hwm_kb as f64 / 1024.0
    );
    println!(
        "peak private (RssAnon):                                     {:.0} MB",
        initial.peak_anon_kb as f64 / 1024.0
    );

    // 2. Re-sync without changes.
    settle(&mut client);
    let before = table_writes(&mut client);
    let again = run(&mut client, "bench");
    let after = table_writes(&mut client);
    let stamped: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.stored_records WHERE last_job = $1",
            &[&again.job],
        )
        .unwrap()
        .get(0);
    println!("\n## Re-sync without changes ({records_count} records)");
    println!(
        "end to end:      {:>8.2} s  ({:.1}x faster than the initial run)",
        again.seconds,
        initial.seconds / again.seconds
    );
    println!(
        "store alone:     {:>8.2} s  ({:.1}x faster than the initial store)",
        again.store_ms / 1000.0,
        initial.store_ms / again.store_ms
    );
    println!(
        "of which fetching and parsing the pages (as the fetch-only run): {:.2} s, the store: {:.2} s, the rest (records out of QuickJS with their hashes, checks, logs): {:.2} s",
        fetch_only.seconds,
        again.store_ms / 1000.0,
        again.seconds - fetch_only.seconds - again.store_ms / 1000.0
    );
    println!(
        "the same run without the fetching and parsing: {:.1}x faster than the initial run",
        (initial.seconds - fetch_only.seconds) / (again.seconds - fetch_only.seconds)
    );
    println!(
        "rows written: {} by the logs, {stamped} stamped with the job, {} inserted/updated/deleted by the table statistics",
        again.written,
        after - before
    );

    // More initial runs and re-syncs, each pair on an emptied store: the VM's speed drifts from one minute to
    // the next, and a pair run back to back shares the drift. The plain client script takes its rounds in
    // turn with them (section 6).
    let mut plain = peers::PlainPeer::new(&mut client, &mock().url(), ("bench", records_count));
    plain.round(&mut client);
    let mut ratios = vec![initial.seconds / again.seconds];
    let (mut initials, mut agains) = (vec![initial.seconds], vec![again.seconds]);
    println!(
        "round 1: initial {:.2} s, re-sync {:.2} s: {:.1}x",
        initial.seconds, again.seconds, ratios[0]
    );
    for round in 2..=rounds {
        client
            .batch_execute("TRUNCATE nango.stored_records")
            .unwrap();
        settle(&mut client);
        let initial = run(&mut client, "bench");
        let again = run(&mut client, "bench");
        plain.round(&mut client);
        ratios.push(initial.seconds / again.seconds);
        initials.push(initial.seconds);
        agains.push(again.seconds);
        println!(
            "round {round}: initial {:.2} s, re-sync {:.2} s: {:.1}x",
            initial.seconds,
            again.seconds,
            initial.seconds / again.seconds
        );
    }
    println!(
        "median over {} rounds: the re-sync is {:.1}x faster than the initial run",
        ratios.len(),
        median(&mut ratios)
    );

    // 6. The same pages without pg_nango, against the medians of its rounds (the first round of a new
    // cluster also pays for creating its WAL files).
    let nango = peers::Timings {
        first: median(&mut initials),
        again: median(&mut agains),
    };
    peers::against_peers(
        &cluster.0,
        &mock().url(),
        ("bench", records_count),
        rounds,
        (&nango, &plain.timings()),
    );
    if ingest_only {
        return;
    }

    // 3. Delta read over 1,000,000 records, 1% changed.
    delta_read(&mut client, records_count, stored_count);

    // 7. Paged reads through the same 1,000,000 records.
    reads::paged_reads(&mut client, stored_count);

    // 5. Native work under Buffer and crypto against plain JavaScript.
    native::native_against_javascript();

    // The fixed cost of a zero-YAML sync with zod models (last: it deploys another project).
    small_syncs::zero_yaml_fixed_cost(&mut client);
}

/// A size from the environment (for a quicker run), else the default.
fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes out the dirty pages (CHECKPOINT) before a timed sync, so that it does not pay for those of the
/// work before it.
pub fn settle(client: &mut Client) {
    client.batch_execute("CHECKPOINT").expect("CHECKPOINT");
}

/// The median of `values` (the upper one of an even count).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A record of about 1 KB.
fn record(id: &str, n: usize, status: &str) -> Value {
    json!({
        "id": id,
        "title": format!("Ticket {n}: the printer on floor {} is out of toner again", n % 12),
        "status": status,
        "priority": n % 5,
        "requester": {"name": format!("Customer {n}"), "email": format!("customer{n}@example.com"), "plan": "enterprise"},
        "assignee": {"name": format!("Agent {}", n % 40), "team": "support"},
        "tags": ["hardware", "printer", format!("floor-{}", n % 12)],
        "created_at": "2026-01-02T03:04:05Z",
        "updated_at": "2026-03-04T05:06:07Z",
        "body": format!("{n} {}", "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum. Sed ut perspiciatis unde omnis iste natus error sit voluptatem accusantium doloremque laudantium, totam rem aperiam."),
    })
}

/// A record of the small syncs' page.
fn small_record(n: usize) -> Value {
    record(&format!("small-{n:03}"), n, "open")
}

/// What one sync run took.
struct Run {
    job: i64,
    seconds: f64,
    store_ms: f64,
    written: i64,
    added: i64,
    peak_hwm_kb: u64,
    peak_anon_kb: u64,
}

/// Runs the `records` sync over a dataset, watching its worker's memory; panics unless it succeeds.
fn run(client: &mut Client, dataset: &str) -> Run {
    run_steps(client, json!([{"dataset": dataset, "limit": PAGE}]))
}

/// Runs the `records` sync with these steps.
fn run_steps(client: &mut Client, steps: Value) -> Run {
    let steps = json!({ "steps": steps });
    client
        .execute("SELECT nango.set_metadata('e2e', 'bench', $1)", &[&steps])
        .unwrap();
    let job: i64 = client
        .query_one("SELECT nango.trigger_sync('e2e', 'records', 'bench')", &[])
        .unwrap()
        .get(0);
    let (mut peak_hwm_kb, mut peak_anon_kb) = (0, 0);
    loop {
        let row = client
            .query_one(
                "SELECT status, pid, error FROM nango.jobs WHERE id = $1",
                &[&job],
            )
            .unwrap();
        let status: String = row.get(0);
        if status != "QUEUED" && status != "RUNNING" {
            let error: Option<Value> = row.get(2);
            assert_eq!(status, "SUCCESS", "the benchmark's sync failed: {error:?}");
            break;
        }
        if let Some(pid) = row.get::<_, Option<i32>>(1) {
            let (hwm, anon) = memory_of(pid);
            peak_hwm_kb = peak_hwm_kb.max(hwm);
            peak_anon_kb = peak_anon_kb.max(anon);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let row = client
        .query_one(
            "SELECT extract(epoch FROM j.ended_at - j.started_at)::float8,
                    coalesce(sum((l.payload ->> 'ms')::float8), 0),
                    coalesce(sum((l.payload ->> 'written')::bigint), 0)::bigint,
                    coalesce((j.result -> 'Item' ->> 'added')::bigint, 0)
             FROM nango.jobs j LEFT JOIN nango.logs l ON l.job = j.id AND l.message LIKE 'batchSave %'
             WHERE j.id = $1 GROUP BY j.id",
            &[&job],
        )
        .unwrap();
    Run {
        job,
        seconds: row.get(0),
        store_ms: row.get(1),
        written: row.get(2),
        added: row.get(3),
        peak_hwm_kb,
        peak_anon_kb,
    }
}

/// `(VmHWM, RssAnon)` of a process in kB, 0 when it is gone.
fn memory_of(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("RssAnon:"))
}

/// Rows inserted, updated and deleted in nango.stored_records so far, by the statistics.
fn table_writes(client: &mut Client) -> i64 {
    std::thread::sleep(Duration::from_millis(1500));
    client
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .unwrap();
    client
        .query_one(
            "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE schemaname = 'nango' AND relname = 'stored_records'",
            &[],
        )
        .unwrap()
        .get(0)
}

/// Inserts the same rows with plain multi-row `INSERT … ON CONFLICT DO UPDATE` statements, a page per
/// statement and transaction, into an empty table shaped as nango.stored_records (same columns and
/// indexes); returns the time taken.
fn plain_insert(client: &mut Client, records: &[Value]) -> Duration {
    client
        .batch_execute(
            "CREATE SCHEMA bench;
             CREATE TABLE bench.plain (LIKE nango.stored_records INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);",
        )
        .unwrap();
    let connection: i64 = client
        .query_one(
            "SELECT id FROM nango.connections WHERE connection_id = 'bench'",
            &[],
        )
        .unwrap()
        .get(0);
    let statements: Vec<String> = records
        .chunks(PAGE)
        .enumerate()
        .map(|(page, chunk)| {
            let rows: Vec<String> = chunk
                .iter()
                .enumerate()
                .map(|(i, record)| {
                    let id = record["id"].as_str().unwrap();
                    let data = record.to_string().replace('\'', "''");
                    let cursor = page * PAGE + i + 1;
                    // Any 16 bytes do for the hash column: the plain insert does no change detection.
                    format!(
                        "('Item', {connection}, '{id}', '{data}', '{:032x}', now(), now(), NULL, 'ADDED', {cursor}, 1)",
                        cursor
                    )
                })
                .collect();
            format!(
                "INSERT INTO bench.plain AS r (model, connection, external_id, data, data_hash, first_seen_at, last_modified_at, deleted_at, last_action, cursor, last_job)
                 VALUES {}
                 ON CONFLICT (model, connection, external_id) DO UPDATE SET data = excluded.data, data_hash = excluded.data_hash,
                     last_modified_at = excluded.last_modified_at, last_action = 'UPDATED', cursor = excluded.cursor, last_job = excluded.last_job",
                rows.join(",")
            )
        })
        .collect();
    let started = Instant::now();
    for statement in &statements {
        client.batch_execute(statement).unwrap();
    }
    started.elapsed()
}

/// Grows the store to 1,000,000 records, changes 1% of them with a sync and reads the delta.
fn delta_read(client: &mut Client, records_count: usize, stored_count: usize) {
    let extra = stored_count - records_count;
    let started = Instant::now();
    client
        .execute(
            "INSERT INTO nango.stored_records
                 (model, connection, external_id, data, data_hash, first_seen_at, last_modified_at, last_action, cursor)
             SELECT 'Item', c.id, d.data ->> 'id', d.data, md5(d.data::text)::uuid,
                    now() - interval '1 day', now() - interval '1 day', 'ADDED', nextval('nango.record_cursor')
             FROM nango.connections c,
                  generate_series(1, $1::int) AS g(n),
                  LATERAL (SELECT jsonb_build_object('id', 'old-' || lpad(g.n::text, 7, '0'), 'title', 'Ticket ' || g.n,
                                                     'status', 'closed', 'body', repeat('lorem ipsum ', 75)) AS data) d
             WHERE c.connection_id = 'bench'",
            &[&(extra as i32)],
        )
        .unwrap();
    client
        .batch_execute("VACUUM ANALYZE nango.stored_records")
        .unwrap();
    println!("\n## Delta read ({stored_count} stored records, 1% changed by a sync)");
    println!(
        "grew the store by {extra} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // 1% changed: half among the synced records, half among the older ones.
    let changed: Vec<Value> = (0..stored_count / 100)
        .map(|n| {
            if n % 2 == 0 {
                record(&format!("rec-{:07}", n * 9), n * 9, "closed")
            } else {
                record(&format!("old-{:07}", n * 80 + 1), n * 80 + 1, "reopened")
            }
        })
        .collect();
    mock().set_dataset("bench-changes", changed);
    let change = run(client, "bench-changes");
    let since = job_started_at(client, change.job);
    let delta_query = format!("SELECT * FROM nango.records('Item', delta => '{since}')");
    let full_query = "SELECT * FROM nango.records('Item')".to_string();
    let counted: i64 = client
        .query_one(&format!("SELECT count(*) FROM ({delta_query}) d WHERE (_nango_metadata ->> 'last_action') = 'UPDATED'"), &[])
        .unwrap()
        .get(0);
    let total: i64 = client
        .query_one(&format!("SELECT count(*) FROM ({delta_query}) d"), &[])
        .unwrap()
        .get(0);
    println!(
        "the sync changed {} records; the delta returns {total} rows, {counted} of them UPDATED",
        change.written
    );

    print_plan(client, &delta_query);
    let delta_time = timed(client, &delta_query, 5);
    let full_time = timed(client, &full_query, 3);
    println!(
        "\ndelta read: {:>8.1} ms ({total} rows)",
        delta_time * 1000.0
    );
    println!(
        "full read:  {:>8.1} ms ({stored_count} rows)",
        full_time * 1000.0
    );
    println!(
        "delta / full: {:.2} % of the time",
        100.0 * delta_time / full_time
    );
}

/// Prints the plan of `query` as it ran (EXPLAIN ANALYZE, BUFFERS).
fn print_plan(client: &mut Client, query: &str) {
    println!("\nEXPLAIN (ANALYZE, BUFFERS) {query}");
    for row in client
        .query(
            &format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {query}"),
            &[],
        )
        .unwrap()
    {
        println!("  {}", row.get::<_, String>(0));
    }
}

/// The best of `runs` server-side executions of a query that reads every row it returns in full.
fn timed(client: &mut Client, query: &str, runs: usize) -> f64 {
    let wrapped = format!(
        "SELECT count(*), sum(length(data::text) + length(_nango_metadata::text)) FROM ({query}) q"
    );
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            client.query_one(&wrapped, &[]).unwrap();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
