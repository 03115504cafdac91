//! A script written for Nango's Node.js runner runs unchanged: a sync and an action using Buffer, URL,
//! URLSearchParams, TextEncoder, atob/btoa, setTimeout, structuredClone, console and the crypto and url
//! modules, deployed and run on a real cluster; and deploys importing what this runtime cannot run are
//! refused with the reason. Its own binary: it deploys its own integration over the fixture.

use pg_nango_core::script::node::{Algorithm, encode, rsa_verify};
use pg_nango_e2e::*;
use serde_json::{Value, json};

const PRIVATE_KEY: &str = include_str!("../../../crates/core/tests/keys/rsa1024.pk8.pem");
const PUBLIC_KEY: &str = include_str!("../../../crates/core/tests/keys/rsa1024.pub.pem");

const CONFIG: &str = "integrations:\n  node:\n    provider: demo\n    syncs:\n      vectors:\n        runs: every hour\n        auto_start: false\n        output: Vector\n        endpoint: GET /node/vectors\n    actions:\n      toolkit:\n        input: ToolkitInput\n        output: ToolkitOutput\n        endpoint: POST /node/toolkit\nmodels:\n  Vector:\n    id: string\n  ToolkitInput:\n    key: string\n  ToolkitOutput:\n    jwt: string\n";

const SYNC: &str = r#"import type { NangoSync } from '../../models';
import { createHash, createHmac } from 'crypto';

export default async function fetchData(nango: NangoSync): Promise<void> {
    const started = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const url = new URL('/v1/items?page=2', 'https://API.example.com');
    url.searchParams.set('q', 'a b');
    console.log('vectors for', { page: url.searchParams.get('page') });
    console.warn('careful: %s', 'this is a warning');
    await nango.batchSave([{
        id: 'vectors',
        sha256: createHash('sha256').update('abc').digest('hex'),
        hmac: createHmac('sha256', 'Jefe').update('what do ya want for nothing?').digest('hex'),
        base64: Buffer.from('hello world').toString('base64'),
        base64url: Buffer.from([0xfb, 0xff]).toString('base64url'),
        url: url.href,
        host: url.host,
        waited: Date.now() - started >= 45,
    }], 'Vector');
}
"#;

const ACTION: &str = r#"import crypto from 'node:crypto';
import * as url from 'url';

export default async function runAction(nango: any, input: { key: string }) {
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT' })).toString('base64url');
    const claims = Buffer.from(JSON.stringify({ iss: nango.connectionId, iat: 1700000000 })).toString('base64url');
    const signature = crypto.createSign('RSA-SHA256').update(`${header}.${claims}`).sign(input.key, 'base64url');
    const original = { when: new Date(0), tags: new Set(['a']), nested: { n: 1 } };
    const copy = structuredClone(original);
    copy.nested.n = 2;
    const legacy = url.parse('https://host.test:8080/p?x=1', true);
    console.error('done signing');
    return {
        jwt: `${header}.${claims}.${signature}`,
        uuid: /^[0-9a-f-]{36}$/.test(crypto.randomUUID()),
        encoded: Array.from(new TextEncoder().encode('é')),
        decoded: new TextDecoder().decode(new Uint8Array([0xe2, 0x82, 0xac])),
        btoa: btoa('hi'),
        atob: atob('aGk='),
        clone: [copy.when instanceof Date, copy.tags.has('a'), original.nested.n],
        params: new URLSearchParams({ a: '1', b: 'x y' }).toString(),
        legacy: [legacy.hostname, legacy.port, legacy.pathname, (legacy.query as any).x],
    };
}
"#;

fn deploy(client: &mut Client, config: &str, files: &Value) -> Result<Value, postgres::Error> {
    client
        .query_one(
            "SELECT nango.deploy($1::text, $2::jsonb, allow_destructive => true)",
            &[&config, files],
        )
        .map(|row| row.get::<_, Value>(0))
}

