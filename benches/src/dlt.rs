//! The dlt peer: dlt's `rest_api` source into the benchmark's cluster (database `dlt_peer`), merging on
//! `id`, run by `benches/python/dlt_peer.py` in a virtual environment the benchmark makes itself
//! (target/bench-venv, kept for the next run). Whatever goes wrong here is printed and skipped: the rest
//! of the benchmark never depends on Python or on reaching the Python package registry.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pg_nango_e2e::{API_KEY, Client, Cluster, NoTls, repo_root};
use serde_json::Value;

use crate::PAGE;
use crate::peers::Timings;

const DATABASE: &str = "dlt_peer";

/// dlt's first sync and unchanged re-sync of the dataset, or `None` (with a line saying why).
/// `PG_NANGO_BENCH_DLT=0` skips it (a quick run without Python).
pub fn dlt_peer(cluster: &Cluster, url: &str, dataset: &str, count: usize) -> Option<Timings> {
    if std::env::var("PG_NANGO_BENCH_DLT").as_deref() == Ok("0") {
        println!("dlt: skipped (PG_NANGO_BENCH_DLT=0)");
        return None;
    }
    let python = match venv() {
        Ok(python) => python,
        Err(why) => {
            println!("dlt: skipped: {why}");
            return None;
        }
    };
    match run(cluster, &python, url, dataset, count) {
        Ok(timings) => Some(timings),
        Err(why) => {
            println!("dlt: skipped: {why}");
            None
        }
    }
}

/// The venv's python with dlt importable, making the venv (and installing python3-venv) when needed.
fn venv() -> Result<PathBuf, String> {
    let dir = repo_root().join("target/bench-venv");
    let python = dir.join("bin/python");
    if python.exists() && imports_dlt(&python) {
        return Ok(python);
    }
    if !succeeds(Command::new("python3").args(["-c", "import ensurepip, venv"])) {
        install_python3_venv()?;
    }
    if !python.exists() {
        let made = output(Command::new("python3").arg("-m").arg("venv").arg(&dir))?;
        if !made.status.success() {
            return Err(format!("python3 -m venv failed: {}", tail(&made)));
        }
    }
    println!("dlt: installing dlt[postgres] into {}", dir.display());
    let installed = output(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "--retries",
        "1",
        "--timeout",
        "20",
        "dlt[postgres]",
    ]))?;
    if !installed.status.success() {
        return Err(format!(
            "pip could not install dlt[postgres] (is the Python package registry reachable?): {}",
            tail(&installed)
        ));
    }
    if !imports_dlt(&python) {
        return Err("dlt does not import after installing it".into());
    }
    Ok(python)
}

/// Installs Debian's python3-venv, as scripts/setup.sh installs its packages: only as root.
fn install_python3_venv() -> Result<(), String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        return Err("python3 has no venv module (install python3-venv)".into());
    }
    println!("dlt: installing python3-venv");
    let quiet = |args: &[&str]| {
        succeeds(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    if quiet(&["update", "-qq"]) && quiet(&["install", "-y", "-qq", "python3-venv"]) {
        Ok(())
    } else {
        Err("apt-get could not install python3-venv".into())
    }
}

fn imports_dlt(python: &Path) -> bool {
    succeeds(
        Command::new(python)
            .args(["-c", "import dlt"])
            .env("RUNTIME__DLTHUB_TELEMETRY", "false"),
    )
}

/// Runs the dlt script into a fresh database and checks what it stored.
fn run(
    cluster: &Cluster,
    python: &Path,
    url: &str,
    dataset: &str,
    count: usize,
) -> Result<Timings, String> {
    cluster
        .connect()
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .map_err(|e| format!("create database {DATABASE}: {e}"))?;
    // dlt keeps its pipeline state and load packages here; a fresh directory, so the first sync is one.
    let data_dir = std::env::temp_dir().join(format!("pg_nango_bench_dlt_{}", cluster.port));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("create {}: {e}", data_dir.display()))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/dlt_peer.py");
    // The trust-authenticated cluster ignores the password, which dlt's credentials require.
    let dsn = format!(
        "postgresql://postgres:unused@127.0.0.1:{}/{DATABASE}",
        cluster.port
    );
    let ran = output(
        Command::new(python)
            .arg(&script)
            .args([url, API_KEY, dataset, &PAGE.to_string(), &dsn])
            .current_dir(&data_dir)
            .env("DLT_DATA_DIR", &data_dir)
            .env("DLT_PROJECT_DIR", &data_dir)
            .env("DLT_DISABLE_PLUGINS", "true")
            // No telemetry, no error reporting, and any request beyond loopback fails at once.
            .env("RUNTIME__DLTHUB_TELEMETRY", "false")
            .env_remove("RUNTIME__SENTRY_DSN")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("http_proxy", "http://127.0.0.1:9")
            .env("https_proxy", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost"),
    );
    let _ = std::fs::remove_dir_all(&data_dir);
    let ran = ran?;
    if !ran.status.success() {
        return Err(format!("the dlt pipeline failed: {}", tail(&ran)));
    }
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let figures: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .ok_or_else(|| format!("no figures from the dlt script: {stdout}"))?;
    let mut client = Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname={DATABASE}",
            cluster.port
        ),
        NoTls,
    )
    .map_err(|e| e.to_string())?;
    let stored: i64 = client
        .query_one("SELECT count(*) FROM dlt_peer.records", &[])
        .map_err(|e| e.to_string())?
        .get(0);
    if stored as usize != count {
        return Err(format!("dlt stored {stored} records, not {count}"));
    }
    Ok(Timings {
        first: figures["first"].as_f64().unwrap_or(f64::NAN),
        again: figures["again"].as_f64().unwrap_or(f64::NAN),
    })
}

fn output(command: &mut Command) -> Result<Output, String> {
    command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run {:?}: {e}", command.get_program()))
}

fn succeeds(command: &mut Command) -> bool {
    output(command).is_ok_and(|o| o.status.success())
}

/// The last lines of a command's stderr, for a one-line reason.
fn tail(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
