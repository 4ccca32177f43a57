//! SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), with optional channel binding
//! (`-PLUS`, RFC 5802 section 6).
//!
//! The exchange: client-first (`n,,n=user,r=cnonce`), server-first (`r=,s=,i=`),
//! client-final (`c=,r=,p=proof`), server-final (`v=signature`). The server signature
//! is verified in constant time; a wrong one is [`SaslError::ServerProofMismatch`]
//! and a missing one leaves the mechanism incomplete, so a fake server is never
//! accepted.

use base64::Engine as _;
use hmac::digest::typenum::Unsigned;
use hmac::digest::Digest;
use hmac::{Hmac, Mac};

use super::{check_size, gs2_saslname};
use super::{Mechanism, Response};
use crate::context::ChannelBinding;
use crate::credentials::Credentials;
use crate::error::server_text;
use crate::error::SaslError;
use crate::nonce::NonceSource;
use crate::saslprep::saslprep_password;
use crate::secret::Secret;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Fewest PBKDF2 iterations accepted: RFC 7677 section 4 asks for at least 4096, and a
/// server offering fewer is either misconfigured or trying to make a captured exchange
/// cheap to crack.
pub const MIN_ITERATIONS: u32 = 4096;

/// Most PBKDF2 iterations accepted, so a hostile server cannot make the client burn
/// CPU for minutes (RFC 5802 section 9 warns about this).
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// The hash a SCRAM variant is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    /// SHA-1 (SCRAM-SHA-1, RFC 5802).
    Sha1,
    /// SHA-256 (SCRAM-SHA-256, RFC 7677).
    Sha256,
}

#[derive(Debug)]
enum State {
    /// Client-first not yet sent.
    Start,
    /// Client-first sent, waiting for server-first.
    SentFirst,
    /// Client-final sent; the expected server signature is kept for `v=`.
    SentFinal { server_signature: Secret<Vec<u8>> },
    /// Server signature verified.
    Verified,
    /// The exchange failed; nothing more is accepted.
    Failed,
}

/// Client side of SCRAM-SHA-1 / SCRAM-SHA-256 and their `-PLUS` variants.
#[derive(Debug)]
pub struct Scram {
    hash: ScramHash,
    name: &'static str,
    gs2_header: String,
    channel_binding: Option<ChannelBinding>,
    client_first_bare: String,
    client_nonce: String,
    password: Secret<String>,
    state: State,
}

impl Scram {
    /// Prepares the client-first message.
    ///
    /// `plus` selects the `-PLUS` variant, which needs `channel_binding`. Without
    /// `plus`, available channel-binding data still changes the GS2 flag to `y`
    /// ("I could bind but you did not offer it"), which lets a server detect a
    /// man in the middle that stripped `-PLUS` from its capability list (RFC 5802 6).
    pub fn new(
        hash: ScramHash,
        credentials: &Credentials,
        channel_binding: Option<ChannelBinding>,
        plus: bool,
        nonces: &mut dyn NonceSource,
    ) -> Result<Self, SaslError> {
        let name = match (hash, plus) {
            (ScramHash::Sha1, false) => "SCRAM-SHA-1",
            (ScramHash::Sha1, true) => "SCRAM-SHA-1-PLUS",
            (ScramHash::Sha256, false) => "SCRAM-SHA-256",
            (ScramHash::Sha256, true) => "SCRAM-SHA-256-PLUS",
        };
        let flag = match (&channel_binding, plus) {
            (Some(cb), true) => {
                if cb.kind.is_empty()
                    || !cb
                        .kind
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                {
                    return Err(SaslError::credentials("invalid channel-binding type name"));
                }
                format!("p={}", cb.kind)
            }
            (None, true) => {
                return Err(SaslError::credentials(format!(
                    "{name} needs TLS channel-binding data"
                )))
            }
            (Some(_), false) => "y".to_owned(),
            (None, false) => "n".to_owned(),
        };
        if credentials.authcid.is_empty() {
            return Err(SaslError::credentials("SCRAM needs a user name"));
        }
        if credentials.authcid.chars().any(char::is_control) {
            return Err(SaslError::credentials(
                "the user name contains control characters",
            ));
        }
        let gs2_header = match credentials.authzid() {
            Some(a) => format!("{flag},a={},", gs2_saslname(a)),
            None => format!("{flag},,"),
        };
        let client_nonce = nonces.text_nonce()?;
        if client_nonce.is_empty() || !client_nonce.bytes().all(is_nonce_char) {
            return Err(SaslError::Randomness(
                "nonce source produced a nonce SCRAM cannot carry".into(),
            ));
        }
        // The user name is escaped but not SASLprep'ed: RFC 5802 5.1 makes that a
        // SHOULD, and servers (Dovecot among them) look the name up exactly as sent.
        let client_first_bare =
            format!("n={},r={client_nonce}", gs2_saslname(&credentials.authcid));
        Ok(Scram {
            hash,
            name,
            gs2_header,
            channel_binding: if plus { channel_binding } else { None },
            client_first_bare,
            client_nonce,
            password: Secret::new(saslprep_password(credentials.secret.expose())),
            state: State::Start,
        })
    }

