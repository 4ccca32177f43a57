//! DIGEST-MD5 (RFC 2831; historic since RFC 6331, still offered by servers and used by
//! Outlook, seed E0001). Authentication only (`qop=auth`): no integrity or
//! confidentiality layer is negotiated, since IMAP runs inside TLS for that.
//!
//! Step one answers the server's digest-challenge with a digest-response; step two
//! checks the server's `rspauth`, which proves the server knows the password. A
//! wrong or missing `rspauth` is [`SaslError::ServerProofMismatch`].

use md5::{Digest, Md5};

use super::{check_size, hex};
use super::{Mechanism, Response};
use crate::context::ClientContext;
use crate::credentials::Credentials;
use crate::error::SaslError;
use crate::nonce::NonceSource;
use crate::secret::Secret;

const NAME: &str = "DIGEST-MD5";

/// Client side of DIGEST-MD5.
#[derive(Debug)]
pub struct DigestMd5 {
    user: String,
    authzid: Option<String>,
    password: Secret<String>,
    digest_uri: String,
    configured_realm: Option<String>,
    utf8_hash_quirk: bool,
    cnonce: String,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    /// Digest-response sent; the expected `rspauth` value is kept.
    Responded {
        rspauth: Secret<String>,
    },
    Verified,
    Failed,
}

impl DigestMd5 {
    /// Prepares the mechanism; the client nonce is drawn now. The `digest-uri` is
    /// `<service>/<host>` from the context (RFC 2831 2.1.2, `imap/host`).
    pub fn new(
        credentials: &Credentials,
        context: &ClientContext,
        nonces: &mut dyn NonceSource,
    ) -> Result<Self, SaslError> {
        if context.host.is_empty() || !context.host.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SaslError::credentials(
                "DIGEST-MD5 needs the server host name",
            ));
        }
        if credentials.authcid.is_empty() {
            return Err(SaslError::credentials("DIGEST-MD5 needs a user name"));
        }
        let cnonce = nonces.text_nonce()?;
        if cnonce.is_empty()
            || !cnonce
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b',')
        {
            return Err(SaslError::Randomness(
                "nonce source produced a cnonce DIGEST-MD5 cannot carry".into(),
            ));
        }
        Ok(DigestMd5 {
            user: credentials.authcid.clone(),
            authzid: credentials.authzid().map(str::to_owned),
            password: credentials.secret.clone(),
            digest_uri: format!("{}/{}", context.service, context.host),
            configured_realm: context.realm.clone(),
            utf8_hash_quirk: context.digest_md5_utf8_hash,
            cnonce,
            state: State::Start,
        })
    }

    /// Answers the digest-challenge (RFC 2831 2.1.2): the values on the wire, A1's hash, the
    /// `response` the server checks, and the `rspauth` it must send back.
    fn respond(&mut self, challenge: &[u8]) -> Result<Response, SaslError> {
        let ch = parse_challenge(challenge)?;
        let utf8 = ch.charset_utf8;

        // Realm: the user's choice wins; else the first the server offered; else none
        // (A1 then hashes an empty realm, RFC 2831 2.1.2.1).
        let realm: Option<Vec<u8>> = match &self.configured_realm {
            Some(r) => Some(r.as_bytes().to_vec()),
            None => ch.realms.first().cloned(),
        };
        let user_wire = on_wire(&self.user, utf8)?;
        let authzid_wire = match &self.authzid {
            Some(a) => Some(on_wire(a, utf8)?),
            None => None,
        };
        let ha1 = self.ha1(
            &ch,
            realm.as_deref().unwrap_or_default(),
            authzid_wire.as_deref(),
        )?;

        let kd = |a2: &[u8]| -> String {
            let mut h = Md5::new();
            h.update(ha1.expose().as_bytes());
            h.update(b":");
            h.update(&ch.nonce);
            h.update(format!(":{NC}:{}:auth:", self.cnonce).as_bytes());
            h.update(hex(&Md5::digest(a2)).as_bytes());
            hex(&h.finalize())
        };
        let response = kd(format!("AUTHENTICATE:{}", self.digest_uri).as_bytes());
        let rspauth = kd(format!(":{}", self.digest_uri).as_bytes());

        let out = self.digest_response(
            utf8,
            &user_wire,
            realm.as_deref(),
            &ch.nonce,
            &response,
            authzid_wire.as_deref(),
        );
        self.state = State::Responded {
            rspauth: Secret::new(rspauth),
        };
        Ok(Secret::new(out))
    }

    /// `HEX(H(A1))` of RFC 2831 2.1.2.1: user, realm and password hashed in the charset the
    /// RFC asks for (or as UTF-8 for a server known to skip the conversion, see
    /// [`crate::quirks`]), then the nonces and the authorisation identity.
    fn ha1(
        &self,
        ch: &Challenge,
        realm: &[u8],
        authzid_wire: Option<&[u8]>,
    ) -> Result<Secret<String>, SaslError> {
        let utf8 = ch.charset_utf8;
        // RFC 2831 2.1.2.1: with charset=utf-8, values representable in ISO 8859-1
        // are hashed in that encoding (unless the server is known to skip that step).
        let quirk = self.utf8_hash_quirk;
        let for_hash = |s: &str| -> Vec<u8> {
            if utf8 && quirk {
                s.as_bytes().to_vec()
            } else if utf8 {
                latin1(s).unwrap_or_else(|| s.as_bytes().to_vec())
            } else {
                latin1(s).unwrap_or_default()
            }
        };
        let realm_hash = match std::str::from_utf8(realm) {
            Ok(r) if utf8 => for_hash(r),
            _ => realm.to_vec(),
        };
        let password_hash = if utf8 {
            for_hash(self.password.expose())
        } else {
            latin1(self.password.expose()).ok_or_else(|| {
                SaslError::credentials(
                    "DIGEST-MD5 password is not ISO 8859-1 and UTF-8 is not allowed",
                )
            })?
        };

        let mut inner = Md5::new();
        inner.update(for_hash(&self.user));
        inner.update(b":");
        inner.update(&realm_hash);
        inner.update(b":");
        inner.update(&password_hash);
        let mut a1 = inner.finalize().to_vec();
        a1.extend_from_slice(b":");
        a1.extend_from_slice(&ch.nonce);
        a1.extend_from_slice(b":");
        a1.extend_from_slice(self.cnonce.as_bytes());
        if let Some(a) = authzid_wire {
            a1.extend_from_slice(b":");
            a1.extend_from_slice(a);
        }
        Ok(Secret::new(hex(&Md5::digest(&a1))))
    }

    /// The digest-response's text (RFC 2831 2.1.2), `qop=auth` only.
    fn digest_response(
        &self,
        utf8: bool,
        user_wire: &[u8],
        realm: Option<&[u8]>,
        nonce: &[u8],
        response: &str,
        authzid_wire: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        if utf8 {
            out.extend_from_slice(b"charset=utf-8,");
        }
        out.extend_from_slice(b"username=");
        push_quoted(&mut out, user_wire);
        if let Some(r) = realm {
            out.extend_from_slice(b",realm=");
            push_quoted(&mut out, r);
        }
        out.extend_from_slice(b",nonce=");
        push_quoted(&mut out, nonce);
        out.extend_from_slice(
            format!(",cnonce=\"{}\",nc={NC},qop=auth,digest-uri=", self.cnonce).as_bytes(),
        );
        push_quoted(&mut out, self.digest_uri.as_bytes());
        out.extend_from_slice(format!(",response={response}").as_bytes());
        if let Some(a) = authzid_wire {
            out.extend_from_slice(b",authzid=");
            push_quoted(&mut out, a);
        }
        out
    }
}

