//! Peers: the same pages synced without pg_nango, on the same mock API and cluster, in the same run.
//!
//! - **Plain client script**: what a user writes without pg_nango: fetch each page over HTTP, upsert it
//!   with one multi-row `INSERT … ON CONFLICT (id) DO UPDATE` into a plain table, a transaction a page.
//! - **dlt**: dlt's `rest_api` source into PostgreSQL with `write_disposition: merge` on `id` (see
//!   `dlt.rs`); skipped with a line saying why when it cannot be installed or run.
//!
//! Each syncs into an empty table first, then again with nothing changed; the figures go against
//! pg_nango's initial run and its re-sync without changes. pg_nango and the plain client script run
//! several rounds in turns, each into an emptied table and after a checkpoint, so that neither pays for
//! writing out the other's pages and both meet the same drift of the machine; their medians are compared.
//! dlt, at about twenty seconds a sync, runs one.

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

/// Prints the peers' figures against pg_nango's (`nango`: the medians of its `rounds` initial runs and
/// re-syncs without changes; `plain`: the plain client script's, its rounds interleaved with pg_nango's),
/// after running dlt against `url/datasets/{dataset}` (of `count` records).
pub fn against_peers(
    cluster: &Cluster,
    url: &str,
    (dataset, count): (&str, usize),
    rounds: usize,
    (nango, plain): (&Timings, &Timings),
) {
    println!(
        "\n## Peers ({count} records, the same pages from the same mock API; pg_nango and the plain client: median of {rounds} rounds, taken in turns)"
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
    line("plain client script", plain);
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
    ratio("plain client script", plain);
    if let Some(dlt) = &dlt {
        ratio("dlt", dlt);
    }
}

/// The plain client script: round after round, two syncs of the dataset into `plain_peer.records`, emptied
/// after each round.
pub struct PlainPeer {
    agent: ureq::Agent,
    endpoint: String,
    count: usize,
    firsts: Vec<f64>,
    agains: Vec<f64>,
}

impl PlainPeer {
    /// Creates the peer's table, for the dataset at `url/datasets/{dataset}` of `count` records.
    pub fn new(client: &mut Client, url: &str, (dataset, count): (&str, usize)) -> PlainPeer {
        client
            .batch_execute(
                "CREATE SCHEMA plain_peer;
                 CREATE TABLE plain_peer.records (id text PRIMARY KEY, data jsonb NOT NULL, updated_at timestamptz NOT NULL);",
            )
            .expect("create the plain peer's table");
        PlainPeer {
            agent: ureq::Agent::new_with_defaults(),
            endpoint: format!("{url}/datasets/{dataset}"),
            count,
            firsts: Vec::new(),
            agains: Vec::new(),
        }
    }

    /// One round: a first sync into the empty table and a sync with nothing changed, both timed.
    pub fn round(&mut self, client: &mut Client) {
        crate::settle(client);
        let first = self.timed_sync(client);
        self.firsts.push(first);
        let again = self.timed_sync(client);
        self.agains.push(again);
        let stored: i64 = client
            .query_one("SELECT count(*) FROM plain_peer.records", &[])
            .unwrap()
            .get(0);
        assert_eq!(
            stored as usize, self.count,
            "the plain peer stored every record"
        );
        client.batch_execute("TRUNCATE plain_peer.records").unwrap();
    }

    /// One sync of every page, timed in seconds.
    fn timed_sync(&self, client: &mut Client) -> f64 {
        let started = Instant::now();
        let saved = plain_sync(client, &self.agent, &self.endpoint);
        assert_eq!(
            saved, self.count,
            "the plain client script saw every record"
        );
        started.elapsed().as_secs_f64()
    }

    /// The medians of the first syncs and of the second.
    pub fn timings(&mut self) -> Timings {
        Timings {
            first: crate::median(&mut self.firsts),
            again: crate::median(&mut self.agains),
        }
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
