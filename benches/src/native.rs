//! Native work under a script's Node.js API against the same work in plain JavaScript inside QuickJS:
//! `crypto.createHash('sha256')` and `Buffer#toString('base64')` over 10 MB, each against a JavaScript
//! implementation run by the same engine. Runs in-process (no cluster): `cargo run --release -p
//! pg_nango_bench -- native`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use pg_nango_core::providers::{ConnectionInfo, Provider};
use pg_nango_core::records::batch::RecordBatch;
use pg_nango_core::script::compile::compile;
use pg_nango_core::script::{
    Host, Limits, SaveOp, ScriptKind, ScriptRun, StoredModule, module_map, run_script,
};
use serde_json::{Value, json};

/// The size hashed and encoded.
const SIZE: usize = 10 << 20;

/// The action timed: it fills 10 MB, runs both paths, checks they agree and returns the times in ms.
const SCRIPT: &str = r#"import { createHash } from 'crypto';

function sha256js(bytes: Uint8Array): string {
    const frac = (x: number) => ((x - Math.floor(x)) * 4294967296) >>> 0;
    const primes: number[] = [];
    for (let n = 2; primes.length < 64; n++) if (primes.every((p) => n % p !== 0)) primes.push(n);
    const K = new Uint32Array(primes.map((p) => frac(Math.cbrt(p))));
    const H = new Uint32Array(primes.slice(0, 8).map((p) => frac(Math.sqrt(p))));
    const length = bytes.length;
    const padded = new Uint8Array((((length + 9) >> 6) + 1) << 6);
    padded.set(bytes);
    padded[length] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor((length * 8) / 4294967296));
    view.setUint32(padded.length - 4, (length * 8) >>> 0);
    const W = new Uint32Array(64);
    for (let offset = 0; offset < padded.length; offset += 64) {
        for (let i = 0; i < 16; i++) W[i] = view.getUint32(offset + 4 * i);
        for (let i = 16; i < 64; i++) {
            const a = W[i - 15], b = W[i - 2];
            const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
            const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
            W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
        }
        let a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], h = H[7];
        for (let i = 0; i < 64; i++) {
            const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
            const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
            const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
            const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
            h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
        }
        H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
    }
    return Array.from(H, (x) => x.toString(16).padStart(8, '0')).join('');
}

function base64js(bytes: Uint8Array): string {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const pieces: string[] = [];
    let piece = '';
    const length = bytes.length;
    for (let i = 0; i < length; i += 3) {
        const n = (bytes[i] << 16) | ((i + 1 < length ? bytes[i + 1] : 0) << 8) | (i + 2 < length ? bytes[i + 2] : 0);
        piece += alphabet[(n >>> 18) & 63] + alphabet[(n >>> 12) & 63] + (i + 1 < length ? alphabet[(n >>> 6) & 63] : '=') + (i + 2 < length ? alphabet[n & 63] : '=');
        if (piece.length >= 65536) {
            pieces.push(piece);
            piece = '';
        }
    }
    pieces.push(piece);
    return pieces.join('');
}

export default async function runAction(nango: any, size: number) {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (i * 31 + (i >> 8)) & 255;
    const time = <T>(work: () => T): [T, number] => {
        const started = performance.now();
        const result = work();
        return [result, performance.now() - started];
    };
    const [nativeHash, nativeHashMs] = time(() => createHash('sha256').update(data).digest('hex'));
    const [jsHash, jsHashMs] = time(() => sha256js(data));
    const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const [nativeBase64, nativeBase64Ms] = time(() => buffer.toString('base64'));
    const [jsBase64, jsBase64Ms] = time(() => base64js(data));
    if (nativeHash !== jsHash) throw new Error(`sha256 differs: ${nativeHash} / ${jsHash}`);
    if (nativeBase64 !== jsBase64) throw new Error('base64 differs');
    return { nativeHashMs, jsHashMs, nativeBase64Ms, jsBase64Ms };
}
"#;

struct NoHost;

impl Host for NoHost {
    fn save(&mut self, _: SaveOp, _: &str, _: RecordBatch) -> Result<(), String> {
        Ok(())
    }
    fn log(&mut self, _: &str, _: &str, _: Option<&str>) {}
    fn metadata(&mut self) -> Result<String, String> {
        Ok("{}".into())
    }
    fn set_metadata(&mut self, _: &str, _: bool) -> Result<(), String> {
        Ok(())
    }
    fn lock_credentials(&mut self) -> Result<Value, String> {
        Err("none".into())
    }
    fn store_credentials(&mut self, _: &Value) -> Result<(), String> {
        Ok(())
    }
    fn release_credentials(&mut self) {}
}

/// Runs the comparison and prints it.
pub fn native_against_javascript() {
    let path = "bench/actions/native.ts";
    let compiled = compile(path, SCRIPT).expect("the benchmark script compiles");
    let modules: HashMap<String, StoredModule> = [(
        path.to_string(),
        StoredModule::new(compiled.js, compiled.source_map),
    )]
    .into_iter()
    .collect();
    let run = ScriptRun {
        kind: ScriptKind::Action {
            input_json: Some(SIZE.to_string()),
        },
        entry: path.into(),
        modules: module_map(modules),
        provider_name: "bench".into(),
        provider: Provider::default(),
        oauth_client: None,
        connection: ConnectionInfo {
            connection_id: "bench".into(),
            provider_config_key: "bench".into(),
            connection_config: json!({}),
            credentials: json!({}),
        },
        last_sync_date: None,
        models: vec![],
        limits: Limits {
            timeout: Duration::from_secs(600),
            memory_bytes: 1 << 30,
            ..Limits::default()
        },
    };
    let output = run_script(run, Rc::new(RefCell::new(NoHost)), Arc::new(|| false))
        .expect("the benchmark script runs")
        .expect("it returns its times");
    let ms = |key: &str| output[key].as_f64().unwrap_or(f64::NAN);
    println!(
        "\n## Native work under Buffer and crypto against plain JavaScript in QuickJS (10 MB)"
    );
    for (what, native, js) in [
        ("crypto sha256", ms("nativeHashMs"), ms("jsHashMs")),
        ("Buffer base64", ms("nativeBase64Ms"), ms("jsBase64Ms")),
    ] {
        println!(
            "{what}: native {native:>8.1} ms, JavaScript {js:>9.1} ms: native is {:.0}x faster",
            js / native
        );
    }
}
