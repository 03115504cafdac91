//! No role escalation through name resolution: a role that owns `public` plants exact-typed shadows of the
//! built-ins pg_nango's SQL calls (functions, aggregates, operators), each of which records that it ran and
//! tries to make its owner superuser, and points the database's search_path at them. Then the whole SQL
//! surface is driven, as the superuser and as that role: deploys, connections, metadata, runs started by
//! `trigger_sync` and by the scheduler, dry runs, actions, reads, cancels. No trap may ever run.

use pg_nango_e2e::*;
use serde_json::json;

/// The traps: `(signature, return type, body's result)`. Each shadows a built-in that pg_catalog offers only
/// through a polymorphic, variadic or casting signature, so the shadow is the better match wherever
/// `public` is searched; or (the operators) one that pg_catalog has exactly, which the shadow beats when
/// `public` comes before `pg_catalog` in the search path.
const FUNCTION_TRAPS: &[(&str, &str, &str)] = &[
    ("to_jsonb(boolean)", "jsonb", "pg_catalog.to_jsonb($1)"),
    ("to_jsonb(bigint)", "jsonb", "pg_catalog.to_jsonb($1)"),
    ("to_jsonb(integer)", "jsonb", "pg_catalog.to_jsonb($1)"),
    ("to_jsonb(text)", "jsonb", "pg_catalog.to_jsonb($1)"),
    ("to_jsonb(text[])", "jsonb", "pg_catalog.to_jsonb($1)"),
    ("to_jsonb(timestamptz)", "jsonb", "pg_catalog.to_jsonb($1)"),
    ("to_json(timestamptz)", "json", "pg_catalog.to_json($1)"),
    ("to_json(text)", "json", "pg_catalog.to_json($1)"),
    (
        "jsonb_build_object(text, bigint)",
        "jsonb",
        "pg_catalog.jsonb_build_object($1, $2)",
    ),
    (
        "jsonb_build_object(text, text)",
        "jsonb",
        "pg_catalog.jsonb_build_object($1, $2)",
    ),
    (
        "jsonb_build_object(text, jsonb)",
        "jsonb",
        "pg_catalog.jsonb_build_object($1, $2)",
    ),
    (
        "jsonb_build_object(text, text, text, text)",
        "jsonb",
        "pg_catalog.jsonb_build_object($1, $2, $3, $4)",
    ),
    (
        "jsonb_build_object(text, timestamptz, text, timestamptz, text, text, text, timestamptz, text, text)",
        "jsonb",
        "pg_catalog.jsonb_build_object($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    ),
    ("format(text, text)", "text", "pg_catalog.format($1, $2)"),
    (
        "format(text, text, text)",
        "text",
        "pg_catalog.format($1, $2, $3)",
    ),
    ("concat(text, text)", "text", "pg_catalog.concat($1, $2)"),
    ("unnest(text[])", "SETOF text", "pg_catalog.unnest($1)"),
    ("unnest(bigint[])", "SETOF bigint", "pg_catalog.unnest($1)"),
    (
        "array_length(text[], integer)",
        "integer",
        "pg_catalog.array_length($1, $2)",
    ),
    ("pg_sleep(numeric)", "void", "pg_catalog.pg_sleep($1)"),
    (
        "pg_terminate_backend(integer)",
        "boolean",
        "pg_catalog.pg_terminate_backend($1)",
    ),
];

/// Aggregates: `(name, argument type, state type, final result)`.
const AGGREGATE_TRAPS: &[(&str, &str, &str)] = &[
    ("jsonb_agg", "bigint", "jsonb"),
    ("jsonb_agg", "text", "jsonb"),
    ("jsonb_agg", "jsonb", "jsonb"),
    ("array_agg", "bigint", "bigint[]"),
    ("array_agg", "text", "text[]"),
    ("count", "bigint", "bigint"),
];

/// Plants the traps as `mallory`, the owner of `public`.
fn plant_traps(mallory: &mut Client) {
    mallory
        .batch_execute(
            "CREATE TABLE public.trap_hits (trap text, by_role text, at timestamptz DEFAULT now());
             GRANT INSERT, SELECT ON public.trap_hits TO PUBLIC;
             CREATE FUNCTION public._sprung(trap text) RETURNS void LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO public.trap_hits (trap, by_role) VALUES (trap, current_user);
                 BEGIN
                     EXECUTE 'ALTER ROLE mallory SUPERUSER';
                 EXCEPTION WHEN others THEN NULL;
                 END;
             END $$;
             GRANT EXECUTE ON FUNCTION public._sprung(text) TO PUBLIC;",
        )
        .expect("trap table");
    for (signature, returns, result) in FUNCTION_TRAPS {
        let body = if returns.starts_with("SETOF") {
            format!(
                "BEGIN PERFORM public._sprung('{signature}'); RETURN QUERY SELECT {result}; END"
            )
        } else if *returns == "void" {
            format!("BEGIN PERFORM public._sprung('{signature}'); PERFORM {result}; END")
        } else {
            format!("BEGIN PERFORM public._sprung('{signature}'); RETURN {result}; END")
        };
        mallory
            .batch_execute(&format!(
                "CREATE FUNCTION public.{signature} RETURNS {returns} LANGUAGE plpgsql AS $trap$ {body} $trap$"
            ))
            .unwrap_or_else(|e| panic!("trap {signature}: {e}"));
    }
    for (name, argument, state) in AGGREGATE_TRAPS {
        let step = format!("_step_{name}_{}", argument.replace("[]", "_array"));
        let append = match *name {
            "count" => "SELECT $1 + 1".to_string(),
            "array_agg" => "SELECT $1 || $2".to_string(),
            _ => "SELECT $1 || pg_catalog.to_jsonb($2)".to_string(),
        };
        let initial = match *name {
            "count" => "0",
            "array_agg" => "{}",
            _ => "[]",
        };
        mallory
            .batch_execute(&format!(
                "CREATE FUNCTION public.{step}({state}, {argument}) RETURNS {state} LANGUAGE plpgsql AS $trap$
                 BEGIN PERFORM public._sprung('{name}({argument})'); RETURN ({append}); END $trap$;
                 CREATE AGGREGATE public.{name}({argument}) (sfunc = public.{step}, stype = {state}, initcond = '{initial}');"
            ))
            .unwrap_or_else(|e| panic!("trap {name}({argument}): {e}"));
    }
    // Operators pg_catalog has with exactly these types: they win only where public comes first.
    for (types, function) in [("text, text", "texteq"), ("bigint, bigint", "int8eq")] {
        let name = function.replace("eq", "");
        mallory
            .batch_execute(&format!(
                "CREATE FUNCTION public._eq_{name}({types}) RETURNS boolean LANGUAGE plpgsql AS $trap$
                 BEGIN PERFORM public._sprung('=({types})'); RETURN pg_catalog.{function}($1, $2); END $trap$;
                 CREATE OPERATOR public.= (function = public._eq_{name}, leftarg = {left}, rightarg = {right});",
                left = types.split(", ").next().unwrap(),
                right = types.split(", ").nth(1).unwrap(),
            ))
            .unwrap_or_else(|e| panic!("operator trap {types}: {e}"));
    }
}

fn trap_hits(client: &mut Client) -> Vec<(String, String)> {
    pairs(
        client,
        "SELECT trap, by_role FROM public.trap_hits ORDER BY at",
        &[],
    )
}

fn is_superuser(client: &mut Client, role: &str) -> bool {
    client
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role])
        .unwrap()
        .get(0)
}

