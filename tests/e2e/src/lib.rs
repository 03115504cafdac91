//! Test harness: one PostgreSQL 15 cluster per test binary with pg_nango preloaded (started by
//! `scripts/cluster.sh`, stopped at exit), the mock API on 127.0.0.1, and helpers to deploy the fixture
//! folder and wait for jobs. Tests share the cluster and keep apart by using their own connection ids.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use pg_nango_mock_api::MockServer;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, ToSql};
pub use postgres::{Client, NoTls};
use serde_json::Value;

pub const API_KEY: &str = "test-key";

/// A throwaway PostgreSQL 15 cluster (see `scripts/cluster.sh`).
pub struct Cluster {
    pub port: u16,
    pub datadir: PathBuf,
}

impl Cluster {
    /// Starts a cluster named after `tag` on a free port, with pg_nango in `shared_preload_libraries` when
    /// `preload`, plus `settings` lines for postgresql.conf.
    pub fn start(tag: &str, preload: bool, settings: &[&str]) -> Cluster {
        let port = free_port();
        let datadir = std::env::temp_dir().join(format!("pg_nango_e2e_{tag}_{port}"));
        let status = Command::new(repo_root().join("scripts/cluster.sh"))
            .arg("start")
            .arg(&datadir)
            .arg(port.to_string())
            .args(settings)
            .env("PG_NANGO_PRELOAD", if preload { "yes" } else { "no" })
            .status()
            .expect("run scripts/cluster.sh");
        assert!(status.success(), "could not start the test cluster");
        Cluster { port, datadir }
    }

    /// A new client session as the superuser.
    pub fn connect(&self) -> Client {
        self.try_connect().expect("connect to the test cluster")
    }

    /// A new client session as `role` (the cluster trusts local logins).
    pub fn connect_as(&self, role: &str) -> Client {
        Client::connect(
            &format!(
                "host=127.0.0.1 port={} user={role} dbname=postgres",
                self.port
            ),
            NoTls,
        )
        .unwrap_or_else(|e| panic!("connect as {role}: {e}"))
    }

    /// A new client session, or why there is none (the cluster may be restarting).
    pub fn try_connect(&self) -> Result<Client, postgres::Error> {
        Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.port
            ),
            NoTls,
        )
    }

    /// Stops the cluster at once, as a power loss would (`pg_ctl stop -m immediate`), and starts it again:
    /// PostgreSQL recovers from its WAL.
    pub fn crash_restart(&self) {
        let status = Command::new(repo_root().join("scripts/cluster.sh"))
            .arg("crash-restart")
            .arg(&self.datadir)
            .status()
            .expect("run scripts/cluster.sh");
        assert!(status.success(), "could not restart the test cluster");
    }

    /// Stops the cluster (fast shutdown) and removes its files.
    pub fn stop(&self) {
        let _ = Command::new(repo_root().join("scripts/cluster.sh"))
            .arg("stop")
            .arg(&self.datadir)
            .status();
        let _ = std::fs::remove_dir_all(&self.datadir);
        let _ = std::fs::remove_file(self.datadir.with_extension("initdb.log"));
    }
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static READY: OnceLock<()> = OnceLock::new();
static MOCK: OnceLock<MockServer> = OnceLock::new();

extern "C" fn stop_cluster() {
    if let Some(cluster) = CLUSTER.get() {
        cluster.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The binary's cluster, started on first use (and stopped at exit, also when setting it up fails), with
/// the extension created, the test providers added and the fixture deployed.
pub fn cluster() -> &'static Cluster {
    cluster_with(None)
}

/// [`cluster`], with the extension created at an earlier `version` (`CREATE EXTENSION … VERSION`) when
/// this is the binary's first use of it.
pub fn cluster_at(version: &str) -> &'static Cluster {
    cluster_with(Some(version))
}

fn cluster_with(version: Option<&str>) -> &'static Cluster {
    let cluster = CLUSTER.get_or_init(|| {
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let cluster = Cluster::start(
            &name,
            true,
            &[
                "nango.min_frequency = 1",
                "nango.script_timeout = 5",
                "nango.action_timeout = 2",
                "nango.retry_base_delay = 10",
                "nango.max_concurrent_syncs = 4",
                // The test providers take their whole base URL from connection_config, so the mock API's
                // loopback host must be allowed like any other private host.
                "nango.allowed_hosts = '127.0.0.1'",
            ],
        );
        unsafe { libc::atexit(stop_cluster) };
        cluster
    });
    READY.get_or_init(|| prepare(cluster, version));
    cluster
}

