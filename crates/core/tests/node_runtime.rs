//! The Node.js globals and built-in modules a script finds (Buffer, URL, crypto, timers, console, …), run
//! through the real runtime with an in-memory host. Each test runs a small action and checks its output,
//! its error or its log lines.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_nango_core::providers::{ConnectionInfo, Provider};
use pg_nango_core::records::batch::RecordBatch;
use pg_nango_core::script::compile::compile;
use pg_nango_core::script::{
    Host, Limits, SaveOp, ScriptError, ScriptKind, ScriptRun, StoredModule, module_map, run_script,
};
use serde_json::{Value, json};

#[derive(Default)]
struct LogHost {
    logs: Vec<(String, String)>,
}

impl Host for LogHost {
    fn save(&mut self, _: SaveOp, _: &str, _: RecordBatch) -> Result<(), String> {
        Ok(())
    }
    fn log(&mut self, level: &str, message: &str, _payload: Option<&str>) {
        self.logs.push((level.to_string(), message.to_string()));
    }
    fn metadata(&mut self) -> Result<String, String> {
        Ok("{}".into())
    }
    fn set_metadata(&mut self, _: &str, _: bool) -> Result<(), String> {
        Ok(())
    }
    fn lock_credentials(&mut self) -> Result<Value, String> {
        Err("no refresh here".into())
    }
    fn store_credentials(&mut self, _: &Value) -> Result<(), String> {
        Ok(())
    }
    fn release_credentials(&mut self) {}
}

/// Runs `body` as the body of an async action (it may `return`), with `imports` above it.
fn action_with(
    imports: &str,
    body: &str,
    timeout: Duration,
) -> (Result<Option<Value>, ScriptError>, LogHost) {
    let source = format!(
        "{imports}\nexport default async function runAction(nango: any, input: any): Promise<any> {{\n{body}\n}}\n"
    );
    let compiled = compile("demo/actions/a.ts", &source).unwrap();
    let modules: HashMap<String, StoredModule> = [(
        "demo/actions/a.ts".to_string(),
        StoredModule::new(compiled.js, compiled.source_map),
    )]
    .into_iter()
    .collect();
    let host = Rc::new(RefCell::new(LogHost::default()));
    let run = ScriptRun {
        kind: ScriptKind::Action { input_json: None },
        entry: "demo/actions/a.ts".into(),
        modules: module_map(modules),
        provider_name: "demo".into(),
        provider: Provider::default(),
        oauth_client: None,
        connection: ConnectionInfo {
            connection_id: "c1".into(),
            provider_config_key: "demo".into(),
            connection_config: json!({}),
            credentials: json!({}),
        },
        last_sync_date: None,
        models: vec![],
        limits: Limits {
            timeout,
            memory_bytes: 64 << 20,
            ..Limits::default()
        },
    };
    let result = run_script(run, host.clone(), Arc::new(|| false));
    let host = Rc::try_unwrap(host).ok().unwrap().into_inner();
    (result, host)
}

fn action(imports: &str, body: &str) -> Value {
    let (result, _) = action_with(imports, body, Duration::from_secs(10));
    match result {
        Ok(value) => value.unwrap_or(Value::Null),
        Err(e) => panic!("the action failed: {e}"),
    }
}

/// The message of the error `body` throws.
fn thrown(body: &str) -> String {
    let (result, _) = action_with("", body, Duration::from_secs(10));
    match result {
        Err(ScriptError::Thrown { message, .. }) => message,
        other => panic!("expected a thrown error, got {other:?}"),
    }
}

