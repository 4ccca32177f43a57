//! NTLM (MS-NLMP) over SASL, as Outlook and Exchange speak it (seed E0001): the client
//! sends NEGOTIATE, the server answers with CHALLENGE, the client sends AUTHENTICATE
//! carrying an NTLMv2 response.
//!
//! Only NTLMv2 is implemented. LM and NTLMv1 responses are crackable from a capture
//! in minutes, so they are never computed, whatever the server's flags ask for. No
//! signing or sealing is negotiated (IMAP relies on TLS), hence no key exchange.
//!
//! Every length and offset in the server's CHALLENGE is checked against the message
//! before use; nothing is allocated from a length the server declares.

use hmac::{Hmac, Mac};
use md4::{Digest, Md4};
use md5::Md5;

use super::check_size;
use super::{Mechanism, Response};
use crate::context::ClientContext;
use crate::credentials::Credentials;
use crate::error::SaslError;
use crate::nonce::NonceSource;
use crate::secret::Secret;

const NAME: &str = "NTLM";
const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

// MS-NLMP 2.2.2.5 NEGOTIATE flags.
const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
const NEGOTIATE_OEM: u32 = 0x0000_0002;
const REQUEST_TARGET: u32 = 0x0000_0004;
const NEGOTIATE_NTLM: u32 = 0x0000_0200;
const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
const NEGOTIATE_128: u32 = 0x2000_0000;
const NEGOTIATE_56: u32 = 0x8000_0000;

/// What the client asks for. Extended session security is what makes servers accept
/// NTLMv2-style exchanges; no SIGN/SEAL/KEY_EXCH, since TLS protects the session.
const CLIENT_FLAGS: u32 = NEGOTIATE_UNICODE
    | NEGOTIATE_OEM
    | REQUEST_TARGET
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_128
    | NEGOTIATE_56;

// MS-NLMP 2.2.2.1 AV_PAIR ids.
const MSV_AV_EOL: u16 = 0;
const MSV_AV_FLAGS: u16 = 6;
const MSV_AV_TIMESTAMP: u16 = 7;
/// MsvAvFlags bit: the AUTHENTICATE message carries a MIC.
const AV_FLAG_MIC_PRESENT: u32 = 0x0000_0002;

/// Offset of the MIC in an AUTHENTICATE message that has the Version field.
const MIC_OFFSET: usize = 72;

/// Client side of NTLM.
#[derive(Debug)]
pub struct Ntlm {
    user: String,
    domain: String,
    workstation: String,
    password: Secret<String>,
    client_challenge: [u8; 8],
    filetime: u64,
    negotiate: Vec<u8>,
    state: State,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Start,
    SentNegotiate,
    SentAuthenticate,
    Failed,
}

impl Ntlm {
    /// Prepares the mechanism and draws the 8-byte client challenge.
    ///
    /// The domain is the context's `ntlm_domain`, else the part before `\` in a
    /// `DOMAIN\user` name, else empty.
    pub fn new(
        credentials: &Credentials,
        context: &ClientContext,
        nonces: &mut dyn NonceSource,
    ) -> Result<Self, SaslError> {
        let (domain, user) = match (&context.ntlm_domain, credentials.authcid.split_once('\\')) {
            (Some(d), _) => (d.clone(), credentials.authcid.clone()),
            (None, Some((d, u))) => (d.to_owned(), u.to_owned()),
            (None, None) => (String::new(), credentials.authcid.clone()),
        };
        if user.is_empty() {
            return Err(SaslError::credentials("NTLM needs a user name"));
        }
        let mut client_challenge = [0u8; 8];
        nonces.fill_bytes(&mut client_challenge)?;
        Ok(Ntlm {
            user,
            domain,
            workstation: context.ntlm_workstation.clone().unwrap_or_default(),
            password: credentials.secret.clone(),
            client_challenge,
            filetime: context.filetime,
            negotiate: negotiate_message(),
            state: State::Start,
        })
    }

