//! TLS client configuration: rustls with the ring provider, TLS 1.2 and 1.3 only.
//!
//! Seed N7 (RFC 7465): RC4, export, NULL and every other legacy suite are simply absent from
//! rustls, so "modern suites only" holds by construction; we pin the protocol versions to
//! TLS 1.2+ explicitly so a future rustls default cannot widen them. Certificates are checked
//! against the system roots (falling back to the bundled Mozilla roots when the system store
//! is empty) plus an optional per-account CA file, with host-name verification (RFC 7817).
//! The only way around verification is the per-account
//! [`TlsOptions::dangerously_accept_invalid_certs`] switch, which logs a warning on every
//! connection that uses it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::Error;
use crate::x509::{summarize, CertSummary};

/// Per-account TLS settings.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// A PEM file of extra trust anchors (a self-hosted server's CA). Added to the system
    /// roots, never replacing them.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate, for any host. Exists only for broken self-hosted setups;
    /// every connection made with it logs a loud warning, and the name says what it does.
    pub dangerously_accept_invalid_certs: bool,
}

/// The crypto provider: ring, with rustls's own default (modern, AEAD-only) cipher suites.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system trust store, read once per process (reading it costs milliseconds and the
/// store does not change under a running sync).
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let loaded = rustls_native_certs::load_native_certs();
        for err in &loaded.errors {
            tracing::debug!("system trust store: {err}");
        }
        let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
        tracing::debug!("system trust store: {added} roots loaded, {ignored} unparsable");
        if roots.is_empty() {
            // A minimal container often has no CA bundle at all; the Mozilla set is the
            // documented fallback rather than failing every connection.
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    })
}

/// Reads every certificate from a PEM file.
fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for cert in iter {
        out.push(cert.map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?);
    }
    if out.is_empty() {
        return Err(Error::Config(format!(
            "CA file {} holds no certificate",
            path.display()
        )));
    }
    Ok(out)
}

/// Builds the rustls client configuration for one account.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, Error> {
    client_config_recording(opts).map(|(config, _)| config)
}

/// Which trust anchors accepted the server's certificate (shown by `mailfold probe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustSource {
    /// The system trust store (or the bundled Mozilla roots when the system has none).
    SystemRoots,
    /// The account's own CA file (`TlsOptions::ca_file`).
    AccountCa,
    /// Nothing: `dangerously_accept_invalid_certs` was on and the chain was not checked.
    Unverified,
}

/// Where the verifier records the [`TrustSource`] of a connection's handshake. Cloning
/// shares the slot.
#[derive(Clone, Debug, Default)]
pub struct TrustRecord(Arc<Mutex<Option<TrustSource>>>);

impl TrustRecord {
    fn set(&self, source: TrustSource) {
        // A poisoned lock only means a panic elsewhere; the slot is still a plain value.
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// The source recorded by the last successful verification, if any.
    pub fn get(&self) -> Option<TrustSource> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Like [`client_config`], plus the record of which anchors verified the server. The config
/// is meant for one session (one implicit-TLS or STARTTLS handshake).
pub fn client_config_recording(
    opts: &TlsOptions,
) -> Result<(Arc<ClientConfig>, TrustRecord), Error> {
    let provider = provider();
    let record = TrustRecord::default();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if opts.dangerously_accept_invalid_certs {
        Arc::new(AcceptAnyCert {
            provider,
            record: record.clone(),
        })
    } else {
        let webpki = |roots: RootCertStore| {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| Error::Config(format!("TLS setup: {e}")))
        };
        let account = match &opts.ca_file {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in load_ca_file(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?;
                }
                Some(webpki(roots)?)
            }
            None => None,
        };
        Arc::new(TwoStoreVerifier {
            account,
            system: webpki(system_roots().clone())?,
            record: record.clone(),
        })
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((Arc::new(config), record))
}

/// Full webpki verification (chain, validity, host name: RFC 7817) against the account's CA
/// file, then against the system roots; the first that accepts is recorded. Accepting either
/// is exactly what one store holding both would accept, and probe can say which one it was.
#[derive(Debug)]
struct TwoStoreVerifier {
    account: Option<Arc<WebPkiServerVerifier>>,
    system: Arc<WebPkiServerVerifier>,
    record: TrustRecord,
}

impl ServerCertVerifier for TwoStoreVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut account_error = None;
        if let Some(account) = &self.account {
            match account.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(v) => {
                    self.record.set(TrustSource::AccountCa);
                    return Ok(v);
                }
                Err(e) => account_error = Some(e),
            }
        }
        match self.system.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => {
                self.record.set(TrustSource::SystemRoots);
                Ok(v)
            }
            // The account CA's verdict is the informative one when it knew the issuer (an
            // expired or wrong-host certificate of a self-hosted server), not "unknown issuer".
            Err(system_error) => Err(match account_error {
                Some(e)
                    if !matches!(
                        e,
                        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
                    ) =>
                {
                    e
                }
                _ => system_error,
            }),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.system.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.system.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.system.supported_verify_schemes()
    }
}