#[test]
fn buffer_encodes_and_decodes() {
    let out = action(
        "",
        r#"
        const b = Buffer.from('héllo wörld', 'utf8');
        const sliced = b.slice(0, 5);
        const w = Buffer.alloc(8);
        w.writeUInt32BE(0xdeadbeef, 0);
        w.writeInt16LE(-2, 4);
        return {
            isBuffer: Buffer.isBuffer(b), isUint8: b instanceof Uint8Array, length: b.length,
            base64: b.toString('base64'), base64url: Buffer.from([0xfb, 0xff, 0xbf]).toString('base64url'),
            fromBase64: Buffer.from('aGVsbG8gd29ybGQ=', 'base64').toString(),
            fromBase64url: Buffer.from('-_-_', 'base64url').toString('hex'),
            hex: Buffer.from('0aff', 'hex').toString('hex'), latin1: Buffer.from('é', 'latin1').toString('hex'),
            binary: Buffer.from([0xe9]).toString('binary'), ucs2: Buffer.from('hi', 'ucs2').toString('hex'),
            ascii: Buffer.from([0xe8, 0x41]).toString('ascii'),
            range: b.toString('utf8', 0, 3), slicedIsBuffer: Buffer.isBuffer(sliced), sliced: sliced.toString(),
            shares: (sliced[0] = 72, b[0]),
            concat: Buffer.concat([Buffer.from('ab'), new Uint8Array([99])]).toString(),
            concatLimited: Buffer.concat([Buffer.from('abc'), Buffer.from('def')], 4).toString(),
            equals: Buffer.from('x').equals(Buffer.from('x')), compare: Buffer.compare(Buffer.from('a'), Buffer.from('b')),
            json: JSON.stringify(Buffer.from([1, 2])), byteLength: Buffer.byteLength('héllo'),
            byteLength64: Buffer.byteLength('aGVsbG8=', 'base64'),
            fromJson: Buffer.from({ type: 'Buffer', data: [104, 105] }).toString(),
            arrayBuffer: Buffer.from(new Uint8Array([5, 6, 7]).buffer, 1, 2).toString('hex'),
            alloc: Buffer.alloc(3, 'ab').toString(), written: w.toString('hex'),
            readBack: [w.readUInt32BE(0), w.readInt16LE(4), w.readUint8(0)],
            indexOf: Buffer.from('hello world').indexOf('world'), includes: Buffer.from('abc').includes(Buffer.from('bc')),
            write: (() => { const t = Buffer.alloc(4); const n = t.write('hi', 1); return [n, t.toString('hex')]; })(),
            copy: (() => { const t = Buffer.alloc(3); Buffer.from('xyz').copy(t, 1); return t.toString('hex'); })(),
            subarrayIsBuffer: b.subarray(1) instanceof Buffer, mapIsBuffer: Buffer.isBuffer(b.map((x) => x)),
            ctor: new Buffer('hi').toString(), lone: Buffer.from('\ud800').toString('hex'),
        };
        "#,
    );
    assert_eq!(
        out,
        json!({
            "isBuffer": true, "isUint8": true, "length": 13,
            "base64": "aMOpbGxvIHfDtnJsZA==", "base64url": "-_-_",
            "fromBase64": "hello world", "fromBase64url": "fbffbf",
            "hex": "0aff", "latin1": "e9", "binary": "é", "ucs2": "68006900", "ascii": "hA",
            "range": "hé", "slicedIsBuffer": true, "sliced": "héll", "shares": 72,
            "concat": "abc", "concatLimited": "abcd", "equals": true, "compare": -1,
            "json": "{\"type\":\"Buffer\",\"data\":[1,2]}", "byteLength": 6, "byteLength64": 5,
            "fromJson": "hi", "arrayBuffer": "0607", "alloc": "aba", "written": "deadbeeffeff0000",
            "readBack": [3735928559u32, -2, 222], "indexOf": 6, "includes": true,
            "write": [2, "00686900"], "copy": "007879", "subarrayIsBuffer": true, "mapIsBuffer": true,
            "ctor": "hi", "lone": "efbfbd",
        })
    );
}

#[test]
fn buffer_arguments_are_checked_like_node() {
    assert_eq!(
        thrown("Buffer.from(12 as any);"),
        "The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object. Received type number (12)"
    );
    assert_eq!(
        thrown("Buffer.from('x', 'klingon' as any);"),
        "Unknown encoding: klingon"
    );
    assert_eq!(
        thrown("Buffer.alloc(1e12);"),
        "The value of \"size\" is out of range. It must be >= 0 && <= 67108864. Received 1000000000000"
    );
    assert_eq!(
        thrown("Buffer.alloc(4).readUInt32LE(2);"),
        "The value of \"offset\" is out of range. It must be >= 0 and <= 0. Received 2"
    );
    let out = action(
        "",
        "try { Buffer.alloc(-1); } catch (e: any) { return [e.name, e.code]; }",
    );
    assert_eq!(out, json!(["RangeError", "ERR_OUT_OF_RANGE"]));
}