    fn client_first(&mut self) -> Response {
        self.state = State::SentFirst;
        Secret::new(format!("{}{}", self.gs2_header, self.client_first_bare).into_bytes())
    }

    fn client_final(&mut self, server_first: &[u8]) -> Result<Response, SaslError> {
        let name = self.name;
        let text = std::str::from_utf8(server_first)
            .map_err(|_| SaslError::malformed(name, "server-first-message is not UTF-8"))?;
        let first = parse_server_first(name, text)?;
        if !first.nonce.starts_with(&self.client_nonce)
            || first.nonce.len() == self.client_nonce.len()
        {
            return Err(SaslError::malformed(
                name,
                "server nonce does not extend the client nonce",
            ));
        }
        if first.iterations < MIN_ITERATIONS || first.iterations > MAX_ITERATIONS {
            return Err(SaslError::unsupported(
                name,
                format!(
                    "iteration count {} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}",
                    first.iterations
                ),
            ));
        }

        let mut cbind_input = self.gs2_header.as_bytes().to_vec();
        if let Some(cb) = &self.channel_binding {
            cbind_input.extend_from_slice(cb.data.expose());
        }
        let without_proof = format!("c={},r={}", B64.encode(&cbind_input), first.nonce);
        let auth_message = format!("{},{},{}", self.client_first_bare, text, without_proof);

        let keys = match self.hash {
            ScramHash::Sha1 => derive_sha1(
                self.password.expose().as_bytes(),
                &first.salt,
                first.iterations,
                auth_message.as_bytes(),
            ),
            ScramHash::Sha256 => derive_sha256(
                self.password.expose().as_bytes(),
                &first.salt,
                first.iterations,
                auth_message.as_bytes(),
            ),
        };
        self.state = State::SentFinal {
            server_signature: keys.server_signature,
        };
        Ok(Secret::new(
            format!(
                "{without_proof},p={}",
                B64.encode(keys.client_proof.expose())
            )
            .into_bytes(),
        ))
    }

    fn verify_final(&mut self, server_final: &[u8], expected: &[u8]) -> Result<(), SaslError> {
        let name = self.name;
        // server-final-message = (server-error / verifier) ["," extensions]
        let first_attr = server_final
            .split(|&b| b == b',')
            .next()
            .unwrap_or_default();
        if let Some(err) = first_attr.strip_prefix(b"e=") {
            return Err(SaslError::ServerError {
                mechanism: name,
                message: server_text(err),
            });
        }
        // Anything but a verifier that matches is a failed proof, not a mere syntax
        // error: an impostor that cannot compute `v=` would send exactly such garbage,
        // and the fallback policy must not treat it as a harmless glitch.
        let signature = first_attr
            .strip_prefix(b"v=")
            .and_then(|v| B64.decode(v).ok())
            .unwrap_or_default();
        if !signature.is_empty() && constant_time_eq(&signature, expected) {
            Ok(())
        } else {
            Err(SaslError::ServerProofMismatch { mechanism: name })
        }
    }
}