/// The nonce count of the one response this client sends (RFC 2831 2.1.2, `nc-value`).
const NC: &str = "00000001";

/// A value as it goes on the wire: without `charset=utf-8` every value is ISO 8859-1.
fn on_wire(s: &str, utf8: bool) -> Result<Vec<u8>, SaslError> {
    if utf8 {
        Ok(s.as_bytes().to_vec())
    } else {
        latin1(s).ok_or_else(|| {
            SaslError::credentials(
                "DIGEST-MD5 server did not allow UTF-8 and a value is not ISO 8859-1",
            )
        })
    }
}

impl Mechanism for DigestMd5 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn initial_response(&mut self) -> Result<Option<Response>, SaslError> {
        Ok(None)
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Response, SaslError> {
        check_size(NAME, challenge)?;
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Start => self.respond(challenge),
            State::Responded { rspauth } => {
                // Whatever is not a matching rspauth counts as a failed proof: an
                // impostor would send exactly such a reply.
                let got = parse_directives(challenge)
                    .ok()
                    .and_then(|d| {
                        d.into_iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("rspauth"))
                            .map(|(_, v)| v)
                    })
                    .unwrap_or_default();
                let expected = rspauth.expose().as_bytes();
                if got.len() == expected.len()
                    && got
                        .iter()
                        .zip(expected)
                        .fold(0u8, |acc, (a, b)| acc | (a.to_ascii_lowercase() ^ b))
                        == 0
                {
                    self.state = State::Verified;
                    Ok(Secret::new(Vec::new()))
                } else {
                    Err(SaslError::ServerProofMismatch { mechanism: NAME })
                }
            }
            State::Verified | State::Failed => {
                Err(SaslError::UnexpectedChallenge { mechanism: NAME })
            }
        }
    }

    fn is_complete(&self) -> bool {
        matches!(self.state, State::Verified)
    }
}