    fn authenticate(&self, challenge_bytes: &[u8]) -> Result<Vec<u8>, SaslError> {
        let challenge = Challenge::parse(challenge_bytes)?;
        let unicode =
            challenge.flags & NEGOTIATE_UNICODE != 0 || challenge.flags & NEGOTIATE_OEM == 0;
        let encode = |s: &str| -> Result<Vec<u8>, SaslError> {
            if unicode {
                Ok(utf16le(s))
            } else if s.is_ascii() {
                // The OEM code page is unknown to the client; ASCII is the part every
                // code page shares.
                Ok(s.as_bytes().to_vec())
            } else {
                Err(SaslError::unsupported(
                    NAME,
                    "server refuses Unicode and a name is not ASCII",
                ))
            }
        };
        let domain = encode(&self.domain)?;
        let user = encode(&self.user)?;
        let workstation = encode(&self.workstation)?;

        // The client's copy of the target info. With a server timestamp, the client
        // uses that time and announces a MIC (MS-NLMP 3.1.5.1.2).
        let with_mic = challenge.timestamp.is_some();
        let time = challenge.timestamp.unwrap_or(self.filetime);
        let target_info = client_target_info(&challenge.av_pairs, with_mic);

        let response_key = ntowf_v2(self.password.expose(), &self.user, &self.domain);
        let nt = ntlmv2_response(
            &response_key,
            &challenge.server_challenge,
            &self.client_challenge,
            time,
            &target_info,
        );
        let lm = if with_mic {
            // MS-NLMP 3.1.5.1.2: with a server timestamp, LmChallengeResponse is Z(24).
            vec![0u8; 24]
        } else {
            lmv2_response(
                &response_key,
                &challenge.server_challenge,
                &self.client_challenge,
            )
        };
        let session_base_key = hmac_md5(&response_key, &[&nt[..16]]);

        let charset = if unicode {
            NEGOTIATE_UNICODE
        } else {
            NEGOTIATE_OEM
        };
        let flags =
            (CLIENT_FLAGS & challenge.flags & !(NEGOTIATE_UNICODE | NEGOTIATE_OEM)) | charset;
        let mut message = authenticate_message(AuthenticateFields {
            lm: &lm,
            nt: &nt,
            domain: &domain,
            user: &user,
            workstation: &workstation,
            flags,
            with_mic,
        });
        if with_mic {
            // MIC over all three messages, with the MIC field zero (MS-NLMP 3.1.5.1.2);
            // without key exchange the exported session key is the session base key.
            let mic = hmac_md5(
                &session_base_key,
                &[&self.negotiate, challenge_bytes, &message],
            );
            message[MIC_OFFSET..MIC_OFFSET + 16].copy_from_slice(&mic);
        }
        Ok(message)
    }
}

impl Mechanism for Ntlm {
    fn name(&self) -> &'static str {
        NAME
    }

    fn initial_response(&mut self) -> Result<Option<Response>, SaslError> {
        if self.state != State::Start {
            return Err(SaslError::UnexpectedChallenge { mechanism: NAME });
        }
        self.state = State::SentNegotiate;
        Ok(Some(Secret::new(self.negotiate.clone())))
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Response, SaslError> {
        check_size(NAME, challenge)?;
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Start if challenge.is_empty() => {
                self.state = State::SentNegotiate;
                Ok(Secret::new(self.negotiate.clone()))
            }
            State::SentNegotiate => {
                let m = self.authenticate(challenge)?;
                self.state = State::SentAuthenticate;
                Ok(Secret::new(m))
            }
            _ => Err(SaslError::UnexpectedChallenge { mechanism: NAME }),
        }
    }

    fn is_complete(&self) -> bool {
        self.state == State::SentAuthenticate
    }
}

/// MS-NLMP 2.2.1.1: signature, type 1, flags, empty domain and workstation fields.
fn negotiate_message() -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&CLIENT_FLAGS.to_le_bytes());
    m.extend_from_slice(&[0u8; 16]);
    m
}

/// The CHALLENGE_MESSAGE fields the client uses (MS-NLMP 2.2.1.2).
#[derive(Debug)]
struct Challenge {
    flags: u32,
    server_challenge: [u8; 8],
    /// AV pairs without the terminating MsvAvEOL, as (id, value) slices' copies.
    av_pairs: Vec<(u16, Vec<u8>)>,
    timestamp: Option<u64>,
}

