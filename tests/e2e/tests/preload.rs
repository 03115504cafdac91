//! Without `shared_preload_libraries`, `CREATE EXTENSION` refuses and says how to fix it.

use pg_nango_e2e::Cluster;

#[test]
fn create_extension_refuses_without_preload() {
    let cluster = Cluster::start("no_preload", false, &[]);
    let mut client = cluster.connect();
    let error = client
        .batch_execute("CREATE EXTENSION pg_nango")
        .expect_err("CREATE EXTENSION must refuse");
    cluster.stop();
    let db = error.as_db_error().expect("a database error");
    assert_eq!(
        db.message(),
        "pg_nango must be loaded when the server starts (it runs background workers)"
    );
    let hint = db.hint().unwrap_or_default();
    assert!(
        hint.contains("shared_preload_libraries = 'pg_nango'") && hint.contains("restart"),
        "{hint}"
    );
}