#[test]
fn text_encoding_and_base64_globals() {
    let out = action(
        "",
        r#"
        const bytes = new TextEncoder().encode('€');
        const into = new Uint8Array(2);
        let fatal = '';
        try { new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array([0xff])); } catch (e: any) { fatal = e.code; }
        let bad = '';
        try { atob('@@@'); } catch (e: any) { bad = e.name; }
        return {
            encoded: Array.from(bytes), plain: bytes instanceof Uint8Array && !Buffer.isBuffer(bytes),
            decoded: new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 0xe2, 0x82, 0xac])),
            lossy: new TextDecoder().decode(new Uint8Array([0x61, 0xff])), fatal,
            into: new TextEncoder().encodeInto('a€', into), btoa: btoa('hello'), atob: atob('aGVsbG8='), bad,
        };
        "#,
    );
    assert_eq!(
        out,
        json!({
            "encoded": [226, 130, 172], "plain": true, "decoded": "€", "lossy": "a\u{fffd}",
            "fatal": "ERR_ENCODING_INVALID_ENCODED_DATA", "into": {"read": 1, "written": 1},
            "btoa": "aGVsbG8=", "atob": "hello", "bad": "InvalidCharacterError",
        })
    );
}

#[test]
fn url_and_search_params_follow_whatwg() {
    let out = action(
        "",
        r#"
        const u = new URL('../b/c?x=1&y=a+b#frag', 'https://user:pa ss@EXAMPLE.com:443/a/d');
        const parts = { href: u.href, origin: u.origin, protocol: u.protocol, host: u.host, hostname: u.hostname,
            port: u.port, pathname: u.pathname, search: u.search, hash: u.hash, username: u.username, password: u.password };
        u.searchParams.append('z', 'ä &');
        const afterAppend = u.href;
        u.search = '?only=1';
        const live = u.searchParams.get('only');
        u.port = '8443'; u.hostname = 'api.test'; u.pathname = '/v1/items'; u.hash = '';
        const p = new URLSearchParams({ b: '2', a: '1' });
        p.append('a', '3'); p.sort();
        const fromPairs = new URLSearchParams([['k', 'v'], ['k', 'w']]);
        fromPairs.set('k', 'x');
        const seen: string[] = [];
        new URLSearchParams('?q=1&r=2').forEach((v, k) => seen.push(`${k}=${v}`));
        let invalid = '';
        try { new URL('not a url'); } catch (e: any) { invalid = `${e.name} ${e.code} ${e.message}`; }
        return { parts, afterAppend, live, after: u.toString(), json: JSON.stringify({ u }), sorted: p.toString(),
            all: p.getAll('a'), has: p.has('b'), size: p.size, missing: p.get('nope'), fromPairs: fromPairs.toString(),
            entries: [...new URLSearchParams('a=1&b=2')], keys: [...new URLSearchParams('a=1&b=2').keys()], seen, invalid,
            canParse: [URL.canParse('https://x.test'), URL.canParse('/x')], ipv6: new URL('http://[::1]:80/').host,
            idn: new URL('https://bücher.example/').hostname, file: new URL('file:///tmp/a b').pathname };
        "#,
    );
    assert_eq!(
        out,
        json!({
            "parts": {"href": "https://user:pa%20ss@example.com/b/c?x=1&y=a+b#frag", "origin": "https://example.com",
                "protocol": "https:", "host": "example.com", "hostname": "example.com", "port": "", "pathname": "/b/c",
                "search": "?x=1&y=a+b", "hash": "#frag", "username": "user", "password": "pa%20ss"},
            "afterAppend": "https://user:pa%20ss@example.com/b/c?x=1&y=a+b&z=%C3%A4+%26#frag",
            "live": "1",
            "after": "https://user:pa%20ss@api.test:8443/v1/items?only=1",
            "json": "{\"u\":\"https://user:pa%20ss@api.test:8443/v1/items?only=1\"}",
            "sorted": "a=1&a=3&b=2", "all": ["1", "3"], "has": true, "size": 3, "missing": null,
            "fromPairs": "k=x", "entries": [["a", "1"], ["b", "2"]], "keys": ["a", "b"], "seen": ["q=1", "r=2"],
            "invalid": "TypeError ERR_INVALID_URL Invalid URL", "canParse": [true, false], "ipv6": "[::1]",
            "idn": "xn--bcher-kva.example", "file": "/tmp/a%20b",
        })
    );
}