/// Creates the extension in a new cluster (at `version`, or the library's own), adds the test providers
/// and deploys the fixture folder.
pub fn prepare(cluster: &Cluster, version: Option<&str>) {
    let mut client = cluster.connect();
    let create = match version {
        Some(version) => format!("CREATE EXTENSION pg_nango VERSION '{version}'"),
        None => "CREATE EXTENSION pg_nango".to_string(),
    };
    client
        .batch_execute(&create)
        .unwrap_or_else(|e| panic!("{create}: {e}"));
    let providers = std::fs::read_to_string(fixtures_dir().join("providers.yaml"))
        .expect("fixture providers.yaml");
    client
        .query_one("SELECT nango.upsert_providers($1)", &[&providers])
        .expect("upsert the test providers");
    let (config, files) = fixture();
    client
        .query_one(
            "SELECT nango.deploy($1::text, $2::jsonb)",
            &[&config, &files],
        )
        .expect("deploy the fixture");
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A new client session on the cluster.
pub fn connect() -> Client {
    cluster().connect()
}

/// A new client session on the cluster as `role`.
pub fn connect_as(role: &str) -> Client {
    cluster().connect_as(role)
}

/// Sets a server setting with `ALTER SYSTEM` (e.g. `"nango.max_logs_per_run = 5"`) and reloads the
/// configuration; the processes running read it at their next pass, new workers when they start.
pub fn set_server_setting(client: &mut Client, setting: &str) {
    client
        .batch_execute(&format!("ALTER SYSTEM SET {setting}"))
        .unwrap_or_else(|e| panic!("ALTER SYSTEM SET {setting}: {e}"));
    client
        .batch_execute("SELECT pg_reload_conf()")
        .expect("reload the configuration");
    std::thread::sleep(Duration::from_millis(500));
}

/// A new client session after a crash of the cluster, given a session opened before it.
///
/// A backend that dies abnormally makes the postmaster end every other backend and recover; until it has
/// noticed, a new session could still be opened and then be cut by that recovery. So this waits first
/// for `before_crash` to be cut, then retries for up to a minute while the cluster recovers.
pub fn reconnect(mut before_crash: Client) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    while before_crash.simple_query("SELECT 1").is_ok() {
        assert!(
            Instant::now() < deadline,
            "the cluster never restarted its processes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    loop {
        match cluster().try_connect() {
            Ok(client) => return client,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(250)),
            Err(error) => panic!("the cluster did not come back: {error}"),
        }
    }
}

/// The mock API, shared by the binary's tests.
pub fn mock() -> &'static MockServer {
    MOCK.get_or_init(|| MockServer::start(0, API_KEY).expect("start the mock API"))
}

/// `tests/e2e/fixtures`: nango.yaml and the files map for `nango.deploy(config, files)`.
pub fn fixture() -> (String, Value) {
    let root = fixtures_dir();
    let config = std::fs::read_to_string(root.join("nango.yaml")).expect("fixture nango.yaml");
    let mut files = BTreeMap::new();
    collect(&root, &root, &mut files);
    // The demo integration is the repository's own example.
    let examples = repo_root().join("nango-integrations");
    collect(&examples, &examples.join("demo"), &mut files);
    (config, serde_json::to_value(files).expect("files json"))
}

/// The files of the project folder `root` (its TypeScript and its `node_modules`) by path, as
/// `nango.deploy(NULL, files)` takes them.
pub fn project_files(root: &Path) -> Value {
    let mut files = BTreeMap::new();
    collect(root, root, &mut files);
    serde_json::to_value(files).expect("files json")
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("read fixture dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.extension().is_some_and(|e| e == "ts")
            || path.starts_with(root.join("node_modules"))
        {
            let relative = path
                .strip_prefix(root)
                .expect("relative")
                .to_string_lossy()
                .into_owned();
            files.insert(
                relative,
                std::fs::read_to_string(&path).expect("read fixture file"),
            );
        }
    }
}

/// Creates an API-key connection to the mock API.
pub fn create_connection(client: &mut Client, integration: &str, connection_id: &str) {
    let credentials = serde_json::json!({"type": "API_KEY", "apiKey": API_KEY});
    create_connection_with(client, integration, connection_id, credentials, Value::Null);
}

/// Creates a connection to the mock API with these credentials; `config` adds to its `base_url`.
pub fn create_connection_with(
    client: &mut Client,
    integration: &str,
    connection_id: &str,
    credentials: Value,
    config: Value,
) {
    let mut connection_config = serde_json::json!({"base_url": mock().url()});
    if let Value::Object(extra) = config {
        connection_config
            .as_object_mut()
            .expect("object")
            .extend(extra);
    }
    client
        .execute(
            "SELECT nango.create_connection($1, $2, $3, $4)",
            &[
                &integration,
                &connection_id,
                &credentials,
                &connection_config,
            ],
        )
        .expect("create_connection");
}

/// Triggers a sync for one connection and waits for its job; returns (job id, final status).
pub fn run_sync(
    client: &mut Client,
    integration: &str,
    sync: &str,
    connection_id: &str,
) -> (i64, String) {
    let job: i64 = client
        .query_one(
            "SELECT nango.trigger_sync($1, $2, $3)",
            &[&integration, &sync, &connection_id],
        )
        .expect("trigger_sync")
        .get(0);
    let status: String = client
        .query_one("SELECT nango.wait_for_job($1, '60 seconds')", &[&job])
        .expect("wait_for_job")
        .get(0);
    (job, status)
}

