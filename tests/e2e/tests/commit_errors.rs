//! An ERROR raised while a worker commits (here a deferred constraint trigger that refuses the commit) is an
//! error like any other: the run worker ends its job as failed and says why, instead of dying and leaving
//! the job to be found orphaned.

use pg_nango_e2e::*;
use serde_json::json;

#[test]
fn a_commit_that_fails_ends_the_job_as_failed_with_the_reason() {
    let mut client = connect();
    client
        .batch_execute(
            "CREATE FUNCTION public.refuse_success() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 RAISE EXCEPTION 'success of job % refused at commit', NEW.id;
             END $$;
             CREATE CONSTRAINT TRIGGER refuse_success AFTER UPDATE ON nango.jobs
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
                 WHEN (NEW.status = 'SUCCESS' AND NEW.connection_id = 'commit-fails')
                 EXECUTE FUNCTION public.refuse_success();",
        )
        .unwrap();
    create_connection(&mut client, "e2e", "commit-fails");
    let (job, status) = run_steps(
        &mut client,
        "e2e",
        "commit-fails",
        json!([{"save": [{"id": "x", "title": "X"}]}]),
    );
    assert_eq!(status, "ERROR");
    let (_, _, error) = job_outcome(&mut client, job);
    assert_eq!(
        error,
        Some(json!({
            "type": "script_internal_error",
            "description": format!(
                "could not record the end of the run: commit failed: success of job {job} refused at commit"
            ),
        }))
    );
    // What the run saved before its end stays saved, as for any failed run.
    assert_eq!(record_ids(&mut client, "Item", "commit-fails"), vec!["x"]);

    // The worker and the scheduler are fine: the next run of another connection succeeds.
    create_connection(&mut client, "e2e", "commit-works");
    let (_, status) = run_steps(&mut client, "e2e", "commit-works", json!([]));
    assert_eq!(status, "SUCCESS");
}