impl Mechanism for Scram {
    fn name(&self) -> &'static str {
        self.name
    }

    fn initial_response(&mut self) -> Result<Option<Response>, SaslError> {
        match self.state {
            State::Start => Ok(Some(self.client_first())),
            _ => Err(SaslError::UnexpectedChallenge {
                mechanism: self.name,
            }),
        }
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Response, SaslError> {
        check_size(self.name, challenge)?;
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Start if challenge.is_empty() => Ok(self.client_first()),
            State::SentFirst => self.client_final(challenge),
            State::SentFinal { server_signature } => {
                self.verify_final(challenge, server_signature.expose())?;
                self.state = State::Verified;
                // IMAP carries the server-final data in a continuation; the client
                // acknowledges it with an empty response (RFC 9051 6.2.2).
                Ok(Secret::new(Vec::new()))
            }
            _ => Err(SaslError::UnexpectedChallenge {
                mechanism: self.name,
            }),
        }
    }

    fn is_complete(&self) -> bool {
        matches!(self.state, State::Verified)
    }
}

/// RFC 5802 7: `printable = %x21-2B / %x2D-7E` (visible ASCII except `,`).
fn is_nonce_char(b: u8) -> bool {
    b.is_ascii_graphic() && b != b','
}

struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

fn parse_server_first<'a>(name: &'static str, text: &'a str) -> Result<ServerFirst<'a>, SaslError> {
    let mut attrs = text.split(',');
    let mut next = attrs.next();
    if next.is_some_and(|a| a.starts_with("m=")) {
        // RFC 5802 5.1: a mandatory extension the client does not know ends the
        // exchange.
        return Err(SaslError::unsupported(
            name,
            "mandatory extension (m=) requested",
        ));
    }
    let nonce = next
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| SaslError::malformed(name, "server-first-message lacks r="))?;
    if nonce.is_empty() || !nonce.bytes().all(is_nonce_char) {
        return Err(SaslError::malformed(
            name,
            "server nonce has invalid characters",
        ));
    }
    next = attrs.next();
    let salt_b64 = next
        .and_then(|a| a.strip_prefix("s="))
        .ok_or_else(|| SaslError::malformed(name, "server-first-message lacks s="))?;
    let salt = B64
        .decode(salt_b64)
        .map_err(|_| SaslError::malformed(name, "salt is not base64"))?;
    if salt.is_empty() {
        return Err(SaslError::malformed(name, "empty salt"));
    }
    next = attrs.next();
    let count = next
        .and_then(|a| a.strip_prefix("i="))
        .ok_or_else(|| SaslError::malformed(name, "server-first-message lacks i="))?;
    // Leading zeros or signs are not part of the grammar (`posit-number`).
    if count.is_empty() || count.starts_with('0') || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SaslError::malformed(
            name,
            "iteration count is not a positive number",
        ));
    }
    // More digits than fit in u32 means certainly above the cap.
    let iterations = count.parse::<u32>().unwrap_or(u32::MAX);
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

struct Keys {
    client_proof: Secret<Vec<u8>>,
    server_signature: Secret<Vec<u8>>,
}

