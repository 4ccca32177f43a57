//! TLS client configuration: rustls with the ring provider, TLS 1.2 and 1.3 only.
//!
//! Seed N7 (RFC 7465): RC4, export, NULL and every other legacy suite are simply absent from
//! rustls, so "modern suites only" holds by construction; we pin the protocol versions to
//! TLS 1.2+ explicitly so a future rustls default cannot widen them. Certificates are checked
//! against the system roots (falling back to the bundled Mozilla roots when the system store
//! is empty) plus an optional per-account CA file, with host-name verification (RFC 7817).
//! When verification fails, the verifier records a typed verdict ([`CertProblem`]) and the
//! presented chain, which the session returns as [`Error::Certificate`]; of the two stores'
//! verdicts, the one from the store that knows the chain's issuer is reported.
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

use crate::error::{CertProblem, Error};
use crate::x509::{
    format_unix, is_self_issued, subject_alt_names, summarize_or_placeholder, CertSummary,
};

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

/// A refused chain: the verdict, what the server presented (end-entity first), and the TLS
/// library's own text.
#[derive(Clone, Debug)]
pub(crate) struct Rejection {
    pub(crate) problem: CertProblem,
    pub(crate) presented: Vec<CertSummary>,
    pub(crate) detail: String,
}

#[derive(Debug, Default)]
struct Recorded {
    source: Option<TrustSource>,
    rejection: Option<Rejection>,
}

/// Where the verifier records the [`TrustSource`] of a connection's handshake (and, when it
/// refuses the chain, why). Cloning shares the slot.
#[derive(Clone, Debug, Default)]
pub struct TrustRecord(Arc<Mutex<Recorded>>);

impl TrustRecord {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // A poisoned lock only means a panic elsewhere; the slot is still plain values.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, source: TrustSource) {
        let mut r = self.lock();
        r.source = Some(source);
        r.rejection = None;
    }

    fn reject(&self, rejection: Rejection) {
        let mut r = self.lock();
        r.source = None;
        r.rejection = Some(rejection);
    }

    /// The source recorded by the last successful verification, if any.
    pub fn get(&self) -> Option<TrustSource> {
        self.lock().source
    }

    /// The verdict of the last verification, when it refused the chain.
    pub(crate) fn rejection(&self) -> Option<Rejection> {
        self.lock().rejection.clone()
    }
}

/// The error of a failed TLS handshake: [`Error::Certificate`] when our verifier refused the
/// chain (its verdict and the presented chain were recorded), [`Error::NotTls`] when the
/// peer's first bytes were no TLS record at all, [`Error::Tls`] otherwise.
pub(crate) fn handshake_error(e: &std::io::Error, record: &TrustRecord) -> Error {
    if let Some(r) = record.rejection() {
        return Error::Certificate {
            problem: r.problem,
            presented: r.presented,
            detail: r.detail,
        };
    }
    let inner = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    // An IMAP server answering a ClientHello with a cleartext greeting (`* OK …`): its first
    // byte is no TLS record type (RFC 8446 5.1).
    if let Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) = inner {
        return Error::NotTls(e.to_string());
    }
    Error::Tls(e.to_string())
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
///
/// When both refuse, the error reported is the most meaningful one: the verdict of a store
/// that knows the chain's issuer (an expired or wrong-host certificate of a self-hosted
/// server: the account CA's; a public server's: the system's), and `UnknownIssuer` when
/// neither does — not whichever store happened to be asked first.
#[derive(Debug)]
struct TwoStoreVerifier {
    account: Option<Arc<WebPkiServerVerifier>>,
    system: Arc<WebPkiServerVerifier>,
    record: TrustRecord,
}

/// One store's answer.
enum Verdict {
    Accepted(ServerCertVerified),
    /// The store knows the issuer, and this is what is wrong with the chain.
    Refused(rustls::Error),
    /// The store has no anchor that issued the chain (its own error, for the log).
    IssuerUnknown(rustls::Error),
}