#[test]
fn url_module_and_legacy_parse() {
    let out = action(
        "import url, { URL as U, fileURLToPath } from 'url';\nimport * as nodeUrl from 'node:url';",
        r#"
        const legacy = url.parse('https://user:pw@Host.test:8080/p/a?x=1&x=2#h', true);
        return { same: U === URL && nodeUrl.URL === URL, path: fileURLToPath('file:///tmp/a%20b'),
            legacy: { protocol: legacy.protocol, auth: legacy.auth, host: legacy.host, port: legacy.port, hostname: legacy.hostname,
                pathname: legacy.pathname, search: legacy.search, query: legacy.query, hash: legacy.hash, path: legacy.path, href: legacy.href },
            format: url.format({ protocol: 'https', hostname: 'a.test', pathname: '/x', query: { q: 'a b' } }),
            resolve: url.resolve('http://a.test/b/c', '../d') };
        "#,
    );
    assert_eq!(
        out,
        json!({
            "same": true, "path": "/tmp/a b",
            "legacy": {"protocol": "https:", "auth": "user:pw", "host": "host.test:8080", "port": "8080",
                "hostname": "host.test", "pathname": "/p/a", "search": "?x=1&x=2", "query": {"x": ["1", "2"]},
                "hash": "#h", "path": "/p/a?x=1&x=2", "href": "https://user:pw@host.test:8080/p/a?x=1&x=2#h"},
            "format": "https://a.test/x?q=a+b", "resolve": "http://a.test/d",
        })
    );
}

#[test]
fn crypto_hashes_hmacs_and_randomness() {
    let out = action(
        "import crypto from 'crypto';\nimport { createHash, createHmac } from 'node:crypto';\nimport * as c from 'crypto';",
        r#"
        const uuid = crypto.randomUUID();
        const r = crypto.randomInt(10, 20);
        let finalized = '';
        const h = createHash('sha256'); h.digest();
        try { h.update('x'); } catch (e: any) { finalized = e.code; }
        let unequal = '';
        try { crypto.timingSafeEqual(Buffer.from('a'), Buffer.from('ab')); } catch (e: any) { unequal = e.code; }
        let unknown = '';
        try { createHash('whirlpool'); } catch (e: any) { unknown = e.message; }
        return {
            sha256: createHash('sha256').update('abc').digest('hex'),
            chained: createHash('sha256').update('a').update(Buffer.from('b')).update('63', 'hex').digest('hex'),
            md5: c.createHash('md5').update('abc').digest('hex'),
            sha1: crypto.createHash('sha1').update('abc').digest('base64'),
            sha512: crypto.createHash('SHA512').update('').digest('hex').slice(0, 16),
            sha384: crypto.createHash('sha384').update('abc').digest('base64url').slice(0, 10),
            raw: Buffer.isBuffer(createHash('sha256').digest()),
            hmac: createHmac('sha256', 'Jefe').update('what do ya want for nothing?').digest('hex'),
            hmacBufferKey: createHmac('sha1', Buffer.from('key')).update('The quick brown fox jumps over the lazy dog').digest('hex'),
            uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(uuid),
            globalUuid: typeof globalThis.crypto.randomUUID(),
            random: crypto.randomBytes(16).length, distinct: crypto.randomBytes(8).toString('hex') !== crypto.randomBytes(8).toString('hex'),
            inRange: r >= 10 && r < 20, filled: globalThis.crypto.getRandomValues(new Uint32Array(4)).length,
            safeEqual: crypto.timingSafeEqual(Buffer.from('abc'), Buffer.from('abc')), finalized, unequal, unknown,
        };
        "#,
    );
    assert_eq!(
        out,
        json!({
            "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "chained": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "md5": "900150983cd24fb0d6963f7d28e17f72",
            "sha1": "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=",
            "sha512": "cf83e1357eefb8bd",
            "sha384": "ywB1P0WjXo",
            "raw": true,
            "hmac": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "hmacBufferKey": "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9",
            "uuid": true, "globalUuid": "string", "random": 16, "distinct": true, "inRange": true, "filled": 4,
            "safeEqual": true, "finalized": "ERR_CRYPTO_HASH_FINALIZED", "unequal": "ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH",
            "unknown": "Digest method not supported",
        })
    );
}