/// RFC 5802 section 3: SaltedPassword, ClientKey, StoredKey, ClientProof, ServerKey,
/// ServerSignature. A macro rather than a generic function: the RustCrypto trait
/// bounds for "any HMAC-able digest" are long and say nothing a reader needs.
macro_rules! scram_derive {
    ($name:ident, $digest:ty) => {
        fn $name(password: &[u8], salt: &[u8], iterations: u32, auth_message: &[u8]) -> Keys {
            type H = Hmac<$digest>;
            let hmac = |key: &[u8], data: &[u8]| -> Vec<u8> {
                // HMAC takes keys of any length, so `new_from_slice` cannot fail.
                match <H as Mac>::new_from_slice(key) {
                    Ok(mut mac) => {
                        mac.update(data);
                        mac.finalize().into_bytes().to_vec()
                    }
                    Err(_) => Vec::new(),
                }
            };
            let mut salted = [0u8; <$digest as hmac::digest::OutputSizeUser>::OutputSize::USIZE];
            // Same invariant: the PRF accepts any key length, so this cannot fail.
            let _ = pbkdf2::pbkdf2::<H>(password, salt, iterations, &mut salted);
            let client_key = hmac(&salted, b"Client Key");
            let stored_key = <$digest as Digest>::digest(&client_key);
            let client_signature = hmac(&stored_key, auth_message);
            let client_proof: Vec<u8> = client_key
                .iter()
                .zip(client_signature.iter())
                .map(|(k, s)| k ^ s)
                .collect();
            let server_key = hmac(&salted, b"Server Key");
            let server_signature = hmac(&server_key, auth_message);
            Keys {
                client_proof: Secret::new(client_proof),
                server_signature: Secret::new(server_signature),
            }
        }
    };
}

scram_derive!(derive_sha1, sha1::Sha1);
scram_derive!(derive_sha256, sha2::Sha256);

