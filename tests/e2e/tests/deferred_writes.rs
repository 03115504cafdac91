//! Record writes made after `batchSave` has resolved (while the script waits on its next request): a
//! write the store refuses still fails the run with its own error, from the script's call, and nothing the
//! script did after it is stored; a read right after a write sees it. Its own binary: it deploys its own
//! project over the fixture's.

use pg_nango_e2e::*;
use serde_json::{Value, json};

/// What the sync does comes from the connection's metadata (`step`).
const STEPS: &str = "export default async function fetchData(nango) {
    const { step } = await nango.getMetadata();
    if (step === 'refused') {
        await nango.batchSave([{ id: 'good-1' }], 'Thing');
        await nango.batchSave([{ id: 'bad', text: 'a nul \\u0000 here' }], 'Thing');
        // Neither the request nor the checkpoint may hide the failed write.
        try { await nango.get({ endpoint: '/slow', params: { ms: 1 } }); } catch (e) { await nango.log('caught', { message: String(e.message) }); }
        try { await nango.saveCheckpoint({ after: 'bad' }); } catch (e) { await nango.log('caught', { message: String(e.message) }); }
        await nango.batchSave([{ id: 'good-2' }], 'Thing');
    } else if (step === 'read') {
        await nango.batchSave([{ id: 'r1', n: 1 }, { id: 'r2', n: 2 }], 'Thing');
        const found = await nango.getRecordsByIds(['r1', 'r2', 'r3'], 'Thing');
        await nango.log('found', { ids: [...found.keys()], n: found.get('r2').n });
        await nango.batchUpdate([{ id: 'r1', n: 10 }], 'Thing');
        const listed = [];
        for await (const r of nango.listRecords('Thing')) listed.push(r.id + ':' + r.n);
        await nango.log('listed', { records: listed });
    }
}
";

const CONFIG: &str = "integrations:
  deferred:
    provider: demo
    syncs:
      steps:
        runs: every hour
        auto_start: false
        output: Thing
        endpoint: GET /deferred/things
models:
  Thing:
    id: string
";

/// Deploys the project once for the binary, and creates the test's connection (its id is the step's name,
/// so tests running at the same time do not share one).
fn setup(client: &mut Client, step: &str) {
    static DEPLOYED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut deployed = DEPLOYED.lock().unwrap_or_else(|e| e.into_inner());
    if !*deployed {
        client
            .query_one(
                "SELECT nango.deploy($1::text, $2::jsonb, allow_destructive => true)",
                &[&CONFIG, &json!({"deferred/syncs/steps.js": STEPS})],
            )
            .unwrap_or_else(|e| panic!("deploy: {:?}", e.as_db_error()));
        *deployed = true;
    }
    create_connection(client, "deferred", step);
}

/// Runs the sync for the step (on the step's connection); returns the job.
fn run(client: &mut Client, step: &str) -> i64 {
    setup(client, step);
    set_metadata(client, "deferred", step, &json!({ "step": step }));
    run_sync(client, "deferred", "steps", step).0
}

fn log_payload(client: &mut Client, job: i64, message: &str) -> Vec<Value> {
    job_logs(client, job)
        .into_iter()
        .filter(|(_, m, _)| m == message)
        .filter_map(|(_, _, payload)| payload)
        .collect()
}

#[test]
fn a_refused_write_fails_the_run_and_nothing_after_it_is_stored() {
    let mut client = connect();
    let job = run(&mut client, "refused");
    let (status, _, error) = job_outcome(&mut client, job);
    assert_eq!(status, "ERROR", "{error:?}");
    let error = error.expect("the job's error");
    let message = error["description"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("could not save Thing records: ") && message.contains("Unicode"),
        "{error}"
    );
    // The place of the refused batchSave (line 5 of the script), as a synchronous write would give.
    assert!(
        message.ends_with(")") && message.contains("(at deferred/syncs/steps.js:5:"),
        "{error}"
    );
    assert_eq!(error["type"], "script_error", "{error}");
    assert_eq!(
        record_ids(&mut client, "Thing", "refused"),
        ["good-1"],
        "the batch before the refused one is stored, nothing after it"
    );
    let checkpoints: i64 = client
        .query_one(
            "SELECT count(*) FROM nango.checkpoints c JOIN nango.syncs s ON s.id = c.sync
             JOIN nango.connections n ON n.id = s.connection WHERE n.connection_id = $1",
            &[&"refused"],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        checkpoints, 0,
        "the checkpoint saved after the refused batch"
    );
    // The script's own catch blocks saw the write's error, not a success.
    let caught = log_payload(&mut client, job, "caught");
    assert!(!caught.is_empty());
    for payload in caught {
        assert!(
            payload["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("could not save Thing records: "),
            "{payload}"
        );
    }
}

#[test]
fn reads_right_after_a_write_see_it() {
    let mut client = connect();
    let job = run(&mut client, "read");
    let (status, _, error) = job_outcome(&mut client, job);
    assert_eq!(status, "SUCCESS", "{error:?}");
    assert_eq!(
        log_payload(&mut client, job, "found"),
        [json!({"ids": ["r1", "r2"], "n": 2})]
    );
    let listed = log_payload(&mut client, job, "listed");
    let records = listed[0]["records"].as_array().unwrap();
    assert!(records.contains(&json!("r1:10")), "{listed:?}");
    assert!(records.contains(&json!("r2:2")), "{listed:?}");
}
