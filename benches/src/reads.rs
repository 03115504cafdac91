//! Paged reads: `nango.records(model, "limit" => 1000, cursor => …)` through every stored record, as a
//! client reading a model page by page does, each row fetched in full. Prints the rows/s overall, the time
//! of the first page against the last (medians of repeated reads of each), and the plan of the last page:
//! a page's cost must not grow with its position.

use std::time::{Duration, Instant};

use pg_nango_e2e::Client;
use postgres::types::Json;
use serde_json::value::RawValue;

use crate::PAGE;

const QUERY: &str = "SELECT id, data, _nango_metadata, cursor FROM nango.records('Item', \"limit\" => $1, cursor => $2)";

/// Reads every record of the model `Item` page by page (`stored` of them are expected).
pub fn paged_reads(client: &mut Client, stored: usize) {
    println!("\n## Paged reads ({stored} stored records, pages of {PAGE} by cursor)");
    let started = Instant::now();
    let mut cursor: Option<String> = None;
    let (mut rows, mut bytes) = (0, 0);
    let mut pages: Vec<(Option<String>, usize, Duration)> = Vec::new();
    loop {
        let page_started = Instant::now();
        let (count, size, next) = page(client, cursor.as_deref());
        pages.push((cursor.clone(), count, page_started.elapsed()));
        rows += count;
        bytes += size;
        match next {
            Some(next) if count == PAGE => cursor = Some(next),
            _ => break,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(rows, stored, "the paged read returned every record");
    println!(
        "read {rows} rows ({:.0} MB of data and metadata) in {} pages: {seconds:.2} s, {:.0} rows/s",
        bytes as f64 / 1e6,
        pages.len(),
        rows as f64 / seconds
    );
    let tenth = (pages.len() / 10).max(1);
    let average = |p: &[(Option<String>, usize, Duration)]| {
        p.iter().map(|(_, _, d)| d.as_secs_f64()).sum::<f64>() * 1000.0 / p.len() as f64
    };
    println!(
        "one page during the read: {:.2} ms on average over the first tenth, {:.2} ms over the last",
        average(&pages[..tenth]),
        average(&pages[pages.len() - tenth..])
    );

    // The last full page, read again, against the first.
    let last = pages
        .iter()
        .rev()
        .find(|(_, count, _)| *count == PAGE)
        .and_then(|(after, _, _)| after.clone());
    let first_ms = median_page_ms(client, None);
    let last_ms = median_page_ms(client, last.as_deref());
    println!(
        "first page: {first_ms:.2} ms, last page (after cursor {}): {last_ms:.2} ms (median of 9 each): last / first {:.2}",
        last.as_deref().unwrap_or("none"),
        last_ms / first_ms
    );
    let explained = format!(
        "SELECT id, data, _nango_metadata, cursor FROM nango.records('Item', \"limit\" => {PAGE}, cursor => {})",
        last.as_deref().map_or("NULL".into(), |c| format!("'{c}'"))
    );
    crate::print_plan(client, &explained);
}

/// One page after `cursor`, every column fetched: its rows, their bytes and the last row's cursor.
fn page(client: &mut Client, cursor: Option<&str>) -> (usize, usize, Option<String>) {
    let rows = client
        .query(QUERY, &[&(PAGE as i32), &cursor])
        .expect("read a page of nango.records");
    let mut bytes = 0;
    for row in &rows {
        let id: &str = row.get(0);
        let data: Json<Box<RawValue>> = row.get(1);
        let metadata: Json<Box<RawValue>> = row.get(2);
        bytes += id.len() + data.0.get().len() + metadata.0.get().len();
    }
    let next = rows.last().map(|row| row.get::<_, String>(3));
    (rows.len(), bytes, next)
}

/// The median time of nine reads of the page after `cursor`, in ms.
fn median_page_ms(client: &mut Client, cursor: Option<&str>) -> f64 {
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            let started = Instant::now();
            page(client, cursor);
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
