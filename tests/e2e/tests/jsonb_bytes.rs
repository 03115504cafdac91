//! The `jsonb` a batchSave's records are stored as is built outside Postgres
//! (`pg_nango_core::records::jsonb`). Here Postgres parses the same texts, and the bytes it stores (read
//! back with pageinspect, inline or from the TOAST table) must be those the builder makes, byte for byte;
//! a text Postgres refuses must not be built at all. Then a sync saves such records and they read back as
//! Postgres' own parse of their texts.

use pg_nango_core::records::jsonb::encode;
use pg_nango_e2e::*;
use serde_json::{Value, json};

/// A small deterministic generator (xorshift), so that a failure names a document that can be made again.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn digits(&mut self, count: u64) -> String {
        (0..count)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    /// A number as any JSON text may write it (leading minus, fraction, exponent with or without sign).
    fn number(&mut self) -> String {
        let mut text = self.pick(&["", "-"]).to_string();
        text += &match self.below(3) {
            0 => "0".to_string(),
            _ => {
                let (first, more) = (1 + self.below(9), self.below(25));
                format!("{first}{}", self.digits(more))
            }
        };
        if self.below(2) == 0 {
            let count = 1 + self.below(20);
            text += &format!(".{}", self.digits(count));
        }
        if self.below(3) == 0 {
            text += &format!(
                "{}{}{}",
                self.pick(&["e", "E"]),
                self.pick(&["", "+", "-"]),
                self.below(400)
            );
        }
        text
    }

    /// A string literal, escaped one way or another.
    fn string(&mut self) -> String {
        let pieces = [
            "a",
            "id",
            "x",
            " ",
            "é",
            "漢",
            "😀",
            "\\\"",
            "\\\\",
            "\\/",
            "\\n",
            "\\t",
            "\\u00e9",
            "\\u6f22",
            "\\ud83d\\ude00",
            "\\u0007",
            "\\b",
            "\\f",
            "\\r",
        ];
        let text: String = (0..self.below(12)).map(|_| self.pick(&pieces)).collect();
        format!("\"{text}\"")
    }

    fn value(&mut self, depth: u32) -> String {
        let wide = self.below(5) == 0;
        let count = |random: &mut Random| random.below(if wide { 45 } else { 6 });
        match self.below(if depth > 4 { 5 } else { 9 }) {
            0 | 1 => self.number(),
            2 => self.string(),
            3 => self.pick(&["null", "true", "false"]).to_string(),
            4 => self
                .pick(&["0", "-0", "0.0", "1e+21", "5e-324", "100", "10000"])
                .to_string(),
            5 | 6 => {
                let elements: Vec<String> =
                    (0..count(self)).map(|_| self.value(depth + 1)).collect();
                format!("[{}]", elements.join(","))
            }
            _ => {
                let pairs: Vec<String> = (0..count(self))
                    .map(|_| {
                        // Few distinct keys, so that duplicates are common.
                        let key = match self.below(3) {
                            0 => self
                                .pick(&["\"a\"", "\"b\"", "\"id\"", "\"aa\"", "\"é\""])
                                .to_string(),
                            _ => self.string(),
                        };
                        format!("{key}:{}", self.value(depth + 1))
                    })
                    .collect();
                format!("{{{}}}", pairs.join(","))
            }
        }
    }
}

