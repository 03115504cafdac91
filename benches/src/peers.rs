//! Peers: the same pages synced without pg_nango, on the same mock API and cluster, in the same run.
//!
//! - **Plain client script**: what a user writes without pg_nango: fetch each page over HTTP, upsert it
//!   with one multi-row `INSERT … ON CONFLICT (id) DO UPDATE` into a plain table, a transaction a page.
//! - **dlt**: dlt's `rest_api` source into PostgreSQL with `write_disposition: merge` on `id` (see
//!   `dlt.rs`); skipped with a line saying why when it cannot be installed or run.
//!
//! Each syncs into an empty table first, then again with nothing changed; the figures go against
//! pg_nango's initial run and its re-sync without changes. pg_nango and the plain client script run
//! several rounds, each into an emptied table, and their medians are compared; dlt, at about twenty
//! seconds a sync, runs one.

use std::time::Instant;

use pg_nango_e2e::{API_KEY, Client, Cluster};
use postgres::types::ToSql;
use serde_json::Value;

use crate::PAGE;

/// The seconds a peer took for a first sync and for the unchanged re-sync after it.
pub struct Timings {
    pub first: f64,
    pub again: f64,
}

/// Runs the peers against `url/datasets/{dataset}` (of `count` records) and prints their figures against
/// pg_nango's (`nango`: the medians of its `rounds` initial runs and re-syncs without changes).
pub fn against_peers(
    cluster: &Cluster,
    url: &str,
    (dataset, count): (&str, usize),
    rounds: usize,
    nango: &Timings,
) {
    println!(
        "\n## Peers ({count} records, the same pages from the same mock API; pg_nango and the plain client: median of {rounds} rounds)"
    );
    let rate = |seconds: f64| count as f64 / seconds;
    let line = |name: &str, t: &Timings| {
        println!(
            "{name:<22} first sync {:>7.2} s {:>8.0} records/s   unchanged re-sync {:>7.2} s {:>8.0} records/s",
            t.first,
            rate(t.first),
            t.again,
            rate(t.again)
        );
    };
    line("pg_nango", nango);
    let plain = plain_script(&mut cluster.connect(), url, (dataset, count), rounds);
    line("plain client script", &plain);
    let dlt = crate::dlt::dlt_peer(cluster, url, dataset, count);
    if let Some(dlt) = &dlt {
        line("dlt rest_api", dlt);
    }
    let ratio = |name: &str, peer: &Timings| {
        println!(
            "pg_nango / {name}: {:.2}x on the first sync, {:.2}x on the unchanged re-sync (records/s)",
            peer.first / nango.first,
            peer.again / nango.again
        );
    };
    ratio("plain client script", &plain);
    if let Some(dlt) = &dlt {
        ratio("dlt", dlt);
    }
}

/// The plain client script: `rounds` times, two syncs of the dataset into `plain_peer.records`, emptied
/// before each round; the medians of the first syncs and of the second.
fn plain_script(
    client: &mut Client,
    url: &str,
    (dataset, count): (&str, usize),
    rounds: usize,
) -> Timings {
    client
        .batch_execute(
            "CREATE SCHEMA plain_peer;
             CREATE TABLE plain_peer.records (id text PRIMARY KEY, data jsonb NOT NULL, updated_at timestamptz NOT NULL);",
        )
        .expect("create the plain peer's table");
    let agent = ureq::Agent::new_with_defaults();
    let endpoint = format!("{url}/datasets/{dataset}");
    let sync = |client: &mut Client| {
        let started = Instant::now();
        let saved = plain_sync(client, &agent, &endpoint);
        assert_eq!(saved, count, "the plain client script saw every record");
        started.elapsed().as_secs_f64()
    };
    let (mut firsts, mut agains) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        firsts.push(sync(client));
        agains.push(sync(client));
        let stored: i64 = client
            .query_one("SELECT count(*) FROM plain_peer.records", &[])
            .unwrap()
            .get(0);
        assert_eq!(stored as usize, count, "the plain peer stored every record");
        client.batch_execute("TRUNCATE plain_peer.records").unwrap();
    }
    Timings {
        first: crate::median(&mut firsts),
        again: crate::median(&mut agains),
    }
}

/// One sync: every page from `endpoint`, each upserted in its own transaction; returns the records saved.
fn plain_sync(client: &mut Client, agent: &ureq::Agent, endpoint: &str) -> usize {
    let mut cursor = Some("0".to_string());
    let mut saved = 0;
    while let Some(after) = cursor {
        let body = agent
            .get(endpoint)
            .query("cursor", &after)
            .query("limit", PAGE.to_string())
            .header("authorization", format!("Bearer {API_KEY}"))
            .call()
            .expect("fetch a page from the mock API")
            .body_mut()
            .read_to_vec()
            .expect("read a page");
        let mut page: Value = serde_json::from_slice(&body).expect("a JSON page");
        let records = match page["data"].take() {
            Value::Array(records) => records,
            other => panic!("a page without a data array: {other}"),
        };
        if !records.is_empty() {
            upsert(client, &records);
        }
        saved += records.len();
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    saved
}

/// Upserts a page with one multi-row `INSERT … ON CONFLICT (id) DO UPDATE`, in a transaction.
fn upsert(client: &mut Client, records: &[Value]) {
    let ids: Vec<&str> = records
        .iter()
        .map(|r| r["id"].as_str().expect("a record with a string id"))
        .collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(records.len() * 2);
    let mut rows = Vec::with_capacity(records.len());
    for (i, (id, record)) in ids.iter().zip(records).enumerate() {
        params.push(id);
        params.push(record);
        rows.push(format!("(${}, ${}, now())", 2 * i + 1, 2 * i + 2));
    }
    let statement = format!(
        "INSERT INTO plain_peer.records (id, data, updated_at) VALUES {}
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
        rows.join(", ")
    );
    let mut transaction = client.transaction().expect("begin");
    transaction
        .execute(&statement, &params)
        .expect("upsert a page");
    transaction.commit().expect("commit");
}