impl Challenge {
    fn parse(m: &[u8]) -> Result<Self, SaslError> {
        let bad = |why: &str| SaslError::malformed(NAME, why);
        if m.len() < 32 {
            return Err(bad("CHALLENGE message is too short"));
        }
        if &m[..8] != SIGNATURE {
            return Err(bad("missing NTLMSSP signature"));
        }
        if read_u32(m, 8) != Some(2) {
            return Err(bad("not a CHALLENGE message"));
        }
        let flags = read_u32(m, 20).ok_or_else(|| bad("truncated flags"))?;
        let mut server_challenge = [0u8; 8];
        server_challenge.copy_from_slice(&m[24..32]);

        let mut av_pairs = Vec::new();
        let mut timestamp = None;
        // TargetInfoFields sit at 40..48 when the server sends target information.
        if flags & NEGOTIATE_TARGET_INFO != 0 && m.len() >= 48 {
            let info = field(m, 40).ok_or_else(|| bad("target info out of bounds"))?;
            let mut rest = info;
            loop {
                if rest.len() < 4 {
                    return Err(bad("target info ends without MsvAvEOL"));
                }
                let id = u16::from_le_bytes([rest[0], rest[1]]);
                let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
                let value = rest
                    .get(4..4 + len)
                    .ok_or_else(|| bad("AV pair longer than target info"))?;
                if id == MSV_AV_EOL {
                    break;
                }
                if id == MSV_AV_TIMESTAMP {
                    let bytes: [u8; 8] = value
                        .try_into()
                        .map_err(|_| bad("MsvAvTimestamp is not 8 bytes"))?;
                    timestamp = Some(u64::from_le_bytes(bytes));
                }
                av_pairs.push((id, value.to_vec()));
                rest = &rest[4 + len..];
            }
        }
        Ok(Challenge {
            flags,
            server_challenge,
            av_pairs,
            timestamp,
        })
    }
}

fn read_u32(m: &[u8], at: usize) -> Option<u32> {
    let b = m.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// A security buffer (length, max length, offset) at `at`, resolved within `m`.
fn field(m: &[u8], at: usize) -> Option<&[u8]> {
    let len = usize::from(u16::from_le_bytes([*m.get(at)?, *m.get(at + 1)?]));
    let offset = usize::try_from(read_u32(m, at + 4)?).ok()?;
    m.get(offset..offset.checked_add(len)?)
}

/// The server's AV pairs, with MsvAvFlags carrying "MIC present" when a MIC is sent,
/// and the terminating MsvAvEOL.
fn client_target_info(server_pairs: &[(u16, Vec<u8>)], with_mic: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut flags_seen = false;
    let push = |out: &mut Vec<u8>, id: u16, value: &[u8]| {
        out.extend_from_slice(&id.to_le_bytes());
        // Values come from a u16-length field of the server, so they fit.
        out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_le_bytes());
        out.extend_from_slice(value);
    };
    for (id, value) in server_pairs {
        if *id == MSV_AV_FLAGS && with_mic {
            flags_seen = true;
            let old = value
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .unwrap_or(0);
            push(
                &mut out,
                MSV_AV_FLAGS,
                &(old | AV_FLAG_MIC_PRESENT).to_le_bytes(),
            );
        } else {
            push(&mut out, *id, value);
        }
    }
    if with_mic && !flags_seen {
        push(&mut out, MSV_AV_FLAGS, &AV_FLAG_MIC_PRESENT.to_le_bytes());
    }
    push(&mut out, MSV_AV_EOL, &[]);
    out
}

struct AuthenticateFields<'a> {
    lm: &'a [u8],
    nt: &'a [u8],
    domain: &'a [u8],
    user: &'a [u8],
    workstation: &'a [u8],
    flags: u32,
    with_mic: bool,
}