/// Compares without an early exit, so the time taken does not reveal how much of a
/// forged signature was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nonce::FixedNonces;

    fn scram(hash: ScramHash, nonce: &str) -> Scram {
        let mut nonces = FixedNonces::new().with_text(nonce);
        Scram::new(
            hash,
            &Credentials::password("user", "pencil"),
            None,
            false,
            &mut nonces,
        )
        .unwrap()
    }

    fn text(r: Response) -> String {
        String::from_utf8(r.into_inner()).unwrap()
    }

    /// RFC 5802 section 5: the SCRAM-SHA-1 example exchange, byte for byte.
    #[test]
    fn rfc5802_section_5_example() {
        let mut m = scram(ScramHash::Sha1, "fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(
            text(m.initial_response().unwrap().unwrap()),
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
        );
        let fin = m
            .step(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            text(fin),
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert!(!m.is_complete());
        let last = m.step(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
        assert!(last.expose().is_empty());
        assert!(m.is_complete());
    }

    /// RFC 7677 section 3: the SCRAM-SHA-256 example exchange, byte for byte.
    #[test]
    fn rfc7677_section_3_example() {
        let mut m = scram(ScramHash::Sha256, "rOprNGfwEbeRWgbNEkqO");
        // Without SASL-IR the client-first answers the empty first challenge.
        assert_eq!(
            text(m.step(b"").unwrap()),
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        let fin = m
            .step(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            text(fin),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        m.step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(m.is_complete());
    }

    fn after_final(hash: ScramHash) -> Scram {
        let mut m = scram(hash, "fyko+d2lbbFgONRv9qkxdawL");
        m.initial_response().unwrap();
        m.step(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        m
    }

    /// A server that does not know the password cannot produce `v=`: rejected with
    /// the distinct server-proof error, and the mechanism never completes.
    #[test]
    fn fake_server_signature_is_rejected() {
        let mut m = after_final(ScramHash::Sha1);
        let err = m.step(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ_").unwrap_err();
        assert!(err.is_server_proof_failure(), "{err:?}");

        let mut m = after_final(ScramHash::Sha1);
        let err = m.step(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap_err();
        assert!(err.is_server_proof_failure(), "{err:?}");
        assert!(!m.is_complete());
        assert!(m.step(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").is_err());
    }

    #[test]
    fn server_error_and_missing_verifier() {
        let mut m = after_final(ScramHash::Sha1);
        let err = m.step(b"e=invalid-proof").unwrap_err();
        assert_eq!(
            err,
            SaslError::ServerError {
                mechanism: "SCRAM-SHA-1",
                message: "invalid-proof".into()
            }
        );
        for garbage in [&b""[..], b"x=1", b"v=", b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ"] {
            let mut m = after_final(ScramHash::Sha1);
            let err = m.step(garbage).unwrap_err();
            assert!(err.is_server_proof_failure(), "{garbage:?}: {err:?}");
            assert!(!m.is_complete());
        }
    }

    #[test]
    fn iteration_count_bounds() {
        let attempt = |count: &str| {
            let mut m = scram(ScramHash::Sha256, "abc");
            m.initial_response().unwrap();
            m.step(format!("r=abcdef,s=QSXCR+Q6sek8bf92,i={count}").as_bytes())
        };
        assert!(attempt("4096").is_ok());
        for refused in [
            "4095",
            "1000001",
            "99999999999999999999",
            "0",
            "-1",
            "",
            "04096",
        ] {
            let err = attempt(refused).unwrap_err();
            assert!(
                matches!(
                    err,
                    SaslError::Unsupported { .. } | SaslError::MalformedChallenge { .. }
                ),
                "i={refused}: {err:?}"
            );
        }
    }

    #[test]
    fn hostile_server_first_messages() {
        for bad in [
            &b"r=XYZ,s=QSXCR+Q6sek8bf92,i=4096"[..], // nonce not ours
            b"r=abc,s=QSXCR+Q6sek8bf92,i=4096",      // nonce not extended
            b"m=ext,r=abcdef,s=QSXCR+Q6sek8bf92,i=4096",
            b"r=abcdef,s=!!!,i=4096",
            b"r=abcdef,s=,i=4096",
            b"r=abcdef,i=4096",
            b"r=abcdef,s=QSXCR+Q6sek8bf92",
            b"s=QSXCR+Q6sek8bf92,r=abcdef,i=4096",
            b"\xff\xfe",
            b"",
        ] {
            let mut m = scram(ScramHash::Sha1, "abc");
            m.initial_response().unwrap();
            assert!(m.step(bad).is_err(), "{bad:?}");
            assert!(!m.is_complete());
        }
    }

    #[test]
    fn authzid_and_escaping() {
        let creds = Credentials::password("us=er,x", "p").with_authzid("ad,min");
        let mut nonces = FixedNonces::new().with_text("abc");
        let mut m = Scram::new(ScramHash::Sha256, &creds, None, false, &mut nonces).unwrap();
        assert_eq!(
            text(m.initial_response().unwrap().unwrap()),
            "n,a=ad=2Cmin,n=us=3Der=2Cx,r=abc"
        );
    }

    #[test]
    fn channel_binding_flags() {
        let cb = ChannelBinding {
            kind: "tls-exporter".into(),
            data: Secret::new(vec![1, 2, 3]),
        };
        let creds = Credentials::password("user", "pencil");
        // Binding available, plain SCRAM chosen: the `y` flag.
        let mut n = FixedNonces::new().with_text("abc");
        let mut m = Scram::new(ScramHash::Sha256, &creds, Some(cb.clone()), false, &mut n).unwrap();
        assert_eq!(
            text(m.initial_response().unwrap().unwrap()),
            "y,,n=user,r=abc"
        );
        let fin = text(m.step(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=4096").unwrap());
        assert!(fin.starts_with("c=eSws,"), "{fin}");

        // -PLUS: the binding data goes into c=.
        let mut n = FixedNonces::new().with_text("abc");
        let mut m = Scram::new(ScramHash::Sha256, &creds, Some(cb), true, &mut n).unwrap();
        assert_eq!(m.name(), "SCRAM-SHA-256-PLUS");
        assert_eq!(
            text(m.initial_response().unwrap().unwrap()),
            "p=tls-exporter,,n=user,r=abc"
        );
        let fin = text(m.step(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=4096").unwrap());
        let expected_c = B64.encode(b"p=tls-exporter,,\x01\x02\x03");
        assert!(fin.starts_with(&format!("c={expected_c},")), "{fin}");

        // -PLUS without data cannot be built.
        let mut n = FixedNonces::new().with_text("abc");
        assert!(Scram::new(ScramHash::Sha1, &creds, None, true, &mut n).is_err());
    }
}
