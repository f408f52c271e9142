//! The WebTransport certificate: the one configured (`--tls-cert`, `--tls-key`), or the
//! server's own, self-signed and renewed while it runs.
//!
//! A browser accepts a self-signed certificate for WebTransport only by its SHA-256 hash
//! (`serverCertificateHashes`), and only an ECDSA one valid at most 14 days. So the server
//! makes one valid [`Config::cert_validity`] (at most that), renews it halfway, and tells
//! the hash of the current one to every page that asks (`GET /stream/wt`). A renewal serves
//! new sessions only: open sessions keep the certificate they were accepted with.

use std::{
    io,
    sync::{Arc, RwLock},
    time::Duration,
};

use wtransport::{
    Identity,
    tls::{
        rustls::{
            self,
            pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject},
        },
        self_signed::time,
    },
};

use crate::config::{Config, MAX_CERT_VALIDITY};

/// The names a self-signed certificate carries. A browser that accepts it by its hash does
/// not check them; clients that do find the loopback names there.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The ALPN protocol of HTTP/3, the only one WebTransport speaks.
const ALPN_H3: &[u8] = b"h3";

/// The certificate sessions are accepted with now. Cloning shares it.
#[derive(Clone)]
pub struct Certificates {
    current: Arc<RwLock<Certificate>>,
    /// `Some(validity)` for the server's own certificates, renewed halfway; `None` for the
    /// configured one, which is never renewed.
    self_signed: Option<Duration>,
}

/// One certificate chain and its key.
#[derive(Debug)]
struct Certificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The SHA-256 of the server's certificate, base64 (self-signed only).
    hash: Option<String>,
}

impl Certificates {
    /// The configured certificate, or a new self-signed one; an error names what could not
    /// be read.
    pub fn load(config: &Config) -> io::Result<Self> {
        let (current, self_signed) = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => (Certificate::read(cert, key)?, None),
            _ => {
                let validity = config.cert_validity.min(MAX_CERT_VALIDITY);
                (Certificate::self_signed(validity)?, Some(validity))
            }
        };
        Ok(Self {
            current: Arc::new(RwLock::new(current)),
            self_signed,
        })
    }

    /// What a page passes as `serverCertificateHashes`, base64: the current self-signed
    /// certificate's SHA-256, or nothing for a configured one (a browser checks it the usual
    /// way).
    pub fn hashes(&self) -> Vec<String> {
        self.read().hash.iter().cloned().collect()
    }

    /// How long after a renewal (or the start) the next one is due; `None`: never.
    pub fn renew_every(&self) -> Option<Duration> {
        self.self_signed.map(|validity| validity / 2)
    }

    /// Makes a new self-signed certificate the current one (a configured one stays).
    pub fn renew(&self) -> io::Result<()> {
        let Some(validity) = self.self_signed else {
            return Ok(());
        };
        let renewed = Certificate::self_signed(validity)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = renewed;
        Ok(())
    }

    /// The TLS configuration of new sessions: the current certificate, TLS 1.3, HTTP/3.
    pub fn tls_config(&self) -> io::Result<rustls::ServerConfig> {
        let current = self.read();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(current.chain.clone(), current.key.clone_key())
            .map_err(|err| io::Error::other(format!("the certificate and key: {err}")))?;
        tls.alpn_protocols = vec![ALPN_H3.to_vec()];
        Ok(tls)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Certificate> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Certificate {
    /// A certificate chain and key from PEM files.
    fn read(cert: &std::path::Path, key: &std::path::Path) -> io::Result<Self> {
        let named = |path: &std::path::Path, err: &dyn std::fmt::Display| {
            io::Error::other(format!("{}: {err}", path.display()))
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|err| named(cert, &err))?;
        if chain.is_empty() {
            return Err(named(cert, &"no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|err| named(key, &err))?;
        Ok(Self {
            chain,
            key,
            hash: None,
        })
    }

    /// A new ECDSA P-256 certificate for [`SELF_SIGNED_NAMES`], valid `validity` from a
    /// moment ago (an eighth of it, at most an hour: room for a client's clock running
    /// slightly behind, within the same total).
    fn self_signed(validity: Duration) -> io::Result<Self> {
        let early = (validity / 8).min(Duration::from_secs(3600));
        let as_time = |d: Duration| time::Duration::try_from(d).map_err(io::Error::other);
        let identity = Identity::self_signed_builder()
            .subject_alt_names(SELF_SIGNED_NAMES)
            .not_before(time::OffsetDateTime::now_utc() - as_time(early)?)
            .offset_from_not_before(as_time(validity)?)
            .build()
            .map_err(io::Error::other)?;
        let chain: Vec<CertificateDer<'static>> = identity
            .certificate_chain()
            .as_slice()
            .iter()
            .map(|cert| CertificateDer::from(cert.der().to_vec()))
            .collect();
        let hash = identity
            .certificate_chain()
            .as_slice()
            .first()
            .map(|cert| data_encoding::BASE64.encode(cert.hash().as_ref()));
        // rcgen writes the key as PKCS #8.
        let key = PrivatePkcs8KeyDer::from(identity.private_key().secret_der().to_vec()).into();
        Ok(Self { chain, key, hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(validity: Duration) -> Certificates {
        let config = Config {
            cert_validity: validity,
            ..Config::default()
        };
        Certificates::load(&config).expect("a self-signed certificate")
    }

    #[test]
    fn a_self_signed_certificate_has_one_hash_and_a_usable_tls_config() {
        let certs = self_signed(MAX_CERT_VALIDITY);
        let hashes = certs.hashes();
        assert_eq!(hashes.len(), 1);
        let raw = data_encoding::BASE64
            .decode(hashes[0].as_bytes())
            .expect("base64");
        assert_eq!(raw.len(), 32, "a SHA-256");
        let tls = certs.tls_config().expect("a TLS configuration");
        assert_eq!(tls.alpn_protocols, [b"h3".to_vec()]);
        assert_eq!(certs.renew_every(), Some(MAX_CERT_VALIDITY / 2));
    }

    #[test]
    fn a_renewal_changes_the_hash_and_no_validity_passes_fourteen_days() {
        let certs = self_signed(Duration::from_secs(30 * 24 * 3600));
        assert_eq!(certs.renew_every(), Some(MAX_CERT_VALIDITY / 2));
        let before = certs.hashes();
        certs.renew().expect("renewed");
        assert_ne!(certs.hashes(), before);
    }

    #[test]
    fn configured_files_are_read_and_have_no_hash() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let identity = Identity::self_signed(["localhost"]).expect("an identity");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, identity.certificate_chain().as_slice()[0].to_pem()).expect("cert");
        std::fs::write(&key, identity.private_key().to_secret_pem()).expect("key");
        let config = Config {
            tls_cert: Some(cert.clone()),
            tls_key: Some(key.clone()),
            ..Config::default()
        };
        let certs = Certificates::load(&config).expect("the configured certificate");
        assert!(certs.hashes().is_empty());
        assert_eq!(certs.renew_every(), None);
        certs.tls_config().expect("a TLS configuration");
        // A key that is not the certificate's is an error, not a panic.
        let other = Identity::self_signed(["localhost"]).expect("an identity");
        std::fs::write(&key, other.private_key().to_secret_pem()).expect("key");
        let certs = Certificates::load(&config).expect("read");
        let err = certs.tls_config().expect_err("a mismatched key");
        assert!(err.to_string().contains("certificate"), "{err}");
        std::fs::write(&cert, "not a certificate").expect("cert");
        let err = Certificates::load(&config).err().expect("no certificate");
        assert!(err.to_string().contains("cert.pem"), "{err}");
    }
}
