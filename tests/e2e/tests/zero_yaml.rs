//! Nango's zero-YAML format end to end: a project of `index.ts`, `createSync`/`createAction` scripts and a
//! schemas file, deployed with `nango.deploy(NULL, files)` and from a folder, run against the mock API.
//! Its own binary and cluster; it deploys its own integration.

use std::collections::BTreeMap;

use pg_nango_e2e::*;
use serde_json::{Value, json};

const INDEX: &str = "// The scripts of this project.
import './zdesk/syncs/tickets.js';
import './zdesk/actions/create-ticket.js';
";

const SCHEMAS: &str = "import { z } from 'zod';

export const Ticket = z.object({
    id: z.string(),
    title: z.string(),
    points: z.number().int().optional(),
    done: z.boolean(),
    closedAt: z.date().nullable()
});

export const DeskSettings = z.object({ prefix: z.string() });
";

/// Pages through the dataset from the checkpoint, saving each page, deleting what a full pass did not
/// see, and prefixing titles with the connection's metadata (read through its zod schema).
const TICKETS: &str = "import { createSync } from 'nango';
import { z } from 'zod';
import { Ticket, DeskSettings } from '../schemas.js';

const sync = createSync({
    description: 'Tickets of the desk',
    version: '2.0.0',
    frequency: 'every hour',
    autoStart: false,
    checkpoint: z.object({ page: z.number() }),
    metadata: DeskSettings,
    endpoints: [{ method: 'GET', path: '/zdesk/tickets' }],
    models: { ZdTicket: Ticket },
    exec: async (nango) => {
        const settings = DeskSettings.parse(await nango.getMetadata());
        const checkpoint = await nango.getCheckpoint();
        await nango.trackDeletesStart('ZdTicket');
        let pages = 0;
        for await (const page of nango.paginate({ endpoint: '/datasets/zd-tickets', paginate: { limit: 2 } })) {
            const tickets = page.map((t: any) => Ticket.parse({ ...t, title: `${settings.prefix}${t.title}`, closedAt: null }));
            await nango.batchSave(tickets, 'ZdTicket');
            pages += 1;
            await nango.saveCheckpoint({ page: pages });
        }
        await nango.trackDeletesEnd('ZdTicket');
        await nango.log('done', { pages, resumedFrom: checkpoint });
        await nango.clearCheckpoint();
    }
});
export default sync;
";

const CREATE_TICKET: &str = "import { createAction } from 'nango';
import * as z from 'zod';

const Input = z.object({ title: z.string().min(3), points: z.number().optional() });

export default createAction({
    description: 'Create a ticket',
    endpoint: { method: 'POST', path: '/zdesk/tickets' },
    input: Input,
    output: z.object({ id: z.string(), title: z.string(), raw: z.unknown() }),
    exec: async (nango, input) => {
        const parsed = Input.parse(input);
        const response = await nango.post({ endpoint: '/tickets', data: { subject: parsed.title } });
        return { id: String(response.data.id), title: parsed.title, raw: input };
    }
});
";

fn project() -> BTreeMap<&'static str, &'static str> {
    [
        ("index.ts", INDEX),
        ("zdesk/schemas.ts", SCHEMAS),
        ("zdesk/syncs/tickets.ts", TICKETS),
        ("zdesk/actions/create-ticket.ts", CREATE_TICKET),
        // Not listed in index.ts: never compiled, even though it does not compile.
        ("zdesk/syncs/draft.ts", "this is not TypeScript"),
    ]
    .into_iter()
    .collect()
}

fn deploy(
    client: &mut postgres::Client,
    files: &BTreeMap<&str, &str>,
) -> Result<Value, postgres::Error> {
    let files = serde_json::to_value(files).unwrap();
    client
        .query_one(
            "SELECT nango.deploy(NULL, $1::jsonb, allow_destructive => true)",
            &[&files],
        )
        .map(|row| row.get(0))
}