/// Waits until `connection_id`'s first automatic run of a sync is over; returns its job id.
pub fn wait_first_job(client: &mut Client, connection_id: &str) -> i64 {
    for _ in 0..600 {
        let row = client
            .query_opt(
                "SELECT id FROM nango.jobs WHERE connection_id = $1 ORDER BY id LIMIT 1",
                &[&connection_id],
            )
            .expect("jobs");
        if let Some(row) = row {
            let job: i64 = row.get(0);
            client
                .query_one("SELECT nango.wait_for_job($1, '60 seconds')", &[&job])
                .expect("wait_for_job");
            return job;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no job was queued for {connection_id}");
}

/// Creates a connection to the mock API with this metadata.
pub fn create_connection_with_metadata(
    client: &mut Client,
    integration: &str,
    connection_id: &str,
    metadata: &Value,
) {
    create_connection(client, integration, connection_id);
    set_metadata(client, integration, connection_id, metadata);
}

/// Replaces a connection's metadata.
pub fn set_metadata(client: &mut Client, integration: &str, connection_id: &str, metadata: &Value) {
    client
        .execute(
            "SELECT nango.set_metadata($1, $2, $3)",
            &[&integration, &connection_id, metadata],
        )
        .expect("set_metadata");
}

/// A job's script logs as (level, message, payload), oldest first.
pub fn job_logs(client: &mut Client, job: i64) -> Vec<(String, String, Option<Value>)> {
    client
        .query(
            "SELECT level, message, payload FROM nango.logs WHERE job = $1 ORDER BY id",
            &[&job],
        )
        .expect("logs")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// A job's `(status, result, error)`.
pub fn job_outcome(client: &mut Client, job: i64) -> (String, Value, Option<Value>) {
    let row = client
        .query_one(
            "SELECT status, result, error FROM nango.jobs WHERE id = $1",
            &[&job],
        )
        .expect("job row");
    (row.get(0), row.get(1), row.get(2))
}

/// The ids of a connection's records of `model`, in id order.
pub fn record_ids(client: &mut Client, model: &str, connection_id: &str) -> Vec<String> {
    record_actions(client, model, connection_id)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// `(id, last_action)` of a connection's records of `model`, by id.
pub fn record_actions(
    client: &mut Client,
    model: &str,
    connection_id: &str,
) -> Vec<(String, String)> {
    pairs(
        client,
        "SELECT id, _nango_metadata ->> 'last_action' FROM nango.records($1, connection_id => $2) ORDER BY id",
        &[&model, &connection_id],
    )
}

/// The rows of a two-column query as pairs, collected into a `Vec` or a map.
pub fn pairs<A, B, C>(client: &mut Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> C
where
    A: for<'a> FromSql<'a>,
    B: for<'a> FromSql<'a>,
    C: FromIterator<(A, B)>,
{
    client
        .query(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// The message and DETAIL of a database error.
pub fn db_error(error: postgres::Error) -> (String, Option<String>) {
    let db = error.as_db_error().expect("a database error");
    (db.message().to_string(), db.detail().map(str::to_string))
}

/// Sets a connection's metadata to `{"steps": steps}` (what the fixture's `records` sync does) and runs
/// the sync; returns (job id, final status).
pub fn run_steps(
    client: &mut Client,
    integration: &str,
    connection_id: &str,
    steps: Value,
) -> (i64, String) {
    set_metadata(
        client,
        integration,
        connection_id,
        &serde_json::json!({ "steps": steps }),
    );
    run_sync(client, integration, "records", connection_id)
}

/// Reads the notifications a LISTEN session received for a job, waiting up to 10 s for `count` of them
/// (and 300 ms more for any beyond).
pub fn notifications_for(listener: &mut Client, job: i64, count: usize) -> Vec<Value> {
    let mut bodies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut read = |bodies: &mut Vec<Value>| {
        let mut notifications = listener.notifications();
        let mut iter = notifications.timeout_iter(Duration::from_millis(300));
        while let Ok(Some(n)) = iter.next() {
            assert_eq!(n.channel(), "nango");
            let body: Value = serde_json::from_str(n.payload()).expect("notification body is JSON");
            if body["jobId"] == serde_json::json!(job) {
                bodies.push(body);
            }
        }
    };
    while bodies.len() < count && Instant::now() < deadline {
        read(&mut bodies);
    }
    read(&mut bodies);
    bodies
}

/// A job's `started_at` as Postgres writes it in JSON (the form notifications and metadata use).
pub fn job_started_at(client: &mut Client, job: i64) -> String {
    client
        .query_one(
            "SELECT to_json(started_at) #>> '{}' FROM nango.jobs WHERE id = $1",
            &[&job],
        )
        .expect("job started_at")
        .get(0)
}