/// Errors that mean "no anchor of this store issued the chain". webpki reports a bad or
/// unusable signature when an anchor's *name* matches the issuer but its key did not sign
/// the certificate (a store may hold an unrelated `CN=localhost`); that anchor is not the
/// issuer either.
#[allow(deprecated)] // UnsupportedSignatureAlgorithm: still produced by older webpki paths
fn issuer_unknown(e: &rustls::Error) -> bool {
    use rustls::CertificateError as C;
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            C::UnknownIssuer
                | C::BadSignature
                | C::UnsupportedSignatureAlgorithm
                | C::UnsupportedSignatureAlgorithmContext { .. }
                | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. }
        )
    )
}

/// For a date verdict, an instant at which that certificate's dates hold.
fn instant_within_validity(e: &rustls::Error) -> Option<UnixTime> {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::ExpiredContext { not_after, .. }) => Some(*not_after),
        rustls::Error::InvalidCertificate(C::NotValidYetContext { not_before, .. }) => {
            Some(*not_before)
        }
        _ => None,
    }
}

impl TwoStoreVerifier {
    fn verdict(
        store: &WebPkiServerVerifier,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Verdict {
        let verify = |at| {
            store.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, at)
        };
        match verify(now) {
            Ok(v) => Verdict::Accepted(v),
            Err(e) if issuer_unknown(&e) => Verdict::IssuerUnknown(e),
            Err(e) => match instant_within_validity(&e) {
                // webpki checks a certificate's dates before it looks for the issuer, so an
                // "expired" from a store that has never seen the issuer says nothing about
                // trust. Asked again at an instant where those dates hold, the store tells
                // whether it knows the issuer; the verdict stays the real date error.
                Some(at) => match verify(at) {
                    Err(again) if issuer_unknown(&again) => Verdict::IssuerUnknown(e),
                    _ => Verdict::Refused(e),
                },
                None => Verdict::Refused(e),
            },
        }
    }
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
        let ask = |store: &WebPkiServerVerifier| {
            Self::verdict(
                store,
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )
        };
        let account = match self.account.as_deref().map(ask) {
            Some(Verdict::Accepted(v)) => {
                self.record.set(TrustSource::AccountCa);
                return Ok(v);
            }
            other => other,
        };
        let system = match ask(&self.system) {
            Verdict::Accepted(v) => {
                self.record.set(TrustSource::SystemRoots);
                return Ok(v);
            }
            other => other,
        };
        for (store, verdict) in [
            ("account CA", account.as_ref()),
            ("system roots", Some(&system)),
        ] {
            match verdict {
                Some(Verdict::Refused(e)) => tracing::debug!("{store}: {e}"),
                Some(Verdict::IssuerUnknown(e)) => {
                    tracing::debug!("{store}: no anchor issued the chain ({e})")
                }
                _ => {}
            }
        }
        let error = match (account, system) {
            (Some(Verdict::Refused(e)), _) | (_, Verdict::Refused(e)) => e,
            _ => rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        };
        self.record.reject(Rejection {
            problem: classify(&error, end_entity),
            presented: std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| summarize_or_placeholder(c))
                .collect(),
            detail: error.to_string(),
        });
        Err(error)
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

/// The verdict on a refused chain, from the verifier's error and the end-entity
/// certificate (for the self-signed test and the names a wrong-host certificate is for).
fn classify(error: &rustls::Error, end_entity: &CertificateDer<'_>) -> CertProblem {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(e) = error else {
        return CertProblem::Other(error.to_string());
    };
    let unix = |t: &UnixTime| Some(format_unix(t.as_secs()));
    match e {
        C::UnknownIssuer if is_self_issued(end_entity) => CertProblem::SelfSigned,
        C::UnknownIssuer => CertProblem::UnknownIssuer,
        C::NotValidForName | C::NotValidForNameContext { .. } => CertProblem::WrongHost {
            valid_for: subject_alt_names(end_entity),
        },
        C::ExpiredContext { not_after, .. } => CertProblem::Expired {
            not_after: unix(not_after),
        },
        C::Expired => CertProblem::Expired { not_after: None },
        C::NotValidYetContext { not_before, .. } => CertProblem::NotYetValid {
            not_before: unix(not_before),
        },
        C::NotValidYet => CertProblem::NotYetValid { not_before: None },
        C::Revoked => CertProblem::Revoked,
        _ => CertProblem::Other(error.to_string()),
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
            .map(|der| summarize_or_placeholder(der))
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