/// Documents of every kind the builder handles, and some it leaves to Postgres.
fn corpus() -> Vec<String> {
    let mut documents: Vec<String> = [
        r#"{"id":"1"}"#,
        "{}",
        "[]",
        "1",
        "\"x\"",
        "null",
        "-0.0",
        "1.50",
        "-12.3400e5",
        "123456789012345678901234567890",
        "1.7976931348623157e+308",
        "1.23456789e-70",
        r#"{"a":1,"a":2}"#,
        r#"{"b":1,"a":2,"aa":3,"a":[1,2,{"z":null,"y":true}]}"#,
        r#"{ "spaced" : [ 1 , 2 ] , "x" : { } }"#,
        r#"{"k":"\u0000"}"#,
        r#"{"k":"\ud800"}"#,
        r#"{"k":"\udc00x"}"#,
        r#"{"k":"\ud800\u0041"}"#,
        "[1,]",
        "01",
        "{\"k\":\"\u{1}\"}",
        r#"{"a":1}x"#,
    ]
    .map(str::to_string)
    .to_vec();
    documents.push(serde_json::to_string(&(0..100).collect::<Vec<_>>()).unwrap());
    let wide: serde_json::Map<String, Value> =
        (0..70).map(|i| (format!("k{i}"), json!(i))).collect();
    documents.push(Value::Object(wide).to_string());
    let deep = format!("{}1{}", "[".repeat(80), "]".repeat(80));
    documents.push(deep);
    documents.push(format!("1{}", "0".repeat(1200)));
    let mut random = Random(0x5eed_1234_abcd_0042);
    documents.extend((0..2500).map(|_| random.value(0)));
    documents
}

#[test]
fn the_built_jsonb_is_postgres_own_byte_for_byte() {
    let mut client = connect();
    client
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS pageinspect;
             DROP TABLE IF EXISTS public.jsonb_bytes;
             CREATE TABLE public.jsonb_bytes (n int, doc jsonb);
             ALTER TABLE public.jsonb_bytes ALTER doc SET STORAGE EXTERNAL;",
        )
        .unwrap();
    let documents = corpus();
    let mut refused = Vec::new();
    for (n, text) in documents.iter().enumerate() {
        let parsed = client.execute(
            "INSERT INTO public.jsonb_bytes VALUES ($1, $2::text::jsonb)",
            &[&(n as i32), text],
        );
        if parsed.is_err() {
            refused.push(n);
        }
    }
    // What Postgres stores: inline (a 1- or 4-byte header) or, with STORAGE EXTERNAL past about 2 KB, in
    // TOAST chunks named by the pointer's value id (bytes 10 to 13 of the 18-byte pointer).
    let toast: String = client
        .query_one(
            "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'public.jsonb_bytes'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    let stored = client
        .query(
            &format!("WITH raw AS (
                 SELECT get_byte(h.t_attrs[1], 0) + (get_byte(h.t_attrs[1], 1) << 8) AS n, h.t_attrs[2] AS a
                 FROM generate_series(0, pg_relation_size('public.jsonb_bytes') / 8192 - 1) blk,
                      LATERAL heap_page_item_attrs(get_raw_page('public.jsonb_bytes', blk::int),
                                                   'public.jsonb_bytes'::regclass) h
                 WHERE h.t_attrs IS NOT NULL),
             toast AS (
                 SELECT chunk_id, string_agg(chunk_data, ''::bytea ORDER BY chunk_seq) AS d
                 FROM {toast} GROUP BY chunk_id)
             SELECT r.n, CASE
                 WHEN get_byte(r.a, 0) = 1 THEN (SELECT t.d FROM toast t WHERE t.chunk_id::bigint =
                     get_byte(r.a, 10) + (get_byte(r.a, 11) << 8) + (get_byte(r.a, 12) << 16) + (get_byte(r.a, 13)::bigint << 24))
                 WHEN get_byte(r.a, 0) & 1 = 1 THEN substr(r.a, 2)
                 ELSE substr(r.a, 5) END
             FROM raw r ORDER BY r.n"),
            &[],
        );
    let stored = match stored {
        Ok(rows) => rows,
        Err(error) => panic!("reading the stored bytes: {error}"),
    };
    assert_eq!(
        stored.len() + refused.len(),
        documents.len(),
        "every document was stored or refused"
    );
    let mut built = 0;
    for row in &stored {
        let n: i32 = row.get(0);
        let bytes: Option<Vec<u8>> = row.get(1);
        let bytes = bytes.unwrap_or_else(|| panic!("the stored bytes of document {n}"));
        let text = &documents[n as usize];
        match encode(text) {
            Some(ours) => {
                assert_eq!(
                    &ours[4..],
                    &bytes[..],
                    "document {n}, {text:.200}: built bytes differ from Postgres'"
                );
                assert_eq!(
                    u32::from_le_bytes(ours[..4].try_into().unwrap()) >> 2,
                    ours.len() as u32
                );
                built += 1;
            }
            // Left to Postgres: only what is nested too deep or has too many digits.
            None => assert!(
                text.starts_with("[[[[")
                    || text.len() > 1000 && text.bytes().all(|b| b.is_ascii_digit()),
                "document {n} was not built: {text:.200}"
            ),
        }
    }
    for n in &refused {
        let text = &documents[*n];
        assert_eq!(
            encode(text),
            None,
            "document {n} is refused by Postgres but was built: {text:.200}"
        );
    }
    assert!(built > 2000, "most documents were built ({built})");
    assert_eq!(
        refused,
        (15..=22).collect::<Vec<_>>(),
        "Postgres refused the documents made to be refused"
    );
    client
        .batch_execute("DROP TABLE public.jsonb_bytes")
        .unwrap();
}