#[test]
fn no_trap_planted_in_public_ever_runs() {
    let mut admin = connect();
    admin
        .batch_execute(
            "CREATE ROLE mallory LOGIN;
             ALTER SCHEMA public OWNER TO mallory;
             GRANT USAGE ON SCHEMA nango TO mallory;
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA nango TO mallory;
             GRANT SELECT ON nango.stored_records, nango.connections, nango.sync_status, nango.jobs,
                             nango.logs TO mallory;
             GRANT USAGE ON SCHEMA nango_records TO mallory;
             GRANT SELECT ON ALL TABLES IN SCHEMA nango_records TO mallory;",
        )
        .unwrap();
    let mut mallory = connect_as("mallory");
    plant_traps(&mut mallory);
    // Every new session of the database, the workers' included, now searches public before pg_catalog.
    admin
        .batch_execute("ALTER DATABASE postgres SET search_path = public, pg_catalog, pg_temp")
        .unwrap();
    // The scheduler connected before that: restart it (it is restarted 5 s after it ends).
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'pg_nango scheduler'",
        )
        .unwrap();

    // The superuser's own session keeps the default path, where pg_catalog is searched first: only the
    // shadows that beat a built-in's inexact signature could run, and only inside pg_nango's SQL.
    let mut client = connect();
    client
        .batch_execute("SET search_path = \"$user\", public")
        .unwrap();
    let providers = "trap-provider:\n    auth_mode: API_KEY\n    proxy:\n        base_url: ${connectionConfig.base_url}\n";
    client
        .query_one("SELECT nango.upsert_providers($1)", &[&providers])
        .unwrap();
    client
        .execute(
            "SELECT nango.create_integration('trap-int', 'trap-provider', 'client', 'secret')",
            &[],
        )
        .unwrap();
    let (config, files) = fixture();
    client
        .query_one(
            "SELECT nango.deploy($1::text, $2::jsonb)",
            &[&config, &files],
        )
        .unwrap();
    create_connection(&mut client, "e2e", "trap-conn");
    update_and_read_metadata(&mut client);

    // Runs started by trigger_sync: saves, updates, deletes, logs, metadata, checkpoints of the fixture.
    let steps = json!([
        {"save": [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}]},
        {"update": [{"id": "a", "title": "A2"}]},
        {"delete": [{"id": "b"}]},
    ]);
    let (job, status) = run_steps(&mut client, "e2e", "trap-conn", steps);
    assert_eq!(status, "SUCCESS", "{:?}", job_outcome(&mut client, job));
    let (_, status) = run_steps(
        &mut client,
        "e2e",
        "trap-conn",
        json!([{"fail": "on purpose"}]),
    );
    assert_eq!(status, "ERROR");
    mock().set_dataset(
        "trap-contacts",
        vec![
            json!({"id": "c1", "name": "One"}),
            json!({"id": "c2", "name": "Two"}),
        ],
    );
    set_metadata(
        &mut client,
        "e2e",
        "trap-conn",
        &json!({"dataset": "trap-contacts"}),
    );
    let (_, status) = run_sync(&mut client, "e2e", "legacy", "trap-conn");
    assert_eq!(status, "SUCCESS");

    // Runs the scheduler starts on its own (the ticker syncs every 2 seconds).
    create_connection(&mut client, "ticker", "trap-ticker");
    let job = wait_first_job(&mut client, "trap-ticker");
    assert_eq!(job_outcome(&mut client, job).0, "SUCCESS");

    // Dry runs and actions, in one-off workers.
    let dry: serde_json::Value = client
        .query_one("SELECT nango.dryrun('e2e', 'contacts', 'trap-conn')", &[])
        .unwrap()
        .get(0);
    assert!(dry.get("Contact").is_some(), "{dry}");
    let output: serde_json::Value = client
        .query_one(
            "SELECT nango.trigger_action('e2e', 'trap-conn', 'create-ticket', '{\"subject\": \"s\"}')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(output["subject"], "s");
    let failed = client.query_one(
        "SELECT nango.trigger_action('e2e', 'trap-conn', 'create-ticket', '{}')",
        &[],
    );
    assert!(failed.is_err());

    // Reads: nango.records in every form, the typed views, the admin views.
    read_everything(&mut client);
    read_everything(&mut mallory);

    // Sync commands and cancellation.
    client
        .batch_execute(
            "SELECT nango.pause_sync('ticker', 'tick', 'trap-ticker');
             SELECT nango.start_sync('ticker', 'tick', 'trap-ticker');
             SELECT nango.cancel_sync('ticker', 'tick', 'trap-ticker');",
        )
        .unwrap();

    // The same calls made by mallory herself, whose session searches public first.
    mallory
        .batch_execute("SET search_path = public, pg_catalog, pg_temp")
        .unwrap();
    mallory
        .query_one(
            "SELECT nango.deploy($1::text, $2::jsonb)",
            &[&config, &files],
        )
        .unwrap();
    mallory
        .execute(
            "SELECT nango.update_metadata('e2e', 'trap-conn', '{\"by\": \"mallory\"}')",
            &[],
        )
        .unwrap();
    let job: i64 = mallory
        .query_one(
            "SELECT nango.trigger_sync('e2e', 'contacts', 'trap-conn')",
            &[],
        )
        .unwrap()
        .get(0);
    let status: String = mallory
        .query_one("SELECT nango.wait_for_job($1, '60 seconds')", &[&job])
        .unwrap()
        .get(0);
    assert_eq!(status, "SUCCESS");
    mallory
        .query_one("SELECT nango.dryrun('e2e', 'contacts', 'trap-conn')", &[])
        .unwrap();
    mallory
        .execute(
            "SELECT nango.delete_connection('ticker', 'trap-ticker')",
            &[],
        )
        .unwrap();

    // A few scheduler passes with the restarted scheduler, which found the hostile path at connect.
    std::thread::sleep(std::time::Duration::from_secs(7));
    let scheduler: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_nango scheduler'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(scheduler, 1, "the scheduler is back");
    create_connection(&mut client, "ticker", "trap-ticker-2");
    let job = wait_first_job(&mut client, "trap-ticker-2");
    assert_eq!(job_outcome(&mut client, job).0, "SUCCESS");

    assert_eq!(trap_hits(&mut client), Vec::<(String, String)>::new());
    assert!(!is_superuser(&mut client, "mallory"));
    admin
        .batch_execute("ALTER DATABASE postgres RESET search_path")
        .unwrap();
}

fn update_and_read_metadata(client: &mut Client) {
    client
        .batch_execute(
            "SELECT nango.set_metadata('e2e', 'trap-conn', '{\"a\": 1}');
             SELECT nango.update_metadata('e2e', 'trap-conn', '{\"b\": 2}');",
        )
        .unwrap();
}

fn read_everything(client: &mut Client) {
    for sql in [
        "SELECT count(*) FROM nango.records('Item')",
        "SELECT count(*) FROM nango.records('Item', delta => now() - interval '1 hour', connection_id => 'trap-conn',
                                            provider_config_key => 'e2e', filter => 'added,updated,deleted',
                                            \"limit\" => 10, cursor => '0')",
        "SELECT count(*) FROM nango_records.item",
        "SELECT count(*) FROM nango_records.ticket",
        "SELECT count(*) FROM nango.sync_status",
        "SELECT count(*) FROM nango.jobs",
        "SELECT count(*) FROM nango.logs",
    ] {
        client
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
}