/// The parts of a digest-challenge this client uses.
struct Challenge {
    realms: Vec<Vec<u8>>,
    nonce: Vec<u8>,
    charset_utf8: bool,
}

fn parse_challenge(challenge: &[u8]) -> Result<Challenge, SaslError> {
    let directives = parse_directives(challenge)?;
    let mut realms = Vec::new();
    let mut nonce = None;
    let mut qop = None;
    let mut charset = None;
    let mut algorithm = None;
    for (key, value) in directives {
        let once = |slot: &mut Option<Vec<u8>>, value: Vec<u8>| -> Result<(), SaslError> {
            if slot.replace(value).is_some() {
                return Err(SaslError::malformed(
                    NAME,
                    format!("directive {key} appears twice"),
                ));
            }
            Ok(())
        };
        match key.to_ascii_lowercase().as_str() {
            "realm" => realms.push(value),
            "nonce" => once(&mut nonce, value)?,
            "qop" => once(&mut qop, value)?,
            "charset" => once(&mut charset, value)?,
            "algorithm" => once(&mut algorithm, value)?,
            // maxbuf, stale, cipher and future directives do not affect qop=auth.
            _ => {}
        }
    }
    let nonce = nonce.ok_or_else(|| SaslError::malformed(NAME, "no nonce"))?;
    if nonce.is_empty() {
        return Err(SaslError::malformed(NAME, "empty nonce"));
    }
    match algorithm {
        Some(a) if a.eq_ignore_ascii_case(b"md5-sess") => {}
        Some(_) => {
            return Err(SaslError::unsupported(
                NAME,
                "algorithm other than md5-sess",
            ))
        }
        None => return Err(SaslError::malformed(NAME, "no algorithm directive")),
    }
    // qop-options is a quoted list; absent means "auth" (RFC 2831 2.1.1).
    if let Some(q) = qop {
        let offers_auth = q
            .split(|&b| b == b',')
            .any(|o| o.trim_ascii().eq_ignore_ascii_case(b"auth"));
        if !offers_auth {
            return Err(SaslError::unsupported(
                NAME,
                "server does not offer qop=auth",
            ));
        }
    }
    let charset_utf8 = match charset {
        Some(c) if c.eq_ignore_ascii_case(b"utf-8") => true,
        Some(_) => return Err(SaslError::malformed(NAME, "charset other than utf-8")),
        None => false,
    };
    Ok(Challenge {
        realms,
        nonce,
        charset_utf8,
    })
}

/// Parses `1#( name "=" ( token | quoted-string ) )` with optional blanks and empty
/// list elements (RFC 2831 7.1's `#rule`). Values are unescaped; names are ASCII.
fn parse_directives(input: &[u8]) -> Result<Vec<(String, Vec<u8>)>, SaslError> {
    let mut out = Vec::new();
    let mut i = 0;
    let skip_lws = |i: &mut usize| {
        while *i < input.len() && matches!(input[*i], b' ' | b'\t' | b'\r' | b'\n') {
            *i += 1;
        }
    };
    loop {
        // Empty elements and separators.
        loop {
            skip_lws(&mut i);
            if i < input.len() && input[i] == b',' {
                i += 1;
            } else {
                break;
            }
        }
        if i >= input.len() {
            break;
        }
        let start = i;
        while i < input.len() && is_token_char(input[i]) {
            i += 1;
        }
        if i == start {
            return Err(SaslError::malformed(NAME, "expected a directive name"));
        }
        // Token characters are ASCII, so this conversion is lossless.
        let key = String::from_utf8_lossy(&input[start..i]).into_owned();
        skip_lws(&mut i);
        if i >= input.len() || input[i] != b'=' {
            return Err(SaslError::malformed(
                NAME,
                format!("directive {key} has no value"),
            ));
        }
        i += 1;
        skip_lws(&mut i);
        let value = if i < input.len() && input[i] == b'"' {
            quoted_string(input, &mut i)?
        } else {
            let vstart = i;
            while i < input.len() && is_token_char(input[i]) {
                i += 1;
            }
            input[vstart..i].to_vec()
        };
        out.push((key, value));
        skip_lws(&mut i);
        match input.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => {
                return Err(SaslError::malformed(
                    NAME,
                    "expected ',' between directives",
                ))
            }
        }
    }
    Ok(out)
}