#[test]
fn records_saved_through_the_built_jsonb_read_as_postgres_parse_of_their_texts() {
    let mut client = connect();
    create_connection(&mut client, "e2e", "jsonb-bytes");
    // Six batches of 100 new records. The first goes as text (its ids are looked up first); the second
    // too (it is made while the first is written); from the third on, they go as built jsonb, but for
    // one record nested deeper than the builder goes, which goes as text in the same statement.
    let mut random = Random(0x0bad_cafe_0000_0007);
    let mut records: Vec<Value> = Vec::new();
    // Documents that a script's numbers (doubles) carry unchanged; the generator's others are left out.
    let document = |random: &mut Random| loop {
        if let Ok(parsed) = serde_json::from_str::<Value>(&random.value(1)) {
            return as_doubles(parsed);
        }
    };
    for i in 0..600 {
        let mut record = json!({"id": format!("r{i}"), "nested": document(&mut random)});
        for key in ["doc", "other"] {
            record[key] = document(&mut random);
        }
        records.push(record);
    }
    let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
    records[550]["deep"] = serde_json::from_str(&deep).unwrap();
    let steps: Vec<Value> = records
        .chunks(100)
        .map(|chunk| json!({"save": chunk}))
        .collect();
    let (job, status) = run_steps(&mut client, "e2e", "jsonb-bytes", Value::Array(steps));
    assert_eq!(status, "SUCCESS");
    let prebuilt: Vec<i64> = client
        .query(
            "SELECT (payload ->> 'prebuilt')::bigint FROM nango.logs
             WHERE job = $1 AND payload ? 'prebuilt' ORDER BY id",
            &[&job],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        prebuilt,
        [0, 0, 100, 100, 100, 99],
        "records sent as built jsonb, batch by batch (the logs' \"prebuilt\")"
    );
    for (i, record) in records.iter().enumerate() {
        // The same values as the script's JSON.stringify wrote them (numbers may be written otherwise, as
        // 5.0 for 5, so they compare as values). Containment and `->` find keys by binary search, so they
        // also check that the keys are in jsonb's order.
        let text = record.to_string();
        let row = client
            .query_one(
                "SELECT ARRAY[s.data = $1::text::jsonb,
                              s.data @> $1::text::jsonb AND $1::text::jsonb @> s.data,
                              coalesce(s.data -> 'nested' = $1::text::jsonb -> 'nested', false)],
                        s.data::text
                 FROM nango.stored_records s JOIN nango.connections c ON c.id = s.connection
                 WHERE c.connection_id = 'jsonb-bytes' AND s.model = 'Item' AND s.external_id = $2",
                &[&text, &format!("r{i}")],
            )
            .unwrap();
        let checks: Vec<bool> = row.get(0);
        let stored: String = row.get(1);
        assert!(
            checks.iter().all(|&c| c),
            "record r{i} reads as Postgres' parse of {text:.300} (equal, contained both ways, nested equal: {checks:?}; stored {stored:.300})"
        );
    }
}

/// `value` with every number as a double, as a script holds it.
fn as_doubles(value: Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map_or(Value::Null, Value::from),
        Value::Array(items) => Value::Array(items.into_iter().map(as_doubles).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, as_doubles(v))).collect())
        }
        other => other,
    }
}