/// A 1024-bit test key (PKCS#1), its PKCS#8 form and its public key (SPKI), made with openssl for this test.
const PRIVATE_PKCS1: &str = include_str!("keys/rsa1024.pem");
const PRIVATE_PKCS8: &str = include_str!("keys/rsa1024.pk8.pem");
const PUBLIC_SPKI: &str = include_str!("keys/rsa1024.pub.pem");

#[test]
fn crypto_signs_an_rs256_jwt() {
    let body = format!(
        r#"
        const header = Buffer.from(JSON.stringify({{ alg: 'RS256', typ: 'JWT' }})).toString('base64url');
        const claims = Buffer.from(JSON.stringify({{ iss: 'me', iat: 1 }})).toString('base64url');
        const signingInput = `${{header}}.${{claims}}`;
        const signature = createSign('RSA-SHA256').update(signingInput).sign({pkcs1:?}, 'base64url');
        const pk8 = crypto.sign('sha256', Buffer.from(signingInput), {pkcs8:?}).toString('base64url');
        return {{
            jwt: `${{signingInput}}.${{signature}}`,
            deterministic: signature === pk8,
            verified: createVerify('RSA-SHA256').update(signingInput).verify({public:?}, signature, 'base64url'),
            tampered: crypto.verify('sha256', Buffer.from(signingInput + 'x'), {public:?}, Buffer.from(signature, 'base64url')),
            withPrivate: crypto.createVerify('sha256').update(signingInput).verify(crypto.createPrivateKey({pkcs8:?}), signature, 'base64url'),
        }};
        "#,
        pkcs1 = PRIVATE_PKCS1,
        pkcs8 = PRIVATE_PKCS8,
        public = PUBLIC_SPKI,
    );
    let out = action(
        "import crypto, { createSign, createVerify } from 'crypto';",
        &body,
    );
    assert_eq!(out["deterministic"], json!(true));
    assert_eq!(out["verified"], json!(true));
    assert_eq!(out["tampered"], json!(false));
    assert_eq!(out["withPrivate"], json!(true));
    // The signature verifies with the public key outside the runtime too.
    let jwt = out["jwt"].as_str().unwrap();
    let (input, signature) = jwt.rsplit_once('.').unwrap();
    let signature = pg_nango_core::script::node::encode(signature, "base64url").unwrap();
    assert!(
        pg_nango_core::script::node::rsa_verify(
            pg_nango_core::script::node::Algorithm::Sha256,
            PUBLIC_SPKI,
            input.as_bytes(),
            &signature
        )
        .unwrap()
    );
    let (result, _) = action_with(
        "import { createSign } from 'crypto';",
        "createSign('sha256').update('x').sign('-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----');",
        Duration::from_secs(10),
    );
    assert!(
        result
            .unwrap_err()
            .message()
            .starts_with("the private key could not be read"),
    );
}

#[test]
fn timers_run_on_the_event_loop() {
    let started = Instant::now();
    let out = action(
        "",
        r#"
        const order: string[] = [];
        await new Promise((resolve) => setTimeout(resolve, 50));
        const t = setTimeout(() => order.push('cancelled'), 10);
        clearTimeout(t);
        setTimeout((a: string, b: string) => order.push(a + b), 5, 'time', 'out');
        setImmediate(() => order.push('immediate'));
        let ticks = 0;
        await new Promise<void>((resolve) => { const i = setInterval(() => { if (++ticks === 3) { clearInterval(i); resolve(); } }, 1); });
        await new Promise((resolve) => setTimeout(resolve, 20));
        queueMicrotask(() => order.push('microtask'));
        await null;
        return { order, ticks, primitive: typeof +setTimeout(() => {}, 1) };
        "#,
    );
    assert_eq!(
        out,
        json!({"order": ["immediate", "timeout", "microtask"], "ticks": 3, "primitive": "number"})
    );
    assert!(started.elapsed() >= Duration::from_millis(70));
}