/// What was negotiated on a TLS connection, for `mailfold probe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// Protocol version, e.g. `TLSv1_3`.
    pub protocol: String,
    /// Cipher suite name as IANA/rustls spell it, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The server's chain as sent, end-entity first. A certificate the summary reader cannot
    /// walk appears with `?` fields (its DER is still there).
    pub peer_certificates: Vec<CertSummary>,
    /// Which anchors verified the chain.
    pub trust: Option<TrustSource>,
    /// True when TLS was started with STARTTLS rather than implicitly.
    pub via_starttls: bool,
}

impl TlsInfo {
    /// Reads what a finished handshake negotiated.
    pub(crate) fn from_connection(
        conn: &rustls::ClientConnection,
        trust: Option<TrustSource>,
        via_starttls: bool,
    ) -> TlsInfo {
        let protocol = conn
            .protocol_version()
            .map_or_else(|| "unknown".to_string(), |v| format!("{v:?}"));
        let cipher_suite = conn
            .negotiated_cipher_suite()
            .map_or_else(|| "unknown".to_string(), |s| format!("{:?}", s.suite()));
        let peer_certificates = conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|der| {
                summarize(der).unwrap_or_else(|| CertSummary {
                    subject: "?".into(),
                    issuer: "?".into(),
                    not_before: "?".into(),
                    not_after: "?".into(),
                    serial: "?".into(),
                    der: der.to_vec(),
                })
            })
            .collect();
        TlsInfo {
            protocol,
            cipher_suite,
            peer_certificates,
            trust,
            via_starttls,
        }
    }
}

/// The server name to verify, from the configured host (a DNS name or an IP literal).
pub fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(trimmed.to_string())
        .map_err(|e| Error::Config(format!("host {host:?} is not a valid TLS server name: {e}")))
}

/// Logs the warning that must accompany every connection made without certificate checks.
pub fn warn_if_dangerous(opts: &TlsOptions, host: &str) {
    if opts.dangerously_accept_invalid_certs {
        tracing::warn!(
            "DANGER: certificate verification is OFF for {host} \
             (dangerously_accept_invalid_certs): anyone on the path can read your password and mail"
        );
    }
}

/// Verifier for `dangerously_accept_invalid_certs`: accepts any chain and name, but still
/// checks handshake signatures so the session keys are bound to the presented key.
#[derive(Debug)]
struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
    record: TrustRecord,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.record.set(TrustSource::Unverified);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n7_only_tls12_and_13_and_no_rc4() {
        let cfg = client_config(&TlsOptions::default()).unwrap();
        for suite in &cfg.crypto_provider().cipher_suites {
            let name = format!("{:?}", suite.suite());
            assert!(!name.contains("RC4"), "{name}");
            assert!(!name.contains("NULL"), "{name}");
            assert!(!name.contains("EXPORT"), "{name}");
            assert!(!name.contains("CBC"), "{name}");
            let v = suite.version().version;
            assert!(
                v == rustls::ProtocolVersion::TLSv1_2 || v == rustls::ProtocolVersion::TLSv1_3,
                "{v:?}"
            );
        }
    }

    #[test]
    fn server_names_accept_ip_literals() {
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("[::1]").is_ok());
        assert!(server_name("imap.example.org").is_ok());
        assert!(server_name("bad host").is_err());
    }

    #[test]
    fn missing_ca_file_is_a_config_error() {
        let opts = TlsOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        assert!(matches!(client_config(&opts), Err(Error::Config(_))));
    }
}
