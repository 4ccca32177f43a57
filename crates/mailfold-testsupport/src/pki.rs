//! Throwaway certificates for one test run: a private CA and server certificates that are
//! valid, self-signed, issued for the wrong host, or expired.
//!
//! Everything is generated in memory with rcgen (ECDSA P-256) when a [`TestPki`] is created and
//! written to a private temporary directory, so a test can hand the CA file to the client as the
//! account's `ca_file` (a fresh CA and server certificate on every run). Nothing here is
//! trusted outside the test that created it.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Which server certificate a TLS endpoint presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertKind {
    /// Issued by the test CA for `IP:127.0.0.1`, `IP:::1` and `DNS:localhost`; verifies with
    /// the CA file.
    Valid,
    /// Names 127.0.0.1 and localhost but signs itself: no chain to the test CA.
    SelfSigned,
    /// Issued by the test CA, but only for `wrong.host.invalid` (RFC 7817 host-name check).
    WrongHost,
    /// Issued by the test CA for the right names, but valid only in 2000.
    Expired,
}

impl CertKind {
    /// All four kinds, for tests that loop over them.
    pub const ALL: [CertKind; 4] = [
        CertKind::Valid,
        CertKind::SelfSigned,
        CertKind::WrongHost,
        CertKind::Expired,
    ];
}

/// A server certificate and its private key.
struct Leaf {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    key_der: Vec<u8>,
}

/// A private CA and one server certificate of each [`CertKind`], with PEM files on disk.
pub struct TestPki {
    dir: tempfile::TempDir,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    valid: Leaf,
    self_signed: Leaf,
    wrong_host: Leaf,
    expired: Leaf,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

fn right_names() -> Vec<SanType> {
    vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        SanType::DnsName(
            "localhost"
                .try_into()
                .expect("'localhost' is a valid DNS name"),
        ),
    ]
}

fn leaf_params(names: Vec<SanType>, common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.subject_alt_names = names;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    params
}

impl TestPki {
    /// Generates the CA and the four server certificates and writes them as PEM files.
    ///
    /// # Panics
    /// If key generation or writing the temporary files fails (a broken test machine).
    pub fn generate() -> TestPki {
        let dir = tempfile::Builder::new()
            .prefix("mfpki")
            .tempdir()
            .expect("create a temporary directory for test certificates");

        let ca_key = KeyPair::generate().expect("generate the test CA key");
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "mailfold test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        ca_params.not_after = rcgen::date_time_ymd(2099, 12, 31);
        let ca = ca_params
            .self_signed(&ca_key)
            .expect("self-sign the test CA");

        let issue = |params: CertificateParams| -> Leaf {
            let key = KeyPair::generate().expect("generate a test server key");
            let cert = params
                .signed_by(&key, &ca, &ca_key)
                .expect("sign a test server certificate");
            Leaf {
                cert_pem: cert.pem(),
                cert_der: cert.der().clone(),
                key_pem: key.serialize_pem(),
                key_der: key.serialize_der(),
            }
        };

        let valid = issue(leaf_params(right_names(), "localhost"));
        let wrong_host = issue(leaf_params(
            vec![SanType::DnsName(
                "wrong.host.invalid".try_into().expect("a valid DNS name"),
            )],
            "wrong.host.invalid",
        ));
        let mut expired_params = leaf_params(right_names(), "localhost");
        expired_params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        expired_params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let expired = issue(expired_params);

        let self_signed = {
            let key = KeyPair::generate().expect("generate a self-signed key");
            let cert = leaf_params(right_names(), "localhost")
                .self_signed(&key)
                .expect("self-sign a server certificate");
            Leaf {
                cert_pem: cert.pem(),
                cert_der: cert.der().clone(),
                key_pem: key.serialize_pem(),
                key_der: key.serialize_der(),
            }
        };

        let pki = TestPki {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            dir,
            valid,
            self_signed,
            wrong_host,
            expired,
        };
        write(&pki.ca_file(), pki.ca_pem.as_bytes());
        for kind in CertKind::ALL {
            let leaf = pki.leaf(kind);
            write(&pki.cert_file(kind), leaf.cert_pem.as_bytes());
            write(&pki.key_file(kind), leaf.key_pem.as_bytes());
        }
        pki
    }

    fn leaf(&self, kind: CertKind) -> &Leaf {
        match kind {
            CertKind::Valid => &self.valid,
            CertKind::SelfSigned => &self.self_signed,
            CertKind::WrongHost => &self.wrong_host,
            CertKind::Expired => &self.expired,
        }
    }

    fn stem(kind: CertKind) -> &'static str {
        match kind {
            CertKind::Valid => "valid",
            CertKind::SelfSigned => "self-signed",
            CertKind::WrongHost => "wrong-host",
            CertKind::Expired => "expired",
        }
    }

    /// Path of the CA certificate (PEM): what a test passes as the account's `ca_file`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA certificate as PEM text.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate in DER.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// Path of the server certificate (PEM) of `kind`.
    pub fn cert_file(&self, kind: CertKind) -> PathBuf {
        self.dir.path().join(format!("{}.crt", Self::stem(kind)))
    }

    /// Path of the server private key (PKCS#8 PEM) of `kind`.
    pub fn key_file(&self, kind: CertKind) -> PathBuf {
        self.dir.path().join(format!("{}.key", Self::stem(kind)))
    }

    /// The directory holding the PEM files (removed when the `TestPki` is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A rustls server configuration presenting the certificate of `kind`, restricted to the
    /// `ring` provider and TLS 1.2+ (rustls offers nothing older).
    ///
    /// # Panics
    /// If rustls rejects the generated key (it does not for P-256).
    pub fn server_config(&self, kind: CertKind) -> Arc<rustls::ServerConfig> {
        let leaf = self.leaf(kind);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.cert_der.clone()], key)
        .expect("rustls accepts the generated server key");
        Arc::new(config)
    }

    /// A rustls client configuration that trusts only this CA: for harness tests that talk TLS
    /// directly, without the mailfold client.
    ///
    /// # Panics
    /// If rustls rejects the generated CA certificate (it does not).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .expect("rustls accepts the generated CA certificate");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    }
}

fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
