//! The connection, found as psql finds it: `--dsn` (or `DATABASE_URL`), else libpq's environment variables
//! with libpq's defaults (the server's socket directory, the operating system's user name, a database of
//! the user's name).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use postgres::{Client, Config, NoTls};

use crate::tls;

/// Where Debian's libpq looks for the server's socket when no host is given.
const SOCKET_DIRECTORIES: [&str; 2] = ["/var/run/postgresql", "/tmp"];

/// Opens the session every command runs on.
pub fn connect(dsn: Option<&str>) -> anyhow::Result<Client> {
    let (dsn, protection) = tls::protection(dsn)?;
    let mut config = match dsn.as_deref() {
        Some(dsn) => Config::from_str(dsn).map_err(|e| {
            anyhow!("the connection string is not valid: {e}")
                .context("use postgresql://user@host:port/database or host=… port=… dbname=…")
        })?,
        None => Config::new(),
    };
    // As libpq does, what the connection string leaves out comes from the environment and the defaults.
    apply_environment(&mut config)?;
    let described = describe(&config);
    config.application_name("pg-nango");
    config.ssl_mode(protection.ssl_mode());
    let connected = if protection == tls::Protection::Disable {
        config.connect(NoTls)
    } else {
        config.connect(tls::connector(protection)?)
    };
    connected.map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "cannot connect to {described}; set --dsn, DATABASE_URL or PGHOST/PGPORT/PGUSER/PGDATABASE as for psql"
        ))
    })
}

/// Fills what `config` lacks from libpq's environment variables, with libpq's defaults where one is not set.
fn apply_environment(config: &mut Config) -> anyhow::Result<()> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if config.get_hosts().is_empty() {
        match var("PGHOST") {
            Some(hosts) => {
                for host in hosts.split(',') {
                    config.host(host);
                }
            }
            None => {
                let socket = SOCKET_DIRECTORIES
                    .iter()
                    .find(|dir| Path::new(dir).is_dir())
                    .copied()
                    .unwrap_or("localhost");
                config.host(socket);
            }
        }
    }
    if config.get_ports().is_empty()
        && let Some(port) = var("PGPORT")
    {
        let port: u16 = port
            .parse()
            .with_context(|| format!("PGPORT is not a port number: {port}"))?;
        config.port(port);
    }
    if config.get_user().is_none() {
        let user = var("PGUSER")
            .or_else(|| var("USER"))
            .or_else(|| var("LOGNAME"))
            .ok_or_else(|| anyhow!("no user name: set PGUSER"))?;
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let dbname = var("PGDATABASE").or_else(|| config.get_user().map(str::to_string));
        if let Some(dbname) = dbname {
            config.dbname(&dbname);
        }
    }
    if config.get_password().is_none()
        && let Some(password) = var("PGPASSWORD")
    {
        config.password(password);
    }
    if config.get_connect_timeout().is_none()
        && let Some(seconds) = var("PGCONNECT_TIMEOUT").and_then(|s| s.parse().ok())
    {
        config.connect_timeout(Duration::from_secs(seconds));
    }
    Ok(())
}

/// The server and database, as an error names them (never the password).
fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "database \"{}\" on {host} port {port} as \"{}\"",
        config.get_dbname().unwrap_or_default(),
        config.get_user().unwrap_or_default()
    )
}
