//! `pg-nango` over TLS, as libpq's `sslmode` says, against a cluster that refuses connections in clear
//! (`hostnossl … reject`) and serves a certificate for 127.0.0.1 made for the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pg_nango_e2e::*;

struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    /// A certificate authority and the server's certificate it signed, for 127.0.0.1; another authority
    /// that signed nothing here; and a pg_hba.conf that accepts only TLS over TCP.
    fn make() -> Certificates {
        let dir = std::env::temp_dir().join(format!("pg_nango_tls_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("run openssl");
            assert!(output.status.success(), "openssl {args:?}: {output:?}");
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ]);
        }
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
        std::fs::write(
            dir.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n\
             hostssl all all ::1/128 trust\nhostnossl all all ::1/128 reject\n",
        )
        .unwrap();
        // The server runs as postgres when the tests run as root, and wants its key private to itself.
        let key = dir.join("server.key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        if unsafe { libc::geteuid() } == 0 {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success());
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        Certificates { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn pg_nango(cluster: &Cluster, sslmode: &str, root: Option<&Path>) -> Output {
    pg_nango_on(cluster, "127.0.0.1", sslmode, root)
}

fn pg_nango_on(cluster: &Cluster, host: &str, sslmode: &str, root: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pg-nango"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("PGSSLROOTCERT")
        .env("HOME", "/nonexistent")
        .env("PGHOST", host)
        .env("PGPORT", cluster.port.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "postgres")
        .env("PGSSLMODE", sslmode)
        .env("NO_COLOR", "1")
        .args(["status"]);
    if let Some(root) = root {
        command.env("PGSSLROOTCERT", root);
    }
    command.output().expect("run pg-nango")
}

#[test]
fn sslmode_encrypts_verifies_or_refuses_as_libpq_does() {
    let certificates = Certificates::make();
    let cluster = Cluster::start(
        "cli_tls",
        true,
        &[
            "ssl = on",
            &format!("ssl_cert_file = '{}'", certificates.path("server.crt")),
            &format!("ssl_key_file = '{}'", certificates.path("server.key")),
            &format!("hba_file = '{}'", certificates.path("pg_hba.conf")),
        ],
    );
    let mut admin = Client::connect(
        &format!(
            "host={} port={} user=postgres dbname=postgres",
            cluster.datadir.display(),
            cluster.port
        ),
        NoTls,
    )
    .expect("connect over the cluster's socket");
    admin.batch_execute("CREATE EXTENSION pg_nango").unwrap();

    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();
    // Encrypted without checking whose certificate it is, as libpq's prefer and require.
    for mode in ["prefer", "require"] {
        let output = pg_nango(&cluster, mode, None);
        assert!(output.status.success(), "{mode}: {}", stderr(&output));
        assert!(String::from_utf8_lossy(&output.stdout).contains("(none)"));
    }
    // In clear, the server's pg_hba.conf refuses.
    let clear = pg_nango(&cluster, "disable", None);
    assert!(!clear.status.success());
    assert!(
        stderr(&clear).contains("cannot connect") && stderr(&clear).contains("no encryption"),
        "{}",
        stderr(&clear)
    );
    // Verified against the authority that signed it; refused against another one.
    let ca = certificates.dir.join("ca.crt");
    let verified = pg_nango(&cluster, "verify-full", Some(&ca));
    assert!(verified.status.success(), "{}", stderr(&verified));
    // By another name than the certificate's: verify-ca does not check the name, verify-full does.
    let by_name = pg_nango_on(&cluster, "localhost", "verify-ca", Some(&ca));
    assert!(by_name.status.success(), "{}", stderr(&by_name));
    let wrong_name = pg_nango_on(&cluster, "localhost", "verify-full", Some(&ca));
    assert!(!wrong_name.status.success());
    assert!(
        stderr(&wrong_name).contains("not valid for name \"localhost\""),
        "{}",
        stderr(&wrong_name)
    );
    let other_root = certificates.dir.join("other-ca.crt");
    for mode in ["verify-ca", "verify-full"] {
        let refused = pg_nango(&cluster, mode, Some(&other_root));
        assert!(
            !refused.status.success(),
            "{mode} accepted an unknown certificate"
        );
        assert!(
            stderr(&refused).contains("cannot connect"),
            "{}",
            stderr(&refused)
        );
    }
    let unknown_mode = pg_nango(&cluster, "sometimes", None);
    assert!(stderr(&unknown_mode).contains("unknown sslmode \"sometimes\""));

    drop(admin);
    cluster.stop();
    let _ = std::fs::remove_dir_all(&certificates.dir);
}