/// The tests of this binary run one at a time: one of them deploys another project for a while.
fn setup() -> (postgres::Client, std::sync::MutexGuard<'static, ()>) {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let client = connect();
    READY.get_or_init(|| {
        let mut client = connect();
        client
            .execute("SELECT nango.create_integration('zdesk', 'demo')", &[])
            .expect("create the integration");
        let summary = deploy(&mut client, &project()).expect("deploy the zero-YAML project");
        assert_eq!(summary["format"], "zero-yaml");
        create_connection(&mut client, "zdesk", "zd-conn");
        set_metadata(&mut client, "zdesk", "zd-conn", &json!({"prefix": "#"}));
    });
    (client, serial)
}

#[test]
fn the_deploy_stores_what_the_compiler_derives() {
    let (mut client, _serial) = setup();
    let row = client
        .query_one(
            "SELECT description, version, runs, frequency::text, auto_start, sync_type, models, metadata_model,
                    endpoints, entry_file, json_schema -> 'definitions' -> 'ZdTicket' -> 'properties' -> 'closedAt'
             FROM nango.sync_configs WHERE provider_config_key = 'zdesk' AND name = 'tickets'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Tickets of the desk");
    assert_eq!(row.get::<_, String>(1), "2.0.0");
    assert_eq!(row.get::<_, String>(2), "every hour");
    assert_eq!(row.get::<_, String>(3), "01:00:00");
    assert!(!row.get::<_, bool>(4));
    assert_eq!(row.get::<_, String>(5), "full");
    assert_eq!(row.get::<_, Vec<String>>(6), vec!["ZdTicket"]);
    assert_eq!(
        row.get::<_, Option<String>>(7).as_deref(),
        Some("SyncMetadata_zdesk_tickets")
    );
    assert_eq!(
        row.get::<_, Value>(8),
        json!([{"method": "GET", "path": "/zdesk/tickets", "group": null}])
    );
    assert_eq!(row.get::<_, String>(9), "zdesk/syncs/tickets.ts");
    assert_eq!(
        row.get::<_, Value>(10),
        json!({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]})
    );
    let action = client
        .query_one(
            "SELECT input, output, endpoint ->> 'path',
                    json_schema -> 'definitions' -> 'ActionInput_zdesk_createticket' -> 'required'
             FROM nango.action_configs WHERE provider_config_key = 'zdesk' AND name = 'create-ticket'",
            &[],
        )
        .unwrap();
    assert_eq!(
        action.get::<_, Option<String>>(0).as_deref(),
        Some("ActionInput_zdesk_createticket")
    );
    assert_eq!(
        action.get::<_, Vec<String>>(1),
        vec!["ActionOutput_zdesk_createticket"]
    );
    assert_eq!(action.get::<_, String>(2), "/zdesk/tickets");
    assert_eq!(action.get::<_, Value>(3), json!(["title"]));

    // The typed view's columns follow the zod object, in its order.
    let columns: Vec<(String, String)> = client
        .query(
            "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod)
             FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = 'nango_records.zd_ticket'::regclass AND a.attnum > 0 ORDER BY a.attnum",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["id", "title", "points", "done", "closedAt"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(names.iter().position(|n| *n == "title") < names.iter().position(|n| *n == "closedAt"));
    let typed = |name: &str| {
        columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
    };
    assert_eq!(typed("done").as_deref(), Some("boolean"));
    assert_eq!(
        typed("closedAt").as_deref(),
        Some("timestamp with time zone")
    );
}

#[test]
fn a_sync_pages_checkpoints_and_tracks_deletes_across_runs() {
    let (mut client, _serial) = setup();
    let ticket =
        |id: &str, title: &str| json!({"id": id, "title": title, "points": 3, "done": false});
    mock().set_dataset(
        "zd-tickets",
        vec![
            ticket("t1", "one"),
            ticket("t2", "two"),
            ticket("t3", "three"),
        ],
    );
    let (job, status) = run_sync(&mut client, "zdesk", "tickets", "zd-conn");
    assert_eq!(status, "SUCCESS", "{:?}", job_outcome(&mut client, job));
    assert_eq!(
        record_ids(&mut client, "ZdTicket", "zd-conn"),
        ["t1", "t2", "t3"]
    );
    let title: String = client
        .query_one(
            "SELECT title FROM nango_records.zd_ticket WHERE id = 't2' AND _nango_connection_id = 'zd-conn'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        title, "#two",
        "the metadata, read through its zod schema, prefixed the title"
    );
    let logs = job_logs(&mut client, job);
    let done = logs
        .iter()
        .find(|(_, m, _)| m == "done")
        .expect("a done log");
    assert_eq!(done.2, Some(json!({"pages": 2, "resumedFrom": null})));

    // t2 is gone from the API: the next full pass marks it deleted.
    mock().set_dataset(
        "zd-tickets",
        vec![ticket("t1", "one"), ticket("t3", "three")],
    );
    let (job, status) = run_sync(&mut client, "zdesk", "tickets", "zd-conn");
    assert_eq!(status, "SUCCESS", "{:?}", job_outcome(&mut client, job));
    let actions = record_actions(&mut client, "ZdTicket", "zd-conn");
    assert_eq!(
        actions,
        [
            ("t1".to_string(), "ADDED".to_string()),
            ("t2".to_string(), "DELETED".to_string()),
            ("t3".to_string(), "ADDED".to_string())
        ]
    );
}

/// A run worker keeps the modules it compiled from run to run; a deploy that changes one (here the schemas
/// file, not the sync's own) reaches the next run of a worker that ran the earlier version.
#[test]
fn a_warm_worker_runs_the_modules_of_the_latest_deploy() {
    let (mut client, _serial) = setup();
    create_connection(&mut client, "zdesk", "zd-warm");
    set_metadata(&mut client, "zdesk", "zd-warm", &json!({"prefix": "#"}));
    mock().set_dataset(
        "zd-tickets",
        vec![json!({"id": "w1", "title": "one", "done": false})],
    );
    let run = |client: &mut postgres::Client| -> (i32, String) {
        let (job, status) = run_sync(client, "zdesk", "tickets", "zd-warm");
        assert_eq!(status, "SUCCESS", "{:?}", job_outcome(client, job));
        let row = client
            .query_one(
                "SELECT j.pid, r.data ->> 'title' FROM nango.jobs j, nango.records('ZdTicket', connection_id => 'zd-warm') r
                 WHERE j.id = $1",
                &[&job],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let mut warm = std::collections::HashSet::new();
    for _ in 0..4 {
        let (pid, title) = run(&mut client);
        assert_eq!(title, "#one");
        warm.insert(pid);
    }

    let changed = SCHEMAS.replace("title: z.string(),", "title: z.string().toUpperCase(),");
    let mut files: BTreeMap<&str, &str> = project();
    files.insert("zdesk/schemas.ts", &changed);
    deploy(&mut client, &files).expect("deploy the changed schemas");
    let mut ran_warm = false;
    for _ in 0..10 {
        let (pid, title) = run(&mut client);
        assert_eq!(title, "#ONE", "the run used the deployed schemas");
        if warm.contains(&pid) {
            ran_warm = true;
            break;
        }
    }
    assert!(
        ran_warm,
        "a worker that ran the earlier deploy ran the new one"
    );
    deploy(&mut client, &project()).expect("redeploy the project");
}

#[test]
fn an_action_gets_its_raw_input_and_zod_checks_it() {
    let (mut client, _serial) = setup();
    let output: Value = client
        .query_one(
            "SELECT nango.trigger_action('zdesk', 'zd-conn', 'create-ticket', $1::jsonb)",
            &[&json!({"title": "Broken printer"})],
        )
        .unwrap()
        .get(0);
    assert_eq!(output["title"], "Broken printer");
    assert_eq!(output["raw"], json!({"title": "Broken printer"}));
    assert!(output["id"].as_str().is_some_and(|id| !id.is_empty()));

    let error = client
        .query_one(
            "SELECT nango.trigger_action('zdesk', 'zd-conn', 'create-ticket', $1::jsonb)",
            &[&json!({"title": "x"})],
        )
        .unwrap_err();
    let (message, _) = db_error(error);
    assert!(
        message.contains("too_small") || message.contains(">=3"),
        "{message}"
    );
}

#[test]
fn definition_errors_refuse_the_deploy_and_change_nothing() {
    let (mut client, _serial) = setup();
    let before: i64 = client
        .query_one("SELECT count(*) FROM nango.deployments", &[])
        .unwrap()
        .get(0);
    let mut files = project();
    let bad = TICKETS.replace("'every hour'", "'every blue moon'");
    files.insert("zdesk/syncs/tickets.ts", &bad);
    let error = deploy(&mut client, &files).unwrap_err();
    let hint = error
        .as_db_error()
        .and_then(|e| e.hint())
        .unwrap_or_default()
        .to_string();
    let (message, _) = db_error(error);
    assert_eq!(
        message,
        "deploy failed: zdesk/syncs/tickets.ts: createSync > frequency: Interval is invalid, check syntax here https://github.com/vercel/ms"
    );
    assert!(hint.contains("Nothing was deployed"), "{hint}");

    let mut files = project();
    files.insert(
        "index.ts",
        "import './zdesk/syncs/tickets.js';\nimport './zdesk/syncs/missing.js';\n",
    );
    let (message, _) = db_error(deploy(&mut client, &files).unwrap_err());
    assert_eq!(
        message,
        "deploy failed: index.ts:2: imports './zdesk/syncs/missing.js', but the folder has no zdesk/syncs/missing.ts"
    );
    let after: i64 = client
        .query_one("SELECT count(*) FROM nango.deployments", &[])
        .unwrap()
        .get(0);
    assert_eq!(before, after);
    let runs: String = client
        .query_one("SELECT runs FROM nango.sync_configs WHERE provider_config_key = 'zdesk' AND name = 'tickets'", &[])
        .unwrap()
        .get(0);
    assert_eq!(runs, "every hour");
}

/// A folder with its own zod in node_modules gets that zod, at deploy and at run time.
#[test]
fn a_folder_keeps_its_own_zod() {
    let (mut client, _serial) = setup();
    let own_zod = "const schema = (json) => ({ _zod: { def: { type: 'object' } }, toJSONSchema: () => json, parse: (x) => x });
export const z = {
    object: () => schema({ type: 'object', properties: { id: { type: 'string' }, origin: { const: 'own-zod' } }, required: ['id'] }),
    string: () => ({})
};
";
    let mut files = project();
    files.insert(
        "node_modules/zod/package.json",
        r#"{"name": "zod", "type": "module", "main": "index.js"}"#,
    );
    files.insert("node_modules/zod/index.js", own_zod);
    files.insert("index.ts", "import './zdesk/syncs/tickets.js';\nimport './zdesk/actions/create-ticket.js';\nimport './zdesk/syncs/own.js';\n");
    files.insert(
        "zdesk/syncs/own.ts",
        "import { createSync } from 'nango';\nimport { z } from 'zod';\nexport default createSync({ description: 'own zod', frequency: 'every day', models: { ZdOwn: z.object({}) }, exec: async () => {} });\n",
    );
    let summary = deploy(&mut client, &files);
    // The project's other scripts use zod APIs the stand-in lacks: their definitions cannot be read.
    let (message, _) = db_error(summary.unwrap_err());
    assert!(message.starts_with("deploy failed: zdesk/"), "{message}");
    files.insert("index.ts", "import './zdesk/syncs/own.js';\n");
    let summary = deploy(&mut client, &files).expect("deploy with the folder's zod");
    assert_eq!(summary["syncs"][0]["name"], "own");
    let definition: Value = client
        .query_one(
            "SELECT definition FROM nango.models WHERE name = 'ZdOwn'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(definition.to_string().contains("own-zod"), "{definition}");
    // Back to the project (the other tests' syncs and action).
    deploy(&mut client, &project()).expect("redeploy the project");
}

/// The repository's zero-YAML example, deployed from its folder as a user deploys one, runs its sync.
#[test]
fn the_example_folder_deploys_from_its_path_and_syncs() {
    let (mut client, _serial) = setup();
    let folder = std::env::temp_dir().join("pg_nango_e2e_zero_yaml_example");
    let _ = std::fs::remove_dir_all(&folder);
    copy_readable(&repo_root().join("examples/zero-yaml"), &folder);
    client
        .execute(
            "SELECT nango.create_integration('github', 'github-pat')",
            &[],
        )
        .unwrap();
    let summary: Value = client
        .query_one(
            "SELECT nango.deploy($1, allow_destructive => true)",
            &[&folder.to_string_lossy().as_ref()],
        )
        .expect("deploy the example folder")
        .get(0);
    assert_eq!(summary["format"], "zero-yaml");
    let names = |kind: &str| -> Vec<String> {
        summary[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{}/{}",
                    s["integration"].as_str().unwrap(),
                    s["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(names("syncs"), ["demo/tickets", "github/issues"]);
    assert_eq!(names("actions"), ["demo/create-ticket"]);

    create_connection(&mut client, "demo", "zd-example");
    let (job, status) = run_sync(&mut client, "demo", "tickets", "zd-example");
    assert_eq!(status, "SUCCESS", "{:?}", job_outcome(&mut client, job));
    let (count, closed): (i64, i64) = {
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE status = 'closed')
                 FROM nango_records.ticket WHERE _nango_connection_id = 'zd-example'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(count > 0 && closed > 0, "{count} tickets, {closed} closed");
    let created: Value = client
        .query_one(
            "SELECT nango.trigger_action('demo', 'zd-example', 'create-ticket', $1::jsonb)",
            &[&json!({"subject": "Printer on fire", "requester_name": "Ada", "requester_email": "ada@example.com"})],
        )
        .unwrap()
        .get(0);
    assert_eq!(created["subject"], "Printer on fire");
    assert_eq!(created["requester_email"], "ada@example.com");
    let error = client
        .query_one(
            "SELECT nango.trigger_action('demo', 'zd-example', 'create-ticket', $1::jsonb)",
            &[&json!({"subject": "x", "requester_name": "Ada", "requester_email": "not an address"})],
        )
        .unwrap_err();
    assert!(db_error(error).0.contains("invalid input"));

    client
        .execute("SELECT nango.delete_connection('demo', 'zd-example')", &[])
        .unwrap();
    deploy(&mut client, &project()).expect("redeploy the project");
}

/// Copies a folder, readable by every user (the server runs as another OS user than the tests may).
fn copy_readable(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_readable(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// Nango's compile checks refuse a deploy with the compiler's message, at the file and line.
#[test]
fn compile_checks_refuse_with_the_compilers_messages() {
    let (mut client, _serial) = setup();
    let in_exec = |body: &str| {
        TICKETS.replace(
            "const settings = DeskSettings",
            &format!("{body}\n        const settings = DeskSettings"),
        )
    };
    let cases: Vec<(String, String)> = vec![
        (
            TICKETS.replace("import { z } from 'zod';", "import { z } from 'zod';\nimport _ from 'lodash';"),
            "zdesk/syncs/tickets.ts:3:1: Import of package 'lodash' is not allowed. Allowed packages are: nango/experimental, url, node:url, crypto, node:crypto, nango, zod, unzipper, soap, botbuilder".into(),
        ),
        (
            in_exec("nango.log('not awaited');"),
            "zdesk/syncs/tickets.ts:15:9: nango.log() calls must be awaited in. Not awaiting can lead to unexpected results.".into(),
        ),
        (
            in_exec("await nango.get({ endpoint: '/x', retryOn: [429] });"),
            "zdesk/syncs/tickets.ts:15:15: Proxy call: 'retryOn' should not be used if 'retries' is not set.".into(),
        ),
        (
            format!("{TICKETS}export const helper = 1;\n"),
            "zdesk/syncs/tickets.ts:31:1: Named export 'helper' is not allowed. Only export default and createAction, createSync, createOnEvent, createFunction are permitted.".into(),
        ),
        (
            TICKETS.replace("await nango.trackDeletesEnd('ZdTicket');", ""),
            "zdesk/syncs/tickets.ts:17:15: trackDeletesStart for model 'ZdTicket' is called but trackDeletesEnd is never called".into(),
        ),
        (
            in_exec("await nango.batchSave([], 'ZdTicket');\n        await nango.setMergingStrategy({ strategy: 'override' }, 'ZdTicket');"),
            "zdesk/syncs/tickets.ts:16:15: setMergingStrategy should be called before any batching records function".into(),
        ),
    ];
    for (source, expected) in cases {
        let mut files = project();
        files.insert("zdesk/syncs/tickets.ts", &source);
        let (message, _) = db_error(deploy(&mut client, &files).unwrap_err());
        assert_eq!(message, format!("deploy failed: {expected}"));
    }
}