#[test]
fn a_timer_counts_against_the_time_limit() {
    let started = Instant::now();
    let (result, _) = action_with(
        "",
        "await new Promise((resolve) => setTimeout(resolve, 60000));",
        Duration::from_millis(300),
    );
    assert_eq!(
        result.unwrap_err(),
        ScriptError::Timeout(Duration::from_millis(300))
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // A timer still pending when the run ends is dropped with it.
    let started = Instant::now();
    let (result, host) = action_with(
        "",
        "setTimeout(() => console.log('late'), 5000); return 1;",
        Duration::from_secs(30),
    );
    assert_eq!(result.unwrap(), Some(json!(1)));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(host.logs.is_empty());
}

#[test]
fn structured_clone_copies_plain_data() {
    let out = action(
        "",
        r#"
        const source: any = { d: new Date(0), m: new Map([['k', { v: 1 }]]), s: new Set([1, 2]), a: [1, { b: 2 }], t: new Uint8Array([1, 2]) };
        source.self = source;
        const copy = structuredClone(source);
        copy.a[1].b = 3;
        let fn = '';
        try { structuredClone({ f: () => 1 }); } catch (e: any) { fn = e.name; }
        return { date: copy.d instanceof Date && copy.d.getTime() === 0, map: copy.m.get('k').v, set: [...copy.s],
            original: source.a[1].b, cycle: copy.self === copy, typed: copy.t instanceof Uint8Array && copy.t.buffer !== source.t.buffer, fn };
        "#,
    );
    assert_eq!(
        out,
        json!({"date": true, "map": 1, "set": [1, 2], "original": 2, "cycle": true, "typed": true, "fn": "DataCloneError"})
    );
}

#[test]
fn console_writes_formatted_lines_to_the_log() {
    let (result, host) = action_with(
        "",
        r#"
        console.log('plain', 1, { a: [1, 'x'], n: null }, [1, 2]);
        console.info('%s is %d years and %i', 'Ann', 42.5, 7.9, 'extra');
        console.warn('careful %o', { deep: { deeper: { deepest: { gone: 1 } } } });
        console.error(new Error('bad thing'));
        console.debug('%j and 100%%', { j: 1 });
        console.trace('here');
        console.log(Buffer.from('hi'), new Map([['a', 1]]), new Set(['s']), undefined, null, () => 1, 'str');
        console.assert(1 === 2, 'math');
        console.log();
        return null;
        "#,
        Duration::from_secs(10),
    );
    result.unwrap();
    let lines: Vec<(&str, &str)> = host
        .logs
        .iter()
        .map(|(l, m)| (l.as_str(), m.as_str()))
        .collect();
    assert_eq!(
        lines[0],
        ("info", "plain 1 { a: [ 1, 'x' ], n: null } [ 1, 2 ]")
    );
    assert_eq!(lines[1], ("info", "Ann is 42.5 years and 7 extra"));
    assert_eq!(
        lines[2],
        (
            "warn",
            "careful { deep: { deeper: { deepest: { gone: 1 } } } }"
        )
    );
    assert_eq!(lines[3].0, "error");
    assert!(
        lines[3].1.starts_with("Error: bad thing\n"),
        "{}",
        lines[3].1
    );
    assert_eq!(lines[4], ("debug", "{\"j\":1} and 100%"));
    assert_eq!(lines[5].0, "debug");
    assert!(lines[5].1.starts_with("Trace: here\n"), "{}", lines[5].1);
    assert_eq!(
        lines[6],
        (
            "info",
            "<Buffer 68 69> Map(1) { 'a' => 1 } Set(1) { 's' } undefined null [Function (anonymous)] str"
        )
    );
    assert_eq!(lines[7], ("error", "Assertion failed: math"));
    assert_eq!(lines[8], ("info", ""));
}
