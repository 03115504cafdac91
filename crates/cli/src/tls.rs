//! TLS as libpq does it, by `sslmode` (from the connection string, else `PGSSLMODE`, else `prefer`):
//! `disable` sends everything in clear; `prefer` encrypts when the server offers it and `require` always
//! does, both without checking whose certificate it is (libpq's behaviour: they stop eavesdropping, not
//! impersonation); `verify-ca` checks the certificate against trusted roots and `verify-full` also that it
//! names the host. Roots come from `PGSSLROOTCERT`, else `~/.postgresql/root.crt`, else the system's store.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use postgres::config::SslMode;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Protection {
    fn parse(value: &str) -> anyhow::Result<Protection> {
        Ok(match value {
            "disable" => Protection::Disable,
            "allow" | "prefer" => Protection::Prefer,
            "require" => Protection::Require,
            "verify-ca" => Protection::VerifyCa,
            "verify-full" => Protection::VerifyFull,
            other => bail!(
                "unknown sslmode {other:?}: use disable, prefer, require, verify-ca or verify-full"
            ),
        })
    }

    /// What the Postgres client negotiates; the checks of `verify-*` are made by the TLS connector.
    pub fn ssl_mode(self) -> SslMode {
        match self {
            Protection::Disable => SslMode::Disable,
            Protection::Prefer => SslMode::Prefer,
            Protection::Require | Protection::VerifyCa | Protection::VerifyFull => SslMode::Require,
        }
    }
}

/// The connection string with its `sslmode` taken out (the Postgres client knows only disable, prefer and
/// require), and the protection asked for there or by `PGSSLMODE`.
pub fn protection(dsn: Option<&str>) -> anyhow::Result<(Option<String>, Protection)> {
    let mut found = None;
    let dsn = dsn.map(|dsn| {
        let Some(start) = dsn.find("sslmode=") else {
            return dsn.to_string();
        };
        let rest = &dsn[start + "sslmode=".len()..];
        let end = rest.find(['&', ' ']).unwrap_or(rest.len());
        found = Some(rest[..end].to_string());
        let mut without = dsn[..start].to_string();
        without.push_str(rest[end..].trim_start_matches(['&', ' ']));
        without.trim_end_matches(['?', '&']).to_string()
    });
    let mode = match found.or_else(|| std::env::var("PGSSLMODE").ok().filter(|v| !v.is_empty())) {
        Some(value) => Protection::parse(&value)?,
        None => Protection::Prefer,
    };
    Ok((dsn, mode))
}

/// The TLS connector for `protection`.
pub fn connector(protection: Protection) -> anyhow::Result<MakeRustlsConnect> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS set-up")?;
    let config = match protection {
        Protection::VerifyCa | Protection::VerifyFull => {
            let roots = Arc::new(root_store()?);
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .context("TLS set-up")?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Verified {
                    inner: verifier,
                    check_host: protection == Protection::VerifyFull,
                }))
                .with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The trusted roots: `PGSSLROOTCERT`, else `~/.postgresql/root.crt`, else the system's.
fn root_store() -> anyhow::Result<RootCertStore> {
    let file = std::env::var("PGSSLROOTCERT")
        .ok()
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            let path = PathBuf::from(home).join(".postgresql/root.crt");
            path.is_file().then_some(path)
        });
    let mut roots = RootCertStore::empty();
    match file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(&path)
                .with_context(|| format!("cannot read the root certificates {}", path.display()))?
            {
                let cert = cert.with_context(|| {
                    format!("{} holds a certificate that cannot be read", path.display())
                })?;
                roots.add(cert)?;
            }
        }
        None => {
            let system = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(system.certs);
        }
    }
    if roots.is_empty() {
        return Err(anyhow!(
            "no trusted root certificate to verify the server with: set PGSSLROOTCERT"
        ));
    }
    Ok(roots)
}

/// `verify-ca` and `verify-full`: the certificate chains to a trusted root; for `verify-full` it also names
/// the host.
#[derive(Debug)]
struct Verified {
    inner: Arc<WebPkiServerVerifier>,
    check_host: bool,
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_host => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `prefer` and `require`: encrypted, whoever the certificate names (the handshake's signatures are still
/// checked, so the session is with the holder of the certificate's key).
#[derive(Debug)]
struct Unverified {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_taken_out_of_either_form_of_connection_string() {
        let (dsn, mode) = protection(Some(
            "postgresql://u@db.example.com/app?sslmode=verify-full&connect_timeout=5",
        ))
        .unwrap();
        assert_eq!(
            dsn.as_deref(),
            Some("postgresql://u@db.example.com/app?connect_timeout=5")
        );
        assert_eq!(mode, Protection::VerifyFull);
        let (dsn, mode) = protection(Some("host=db sslmode=require dbname=app")).unwrap();
        assert_eq!(dsn.as_deref(), Some("host=db dbname=app"));
        assert_eq!(mode, Protection::Require);
        let (dsn, _) = protection(Some("postgresql://u@db/app?sslmode=disable")).unwrap();
        assert_eq!(dsn.as_deref(), Some("postgresql://u@db/app"));
        assert!(protection(Some("host=db sslmode=sometimes")).is_err());
    }
}
