//! Upgrades: a database installed at the first release (`CREATE EXTENSION pg_nango VERSION '0.1.0'`, that
//! release's own install script in `sql/releases/`), with a deployment, a connection and synced records, is
//! brought to the current version by `ALTER EXTENSION pg_nango UPDATE`. Everything still runs and reads the
//! same, and its catalog is, object by object, what a fresh `CREATE EXTENSION` of the current version makes.

use pg_nango_e2e::*;
use serde_json::{Value, json};

const FIRST_RELEASE: &str = "0.1.0";

/// Every object of the extension, one line each in a stable order: members, functions (with a hash of their
/// definition and their grants), columns, relations, indexes, constraints, views, triggers, sequences, the
/// tables a dump keeps, and the schemas' grants. Typed views of deployed models are not the extension's.
const CATALOG: &str = "
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'pg_nango')
SELECT line FROM (
    SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid) AS line
    FROM pg_depend d, ext
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
  UNION ALL
    SELECT 'function ' || p.oid::regprocedure::text || ' ' || md5(pg_get_functiondef(p.oid))
           || ' acl ' || coalesce(p.proacl::text, '-') || ' comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
    FROM pg_proc p WHERE p.pronamespace = 'nango'::regnamespace
  UNION ALL
    SELECT 'column ' || a.attrelid::regclass::text || ' #' || a.attnum || ' ' || a.attname || ' '
           || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
           || coalesce(' collate ' || nullif(a.attcollation, 0)::regcollation::text, '')
           || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    WHERE c.relnamespace = 'nango'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT 'relation ' || c.oid::regclass::text || ' ' || c.relkind::text || ' acl ' || coalesce(c.relacl::text, '-')
           || ' options ' || coalesce(c.reloptions::text, '-') || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
    FROM pg_class c WHERE c.relnamespace = 'nango'::regnamespace
  UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'nango'::regnamespace
  UNION ALL
    SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'nango'::regnamespace
  UNION ALL
    SELECT 'view ' || c.oid::regclass::text || ' ' || pg_get_viewdef(c.oid)
    FROM pg_class c WHERE c.relnamespace = 'nango'::regnamespace AND c.relkind IN ('v', 'm')
  UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = 'nango'::regnamespace AND NOT t.tgisinternal
  UNION ALL
    SELECT 'sequence ' || s.seqrelid::regclass::text || ' ' || s.seqtypid::regtype::text || ' by '
           || s.seqincrement || ' cache ' || s.seqcache
    FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid WHERE c.relnamespace = 'nango'::regnamespace
  UNION ALL
    SELECT 'type ' || t.oid::regtype::text || ' ' || t.typtype::text
    FROM pg_type t WHERE t.typnamespace = 'nango'::regnamespace AND t.typtype IN ('e', 'd', 'r')
  UNION ALL
    SELECT 'dumped ' || coalesce(ext.extconfig::regclass[]::text, '-') || ' where ' || coalesce(ext.extcondition::text, '-')
    FROM ext
  UNION ALL
    SELECT 'schema ' || n.nspname || ' acl ' || coalesce(n.nspacl::text, '-')
    FROM pg_namespace n WHERE n.nspname IN ('nango', 'nango_records')
) lines ORDER BY line";

fn catalog(client: &mut Client) -> Vec<String> {
    client
        .query(CATALOG, &[])
        .expect("read the catalog")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn version(client: &mut Client) -> String {
    client
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_nango'",
            &[],
        )
        .unwrap()
        .get(0)
}

/// The connection's Item records as `nango.records` and the typed view read them.
fn reads(client: &mut Client) -> (Value, Value) {
    let row = client
        .query_one(
            "SELECT (SELECT jsonb_agg(to_jsonb(r) ORDER BY r.cursor::bigint)
                     FROM nango.records('Item', connection_id => 'upgrade') r),
                    (SELECT jsonb_agg(to_jsonb(v) ORDER BY v.id) FROM nango_records.item v
                     WHERE v.id LIKE 'u%')",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn an_update_from_the_first_release_keeps_everything_and_matches_a_fresh_install() {
    let cluster = cluster_at(FIRST_RELEASE);
    let mut client = connect();
    assert_eq!(version(&mut client), FIRST_RELEASE);

    // At the first release: a connection synced once.
    let items: Vec<Value> = (1..=3)
        .map(|i| json!({"id": format!("u{i}"), "title": format!("before {i}")}))
        .collect();
    create_connection(&mut client, "e2e", "upgrade");
    set_metadata(
        &mut client,
        "e2e",
        "upgrade",
        &json!({"steps": [{"save": items}]}),
    );
    let (_, status) = run_sync(&mut client, "e2e", "records", "upgrade");
    assert_eq!(status, "SUCCESS");
    let before = reads(&mut client);
    assert_eq!(before.0.as_array().map(Vec::len), Some(3));

    client
        .batch_execute("ALTER EXTENSION pg_nango UPDATE")
        .expect("ALTER EXTENSION pg_nango UPDATE");
    assert_eq!(version(&mut client), env!("CARGO_PKG_VERSION"));
    assert_ne!(FIRST_RELEASE, env!("CARGO_PKG_VERSION"));

    // The same reads, and the sync goes on from where it was: one record added, one updated, notified.
    assert_eq!(reads(&mut client), before);
    let mut listener = connect();
    listener.batch_execute("LISTEN nango").unwrap();
    set_metadata(
        &mut client,
        "e2e",
        "upgrade",
        &json!({"steps": [{"save": [{"id": "u4", "title": "after"}]}, {"update": [{"id": "u1", "title": "changed"}]}]}),
    );
    let (job, status) = run_sync(&mut client, "e2e", "records", "upgrade");
    assert_eq!(status, "SUCCESS");
    let notified = notifications_for(&mut listener, job, 1);
    assert_eq!(
        notified[0]["responseResults"],
        json!({"added": 1, "updated": 1, "deleted": 0})
    );
    assert_eq!(notified[0]["syncType"], "INCREMENTAL");
    let changed: Vec<(String, String)> = pairs(
        &mut client,
        "SELECT id, _nango_metadata ->> 'last_action'
         FROM nango.records('Item', delta => (SELECT started_at FROM nango.jobs WHERE id = $1),
                            connection_id => 'upgrade')",
        &[&job],
    );
    assert_eq!(
        changed,
        [
            ("u4".to_string(), "ADDED".to_string()),
            ("u1".to_string(), "UPDATED".to_string())
        ]
    );

    // The updated catalog is a fresh install's.
    client.batch_execute("CREATE DATABASE fresh").unwrap();
    let mut fresh = Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=fresh",
            cluster.port
        ),
        NoTls,
    )
    .expect("connect to the fresh database");
    fresh.batch_execute("CREATE EXTENSION pg_nango").unwrap();
    let (updated, installed) = (catalog(&mut client), catalog(&mut fresh));
    assert!(updated.len() > 100, "{updated:#?}");
    let only_updated: Vec<&String> = updated.iter().filter(|l| !installed.contains(l)).collect();
    let only_fresh: Vec<&String> = installed.iter().filter(|l| !updated.contains(l)).collect();
    assert!(
        only_updated.is_empty() && only_fresh.is_empty(),
        "the update differs from a fresh install\nonly after the update: {only_updated:#?}\nonly in a fresh install: {only_fresh:#?}"
    );
}