/// MS-NLMP 2.2.1.3. With a MIC the header has the (zeroed) Version and the MIC slot,
/// 88 bytes; without, the classic 64-byte header.
fn authenticate_message(f: AuthenticateFields<'_>) -> Vec<u8> {
    let header = if f.with_mic { 88 } else { 64 };
    let payloads: [&[u8]; 5] = [f.lm, f.nt, f.domain, f.user, f.workstation];
    let total = header + payloads.iter().map(|p| p.len()).sum::<usize>();
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&3u32.to_le_bytes());
    // Field order in the header: Lm, Nt, Domain, User, Workstation, session key.
    let mut offset = header;
    for p in payloads {
        // Every payload is bounded by the 16 KiB challenge limit or by user input of
        // plausible size; saturate rather than wrap if not.
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&u32::try_from(offset).unwrap_or(u32::MAX).to_le_bytes());
        offset += p.len();
    }
    // EncryptedRandomSessionKey: empty, no key exchange.
    m.extend_from_slice(&0u16.to_le_bytes());
    m.extend_from_slice(&0u16.to_le_bytes());
    m.extend_from_slice(&u32::try_from(offset).unwrap_or(u32::MAX).to_le_bytes());
    m.extend_from_slice(&f.flags.to_le_bytes());
    if f.with_mic {
        m.extend_from_slice(&[0u8; 8]); // Version: zero, NEGOTIATE_VERSION not set
        m.extend_from_slice(&[0u8; 16]); // MIC, filled in by the caller
    }
    for p in payloads {
        m.extend_from_slice(p);
    }
    m
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut out = [0u8; 16];
    // HMAC takes keys of any length, so `new_from_slice` cannot fail.
    if let Ok(mut mac) = <Hmac<Md5> as Mac>::new_from_slice(key) {
        for p in parts {
            mac.update(p);
        }
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// MS-NLMP 3.3.2 NTOWFv2: HMAC_MD5(MD4(UNICODE(Passwd)), UNICODE(Upper(User) ‖ UserDom)).
fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash = Md4::digest(utf16le(password));
    let identity = utf16le(&format!("{}{domain}", upcase_simple(user)));
    hmac_md5(&nt_hash, &[&identity])
}