#[test]
fn a_script_uses_node_globals_and_modules() {
    let mut client = connect();
    deploy(
        &mut client,
        CONFIG,
        &json!({"node/syncs/vectors.ts": SYNC, "node/actions/toolkit.ts": ACTION}),
    )
    .expect("deploy the node integration");
    create_connection(&mut client, "node", "node-conn");

    let (job, status) = run_sync(&mut client, "node", "vectors", "node-conn");
    assert_eq!(status, "SUCCESS", "{:?}", job_outcome(&mut client, job));
    let record: Value = client
        .query_one(
            "SELECT data FROM nango.records('Vector', connection_id => 'node-conn')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        record,
        json!({
            "id": "vectors",
            "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "hmac": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "base64": "aGVsbG8gd29ybGQ=",
            "base64url": "-_8",
            "url": "https://api.example.com/v1/items?page=2&q=a+b",
            "host": "api.example.com",
            "waited": true,
        })
    );
    let logs: Vec<(String, String)> = job_logs(&mut client, job)
        .into_iter()
        .map(|(level, message, _)| (level, message))
        .collect();
    assert!(
        logs.contains(&("info".into(), "vectors for { page: '2' }".into())),
        "{logs:?}"
    );
    assert!(
        logs.contains(&("warn".into(), "careful: this is a warning".into())),
        "{logs:?}"
    );

    let output: Value = client
        .query_one(
            "SELECT nango.trigger_action('node', 'node-conn', 'toolkit', $1::jsonb)",
            &[&json!({ "key": PRIVATE_KEY })],
        )
        .expect("run the action")
        .get(0);
    let jwt = output["jwt"].as_str().unwrap();
    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    let claims = encode(signed.split('.').nth(1).unwrap(), "base64url").unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&claims).unwrap(),
        json!({"iss": "node-conn", "iat": 1700000000})
    );
    let signature = encode(signature, "base64url").unwrap();
    assert!(
        rsa_verify(Algorithm::Sha256, PUBLIC_KEY, signed.as_bytes(), &signature).unwrap(),
        "the RS256 signature verifies with the public key"
    );
    assert_eq!(
        {
            let mut rest = output.clone();
            rest.as_object_mut().unwrap().remove("jwt");
            rest
        },
        json!({
            "uuid": true,
            "encoded": [195, 169],
            "decoded": "€",
            "btoa": "aGk=",
            "atob": "hi",
            "clone": [true, true, 1],
            "params": "a=1&b=x+y",
            "legacy": ["host.test", "8080", "/p", "1"],
        })
    );
}

#[test]
fn deploys_importing_what_cannot_run_here_are_refused() {
    let mut client = connect();
    let refused = |client: &mut Client, files: Value| {
        let error = deploy(client, CONFIG, &files).expect_err("the deploy is refused");
        db_error(error).0
    };
    let with_sync = |sync: &str, extra: &[(&str, &str)]| {
        let mut files = json!({"node/syncs/vectors.ts": sync, "node/actions/toolkit.ts": ACTION});
        for (path, source) in extra {
            files[*path] = json!(source);
        }
        files
    };

    let soap = "import soap from 'soap';\nexport default async function fetchData(nango: any) { await soap.createClientAsync('x'); }\n";
    assert_eq!(
        refused(&mut client, with_sync(soap, &[])),
        "deploy failed: node/syncs/vectors.ts: imports the package 'soap', which Nango's runner provides but which cannot run here: it needs Node.js' http, https, stream and fs modules, which this runtime does not have (scripts run in QuickJS inside Postgres, not in Node.js)"
    );

    let http = "import http from 'http';\nexport default async function fetchData(nango: any) { http.get('x'); }\n";
    assert_eq!(
        refused(&mut client, with_sync(http, &[])),
        "deploy failed: node/syncs/vectors.ts: imports 'http', a Node.js built-in module this runtime does not provide (scripts run in QuickJS inside Postgres, not in Node.js; the built-in modules available are crypto, url, buffer, and HTTP calls go through nango.proxy)"
    );

    // The folder brings soap in node_modules: the deploy names the built-in it needs.
    let installed = with_sync(
        soap,
        &[
            (
                "node_modules/soap/package.json",
                r#"{"name": "soap", "module": "lib/soap.mjs"}"#,
            ),
            (
                "node_modules/soap/lib/soap.mjs",
                "import * as https from 'node:https';\nexport default { createClientAsync: async () => https };\n",
            ),
        ],
    );
    assert_eq!(
        refused(&mut client, installed),
        "deploy failed: node_modules/soap/lib/soap.mjs: the package 'soap' imports 'node:https', a Node.js built-in module this runtime does not provide, so the package cannot run here (scripts run in QuickJS inside Postgres, not in Node.js; the built-in modules available are crypto, url, buffer)"
    );
}