/// The value of a `quoted-string` (RFC 2616 2.2) starting at `input[*i]`, its opening quote,
/// unescaped; `*i` ends after the closing quote.
fn quoted_string(input: &[u8], i: &mut usize) -> Result<Vec<u8>, SaslError> {
    let mut value = Vec::new();
    *i += 1;
    loop {
        match input.get(*i) {
            None => return Err(SaslError::malformed(NAME, "unterminated quoted string")),
            Some(b'"') => {
                *i += 1;
                return Ok(value);
            }
            Some(b'\\') => match input.get(*i + 1) {
                Some(&c) => {
                    value.push(c);
                    *i += 2;
                }
                None => return Err(SaslError::malformed(NAME, "unterminated quoted string")),
            },
            Some(&c) => {
                value.push(c);
                *i += 1;
            }
        }
    }
}

/// RFC 2616 2.2 `token`: visible ASCII except separators.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

fn push_quoted(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'"');
    for &b in value {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// ISO 8859-1 bytes of `s`, or `None` if a character is outside it.
fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nonce::FixedNonces;

    fn chris(host: &str, service: &str, cnonce: &str) -> DigestMd5 {
        let mut ctx = ClientContext::imap(host, 143);
        ctx.service = service.into();
        let mut nonces = FixedNonces::new().with_text(cnonce);
        DigestMd5::new(&Credentials::password("chris", "secret"), &ctx, &mut nonces).unwrap()
    }

    /// RFC 2831 section 4, the IMAP example, byte for byte.
    #[test]
    fn rfc2831_section_4_imap_example() {
        let mut m = chris("elwood.innosoft.com", "imap", "OA6MHXh6VqTrRk");
        assert!(m.initial_response().unwrap().is_none());
        let r = m
            .step(
                b"realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",qop=\"auth\",\
                  algorithm=md5-sess,charset=utf-8",
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(r.into_inner()).unwrap(),
            "charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\",\
             nonce=\"OA6MG9tEQGm2hh\",cnonce=\"OA6MHXh6VqTrRk\",nc=00000001,qop=auth,\
             digest-uri=\"imap/elwood.innosoft.com\",\
             response=d388dad90d4bbd760a152321f2143af7"
        );
        assert!(!m.is_complete());
        let last = m.step(b"rspauth=ea40f60335c427b5527b84dbabcdfffd").unwrap();
        assert!(last.expose().is_empty());
        assert!(m.is_complete());
    }

    /// RFC 2831 section 4, the ACAP example (a second service name and nonce pair).
    #[test]
    fn rfc2831_section_4_acap_example() {
        let mut m = chris("elwood.innosoft.com", "acap", "OA9BSuZWMSpW8m");
        let r = m
            .step(
                b"realm=\"elwood.innosoft.com\",nonce=\"OA9BSXrbuRhWay\",qop=\"auth\",\
                  algorithm=md5-sess,charset=utf-8",
            )
            .unwrap();
        let text = String::from_utf8(r.into_inner()).unwrap();
        assert!(
            text.contains("response=6084c6db3fede7352c551284490fd0fc"),
            "{text}"
        );
        m.step(b"rspauth=2f0b3d7c3c2e486600ef710726aa2eae").unwrap();
        assert!(m.is_complete());
    }

    const IMAP_CHALLENGE: &[u8] = b"realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",\
        qop=\"auth\",algorithm=md5-sess,charset=utf-8";

    /// A server that does not know the password sends a wrong rspauth, or none.
    #[test]
    fn wrong_or_missing_rspauth_is_a_server_proof_failure() {
        for bad in [
            &b"rspauth=ea40f60335c427b5527b84dbabcdfffe"[..],
            b"rspauth=",
            b"",
            b"nonce=\"x\"",
            b"rspauth=\"unterminated",
        ] {
            let mut m = chris("elwood.innosoft.com", "imap", "OA6MHXh6VqTrRk");
            m.step(IMAP_CHALLENGE).unwrap();
            let err = m.step(bad).unwrap_err();
            assert!(err.is_server_proof_failure(), "{bad:?}: {err:?}");
            assert!(!m.is_complete());
        }
        // Upper-case hex from the server is the same proof.
        let mut m = chris("elwood.innosoft.com", "imap", "OA6MHXh6VqTrRk");
        m.step(IMAP_CHALLENGE).unwrap();
        m.step(b"rspauth=EA40F60335C427B5527B84DBABCDFFFD").unwrap();
        assert!(m.is_complete());
    }

    #[test]
    fn hostile_challenges_are_refused() {
        for bad in [
            &b""[..],
            b"nonce=\"a\"",                                      // no algorithm
            b"algorithm=md5-sess",                               // no nonce
            b"nonce=\"a\",nonce=\"b\",algorithm=md5-sess",       // duplicate
            b"nonce=\"a\",algorithm=md5",                        // wrong algorithm
            b"nonce=\"a\",algorithm=md5-sess,qop=\"auth-conf\"", // no auth
            b"nonce=\"a\",algorithm=md5-sess,charset=latin1",
            b"nonce=\"a,algorithm=md5-sess",
            b"nonce=\"a\" algorithm=md5-sess",
            b"=x",
            b"nonce",
        ] {
            let mut m = chris("h", "imap", "c");
            assert!(m.step(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn realms_quoting_and_authzid() {
        // No realm offered: none sent. Empty list elements and blanks are tolerated.
        let mut m = chris("h", "imap", "c");
        let r = m
            .step(b" , nonce = \"n\\\"x\" ,, algorithm=md5-sess ,")
            .unwrap();
        let text = String::from_utf8(r.into_inner()).unwrap();
        assert!(!text.contains("realm="), "{text}");
        assert!(!text.contains("charset="), "{text}");
        assert!(text.contains("nonce=\"n\\\"x\""), "{text}");

        // Several realms: the first is chosen unless one is configured.
        let mut ctx = ClientContext::imap("h", 143);
        ctx.realm = Some("b.example".into());
        let creds = Credentials::password("chris", "secret").with_authzid("admin");
        let mut n = FixedNonces::new().with_text("c");
        let mut m = DigestMd5::new(&creds, &ctx, &mut n).unwrap();
        let r = m
            .step(b"realm=\"a.example\",realm=\"b.example\",nonce=\"n\",algorithm=md5-sess")
            .unwrap();
        let text = String::from_utf8(r.into_inner()).unwrap();
        assert!(text.contains("realm=\"b.example\""), "{text}");
        assert!(text.ends_with(",authzid=\"admin\""), "{text}");
    }

    /// RFC 2831 2.1.2.1 hashes "straße"/"pässwörd" in ISO 8859-1; the Dovecot quirk
    /// hashes the UTF-8 bytes. The two responses differ, and only the UTF-8 one matches
    /// a digest computed over the UTF-8 bytes.
    #[test]
    fn quirk_dovecot_hashes_utf8() {
        let challenge = b"nonce=\"n\",algorithm=md5-sess,charset=utf-8";
        let run = |quirk: bool| {
            let mut ctx = ClientContext::imap("h", 143);
            ctx.digest_md5_utf8_hash = quirk;
            let mut n = FixedNonces::new().with_text("c");
            let creds = Credentials::password("straße", "pässwörd");
            let mut m = DigestMd5::new(&creds, &ctx, &mut n).unwrap();
            String::from_utf8(m.step(challenge).unwrap().into_inner()).unwrap()
        };
        let response_of = |text: &str| text.rsplit("response=").next().unwrap().to_owned();
        let rfc = response_of(&run(false));
        let dovecot = response_of(&run(true));
        assert_ne!(rfc, dovecot);

        let mut a1 = Md5::digest("straße::pässwörd".as_bytes()).to_vec();
        a1.extend_from_slice(b":n:c");
        let ha1 = hex(&Md5::digest(&a1));
        let ha2 = hex(&Md5::digest(b"AUTHENTICATE:imap/h"));
        let expected = hex(&Md5::digest(format!("{ha1}:n:00000001:c:auth:{ha2}")));
        assert_eq!(dovecot, expected);

        let mut a1 = Md5::digest(b"stra\xdfe::p\xe4ssw\xf6rd").to_vec();
        a1.extend_from_slice(b":n:c");
        let ha1 = hex(&Md5::digest(&a1));
        let expected = hex(&Md5::digest(format!("{ha1}:n:00000001:c:auth:{ha2}")));
        assert_eq!(rfc, expected);
    }

    #[test]
    fn non_latin1_user_without_utf8_charset_is_refused() {
        let mut n = FixedNonces::new().with_text("c");
        let mut m = DigestMd5::new(
            &Credentials::password("用户", "secret"),
            &ClientContext::imap("h", 143),
            &mut n,
        )
        .unwrap();
        assert!(m.step(b"nonce=\"n\",algorithm=md5-sess").is_err());
    }
}