/// Upper case as Windows computes it for NTOWFv2: one character to one character.
/// Rust's `to_uppercase` may expand (`ß` to `SS`); Windows leaves such characters
/// alone, and the hash must match the server's.
fn upcase_simple(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// MS-NLMP 3.3.2: NTProofStr ‖ temp, where temp is the NTLMv2 client challenge blob.
fn ntlmv2_response(
    key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
    time: u64,
    target_info: &[u8],
) -> Vec<u8> {
    let mut temp = Vec::with_capacity(28 + target_info.len() + 4);
    temp.extend_from_slice(&[0x01, 0x01, 0, 0, 0, 0, 0, 0]); // versions, reserved
    temp.extend_from_slice(&time.to_le_bytes());
    temp.extend_from_slice(client_challenge);
    temp.extend_from_slice(&[0u8; 4]);
    temp.extend_from_slice(target_info);
    temp.extend_from_slice(&[0u8; 4]);
    let proof = hmac_md5(key, &[server_challenge, &temp]);
    let mut out = proof.to_vec();
    out.extend_from_slice(&temp);
    out
}

/// MS-NLMP 3.3.2 LMv2: HMAC_MD5(key, ServerChallenge ‖ ClientChallenge) ‖ ClientChallenge.
fn lmv2_response(
    key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
) -> Vec<u8> {
    let mut out = hmac_md5(key, &[server_challenge, client_challenge]).to_vec();
    out.extend_from_slice(client_challenge);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mech::hex;
    use crate::nonce::FixedNonces;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn av(id: u16, value: &[u8]) -> Vec<u8> {
        let mut v = id.to_le_bytes().to_vec();
        v.extend_from_slice(&(value.len() as u16).to_le_bytes());
        v.extend_from_slice(value);
        v
    }

    /// A CHALLENGE_MESSAGE as in MS-NLMP 4.2.4.3: flags 0xe28a8233, server challenge
    /// 0123456789abcdef, target name "Domain", target info Domain/Server.
    fn spec_challenge(extra_av: &[u8]) -> Vec<u8> {
        let target_name = utf16le("Domain");
        let mut info = av(2, &utf16le("Domain"));
        info.extend(av(1, &utf16le("Server")));
        info.extend_from_slice(extra_av);
        info.extend(av(0, &[]));
        let mut m = Vec::new();
        m.extend_from_slice(SIGNATURE);
        m.extend_from_slice(&2u32.to_le_bytes());
        let name_off = 56u32;
        m.extend_from_slice(&(target_name.len() as u16).to_le_bytes());
        m.extend_from_slice(&(target_name.len() as u16).to_le_bytes());
        m.extend_from_slice(&name_off.to_le_bytes());
        m.extend_from_slice(&0xe28a_8233u32.to_le_bytes());
        m.extend_from_slice(&unhex("0123456789abcdef"));
        m.extend_from_slice(&[0u8; 8]);
        let info_off = name_off + target_name.len() as u32;
        m.extend_from_slice(&(info.len() as u16).to_le_bytes());
        m.extend_from_slice(&(info.len() as u16).to_le_bytes());
        m.extend_from_slice(&info_off.to_le_bytes());
        m.extend_from_slice(&[0x06, 0x00, 0x70, 0x17, 0, 0, 0, 0x0f]); // version
        m.extend_from_slice(&target_name);
        m.extend_from_slice(&info);
        m
    }

    fn spec_client() -> Ntlm {
        let mut ctx = ClientContext::imap("server", 143).with_filetime(0);
        ctx.ntlm_domain = Some("Domain".into());
        ctx.ntlm_workstation = Some("COMPUTER".into());
        let mut nonces = FixedNonces::new().with_bytes([0xaa; 8]);
        Ntlm::new(
            &Credentials::password("User", "Password"),
            &ctx,
            &mut nonces,
        )
        .unwrap()
    }

    fn get_field(m: &[u8], at: usize) -> Vec<u8> {
        field(m, at).unwrap().to_vec()
    }

    /// MS-NLMP 4.2.4.1.1 and 4.2.4.1.2: NTOWFv2 and the session base key.
    #[test]
    fn ms_nlmp_4_2_4_1_keys() {
        assert_eq!(
            hex(&Md4::digest(utf16le("Password"))),
            "a4f49c406510bdcab6824ee7c30fd852"
        );
        let key = ntowf_v2("Password", "User", "Domain");
        assert_eq!(hex(&key), "0c868a403bfd7a93a3001ef22ef02e3f");
        let proof = unhex("68cd0ab851e51c96aabc927bebef6a1c");
        assert_eq!(
            hex(&hmac_md5(&key, &[&proof])),
            "8de40ccadbc14a82f15cb0ad0de95ca3"
        );
    }

    /// MS-NLMP 4.2.4.2.1 and 4.2.4.2.2: the LMv2 and NTLMv2 responses, checked inside
    /// a complete AUTHENTICATE message built from the 4.2.4 challenge.
    #[test]
    fn ms_nlmp_4_2_4_2_responses_in_authenticate_message() {
        let mut m = spec_client();
        let negotiate = m.initial_response().unwrap().unwrap();
        assert_eq!(&negotiate.expose()[..8], SIGNATURE);
        assert_eq!(read_u32(negotiate.expose(), 8), Some(1));

        let auth = m.step(&spec_challenge(&[])).unwrap().into_inner();
        assert!(m.is_complete());
        assert_eq!(&auth[..8], SIGNATURE);
        assert_eq!(read_u32(&auth, 8), Some(3));
        assert_eq!(
            hex(&get_field(&auth, 12)),
            "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"
        );
        assert_eq!(
            hex(&get_field(&auth, 20)),
            concat!(
                "68cd0ab851e51c96aabc927bebef6a1c", // NTProofStr
                "0101000000000000",                 // versions, reserved
                "0000000000000000",                 // time
                "aaaaaaaaaaaaaaaa",                 // client challenge
                "00000000",
                "02000c0044006f006d00610069006e00", // MsvAvNbDomainName "Domain"
                "01000c00530065007200760065007200", // MsvAvNbComputerName "Server"
                "00000000",                         // MsvAvEOL
                "00000000",
            )
        );
        assert_eq!(get_field(&auth, 28), utf16le("Domain"));
        assert_eq!(get_field(&auth, 36), utf16le("User"));
        assert_eq!(get_field(&auth, 44), utf16le("COMPUTER"));
        assert!(get_field(&auth, 52).is_empty());
        let flags = read_u32(&auth, 60).unwrap();
        assert_ne!(flags & NEGOTIATE_UNICODE, 0);
        assert_eq!(flags & 0x4000_0030, 0, "no KEY_EXCH, SIGN or SEAL");
        assert!(m.step(b"more").is_err());
    }

    /// With MsvAvTimestamp the server's time is used, LM is Z(24), MsvAvFlags announces
    /// the MIC, and the MIC covers all three messages.
    #[test]
    fn server_timestamp_brings_mic() {
        let mut m = spec_client();
        let negotiate = m.initial_response().unwrap().unwrap().into_inner();
        let ts = 0x01d0_0000_1234_5678u64;
        let challenge = spec_challenge(&av(7, &ts.to_le_bytes()));
        let auth = m.step(&challenge).unwrap().into_inner();
        assert_eq!(get_field(&auth, 12), vec![0u8; 24]);
        let nt = get_field(&auth, 20);
        assert_eq!(&nt[24..32], &ts.to_le_bytes());
        let blob_info = &nt[44..];
        let flags_pair = av(6, &AV_FLAG_MIC_PRESENT.to_le_bytes());
        assert!(blob_info
            .windows(flags_pair.len())
            .any(|w| w == flags_pair.as_slice()));

        let key = ntowf_v2("Password", "User", "Domain");
        let session = hmac_md5(&key, &[&nt[..16]]);
        let mut zeroed = auth.clone();
        zeroed[MIC_OFFSET..MIC_OFFSET + 16].fill(0);
        let mic = hmac_md5(&session, &[&negotiate, &challenge, &zeroed]);
        assert_eq!(&auth[MIC_OFFSET..MIC_OFFSET + 16], &mic);
    }

    #[test]
    fn upper_case_is_one_to_one() {
        assert_eq!(upcase_simple("straße"), "STRAßE");
        assert_eq!(upcase_simple("user"), "USER");
    }

    #[test]
    fn domain_from_user_name_and_sasl_without_ir() {
        let ctx = ClientContext::imap("server", 143);
        let mut nonces = FixedNonces::new().with_bytes([0xaa; 8]);
        let mut m = Ntlm::new(
            &Credentials::password("Domain\\User", "Password"),
            &ctx,
            &mut nonces,
        )
        .unwrap();
        let negotiate = m.step(b"").unwrap();
        assert_eq!(negotiate.expose().len(), 32);
        let auth = m.step(&spec_challenge(&[])).unwrap().into_inner();
        assert_eq!(get_field(&auth, 28), utf16le("Domain"));
        assert_eq!(get_field(&auth, 36), utf16le("User"));
        assert_eq!(
            hex(&get_field(&auth, 20)[..16]),
            "68cd0ab851e51c96aabc927bebef6a1c"
        );
    }

    /// Truncated or lying CHALLENGE messages are refused, never read out of bounds.
    #[test]
    fn hostile_challenges() {
        let good = spec_challenge(&[]);
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            good[..31].to_vec(),
            b"NTLMSSX\0"
                .iter()
                .copied()
                .chain(good[8..].iter().copied())
                .collect(),
        ];
        let mut wrong_type = good.clone();
        wrong_type[8] = 3;
        cases.push(wrong_type);
        let mut long_info = good.clone();
        long_info[40] = 0xff;
        long_info[41] = 0xff;
        cases.push(long_info);
        let mut far_offset = good.clone();
        far_offset[44..48].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(far_offset);
        let mut no_eol = good.clone();
        let n = no_eol.len();
        no_eol.truncate(n - 4);
        let len = u16::from_le_bytes([no_eol[40], no_eol[41]]) - 4;
        no_eol[40..42].copy_from_slice(&len.to_le_bytes());
        cases.push(no_eol);
        let mut bad_ts = spec_challenge(&av(7, &[1, 2, 3]));
        bad_ts.truncate(bad_ts.len());
        cases.push(bad_ts);
        for (i, c) in cases.iter().enumerate() {
            let mut m = spec_client();
            m.initial_response().unwrap();
            assert!(m.step(c).is_err(), "case {i}");
            assert!(!m.is_complete());
        }
        // Every truncation of a good message fails cleanly.
        for cut in 0..good.len() {
            let mut m = spec_client();
            m.initial_response().unwrap();
            let _ = m.step(&good[..cut]);
        }
    }
}
