//! Tests named after the seed IDs of MS-STANOIMAP that concern authentication (see
//! shared/conformance.md): V0027, V0029, V0031, V0032, V0034, E0001, E0002.

use mailfold_sasl::policy::{GiveUpReason, SecretKind, DEFAULT_ORDER};
use mailfold_sasl::{
    choose_mechanisms, login_command_allowed, new_mechanism, next_after_failure, ClientContext,
    Credentials, FailureKind, FixedNonces, MechanismName, NextAttempt, Policy, SaslError,
};
use MechanismName::*;

/// Every mechanism mailfold knows (seeds V0027, E0001, E0002, V0029), as a server would
/// advertise them.
const EVERYTHING: &[&str] = &[
    "AUTH=PLAIN",
    "AUTH=LOGIN",
    "AUTH=CRAM-MD5",
    "AUTH=DIGEST-MD5",
    "AUTH=NTLM",
    "AUTH=SCRAM-SHA-1",
    "AUTH=SCRAM-SHA-256",
    "AUTH=XOAUTH2",
    "AUTH=OAUTHBEARER",
    "AUTH=ANONYMOUS",
];

#[test]
fn v0027_every_auth_name_is_recognised_and_unknown_ones_ignored() {
    // Outlook's own examples, including the stray blank of "AUTH= DIGEST-MD5".
    assert_eq!(MechanismName::parse("AUTH=NTLM"), Some(Ntlm));
    assert_eq!(MechanismName::parse("AUTH= DIGEST-MD5"), Some(DigestMd5));
    for name in EVERYTHING {
        let m = MechanismName::parse(name).unwrap_or_else(|| panic!("{name} not recognised"));
        assert!(name.ends_with(m.as_str()));
        // Names are case-insensitive (RFC 3501 9, `auth-type` is an atom).
        assert_eq!(MechanismName::parse(&name.to_lowercase()), Some(m));
    }
    let advertised = [
        "AUTH=GSSAPI",
        "AUTH=KERBEROS_V4",
        "AUTH=X-NOT-A-MECHANISM",
        "AUTH=ntlm",
        "AUTH=SRP",
        "AUTH=",
    ];
    assert_eq!(
        choose_mechanisms(&advertised, &Policy::password(), true),
        vec![Ntlm]
    );
}

#[test]
fn v0029_anonymous_only_when_configured() {
    // A password account never falls to ANONYMOUS, even if offered.
    let chosen = choose_mechanisms(EVERYTHING, &Policy::password(), true);
    assert!(!chosen.contains(&Anonymous));
    // An anonymous account uses it, and nothing else.
    assert_eq!(
        choose_mechanisms(EVERYTHING, &Policy::anonymous(), false),
        vec![Anonymous]
    );
    assert!(!login_command_allowed(
        &["AUTH=PLAIN"],
        false,
        &Policy::anonymous(),
        true
    ));
    // Not offered: not used.
    assert!(choose_mechanisms(&["AUTH=PLAIN"], &Policy::anonymous(), true).is_empty());
}

#[test]
fn v0029_anonymous_exchange_rfc4505() {
    let mut m = new_mechanism(
        Anonymous,
        &Credentials::anonymous("sirhc"),
        &ClientContext::imap("h", 143),
        &mut FixedNonces::new(),
    )
    .unwrap();
    assert_eq!(m.step(b"").unwrap().expose().as_slice(), b"sirhc");
    assert!(m.is_complete());
}

#[test]
fn v0031_no_password_in_clear_without_tls() {
    let p = Policy::password();
    let clear = choose_mechanisms(EVERYTHING, &p, false);
    assert!(
        !clear.contains(&Plain) && !clear.contains(&Login),
        "{clear:?}"
    );
    // The challenge-response mechanisms stay usable.
    assert_eq!(
        clear,
        vec![ScramSha256, ScramSha1, DigestMd5, CramMd5, Ntlm]
    );
    // Only PLAIN offered, no TLS: nothing, and no LOGIN command either.
    assert!(choose_mechanisms(&["AUTH=PLAIN", "AUTH=LOGIN"], &p, false).is_empty());
    assert!(!login_command_allowed(&["AUTH=PLAIN"], false, &p, false));
    assert!(!login_command_allowed(&[], false, &p, false));
    // Bearer tokens are secrets in clear as well (RFC 7628 section 5).
    assert!(choose_mechanisms(EVERYTHING, &Policy::oauth_token(), false).is_empty());
}

#[test]
fn v0031_plaintext_only_when_the_account_allows_it() {
    let p = Policy {
        allow_plaintext_password: true,
        ..Policy::password()
    };
    assert_eq!(
        choose_mechanisms(&["AUTH=PLAIN", "AUTH=LOGIN"], &p, false),
        vec![Plain, Login]
    );
    assert!(login_command_allowed(&[], false, &p, false));
}

#[test]
fn v0032_only_advertised_mechanisms() {
    let p = Policy::password();
    assert_eq!(
        choose_mechanisms(&["AUTH=CRAM-MD5", "AUTH=PLAIN"], &p, true),
        vec![CramMd5, Plain]
    );
    // An explicit order cannot add what the server did not advertise.
    let p = Policy {
        order: Some(vec![ScramSha256, Plain]),
        ..Policy::password()
    };
    assert_eq!(choose_mechanisms(&["AUTH=PLAIN"], &p, true), vec![Plain]);
}

#[test]
fn v0032_login_command_when_no_mechanism_is_advertised() {
    let p = Policy::password();
    assert!(login_command_allowed(&[], false, &p, true));
    // Only unknown mechanisms: the same.
    assert!(login_command_allowed(&["AUTH=GSSAPI"], false, &p, true));
    // A usable mechanism exists: AUTHENTICATE, not LOGIN.
    assert!(!login_command_allowed(&["AUTH=PLAIN"], false, &p, true));
}

#[test]
fn v0032_never_login_when_logindisabled() {
    let p = Policy::password();
    assert!(!login_command_allowed(&[], true, &p, true));
    assert_eq!(
        next_after_failure(
            &[Plain],
            Plain,
            FailureKind::MechanismUnusable,
            &p,
            true,
            true
        ),
        NextAttempt::GiveUp(GiveUpReason::Exhausted)
    );
    let no_login = Policy {
        allow_login_command: false,
        ..Policy::password()
    };
    assert!(!login_command_allowed(&[], false, &no_login, true));
}

#[test]
fn v0034_refused_mechanisms_give_way_to_weaker_ones_in_turn_then_login() {
    let p = Policy::password();
    let chosen = choose_mechanisms(EVERYTHING, &p, true);
    assert_eq!(
        chosen,
        vec![
            ScramSha256,
            ScramSha1,
            DigestMd5,
            CramMd5,
            Ntlm,
            Plain,
            Login
        ]
    );
    let mut tried = vec![chosen[0]];
    let mut current = chosen[0];
    loop {
        match next_after_failure(
            &chosen,
            current,
            FailureKind::MechanismUnusable,
            &p,
            false,
            true,
        ) {
            NextAttempt::Mechanism(m) => {
                tried.push(m);
                current = m;
            }
            NextAttempt::LoginCommand => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(tried, chosen);
}

#[test]
fn v0034_wrong_password_does_not_fall_back_with_or_without_tls() {
    let p = Policy::password();
    for tls in [false, true] {
        let chosen = choose_mechanisms(EVERYTHING, &p, tls);
        for code in [None, Some("AUTHENTICATIONFAILED"), Some("X-UNKNOWN")] {
            let failure = FailureKind::from_response_code(code);
            assert_eq!(
                next_after_failure(&chosen, ScramSha256, failure, &p, false, tls),
                NextAttempt::GiveUp(GiveUpReason::CredentialsRejected),
                "{code:?}, TLS {tls}"
            );
        }
        // SCRAM's `e=` is the server's verdict on the proof: the same.
        assert_eq!(
            next_after_failure(
                &chosen,
                ScramSha256,
                FailureKind::from_error(&SaslError::ServerError {
                    mechanism: "SCRAM-SHA-256",
                    message: "invalid-proof".into()
                }),
                &p,
                false,
                tls
            ),
            NextAttempt::GiveUp(GiveUpReason::CredentialsRejected)
        );
    }
    let chosen = choose_mechanisms(EVERYTHING, &p, false);
    // A mechanism that could not even run is no credentials verdict: go on.
    assert_eq!(
        next_after_failure(
            &chosen,
            ScramSha256,
            FailureKind::MechanismUnusable,
            &p,
            false,
            false
        ),
        NextAttempt::Mechanism(ScramSha1)
    );
}

#[test]
fn v0034_server_proof_failure_never_downgrades() {
    // A fake server that does not know the password answers SCRAM's client proof with
    // a made-up signature.
    let mut nonces = FixedNonces::new().with_text("fyko+d2lbbFgONRv9qkxdawL");
    let mut m = new_mechanism(
        ScramSha1,
        &Credentials::password("user", "pencil"),
        &ClientContext::imap("h", 993),
        &mut nonces,
    )
    .unwrap();
    m.initial_response().unwrap();
    m.step(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
        .unwrap();
    let err = m.step(b"v=ZmFrZSBzZXJ2ZXIgc2lnbmF0dXJl").unwrap_err();
    assert!(err.is_server_proof_failure());
    assert!(!m.is_complete());

    let p = Policy::password();
    let chosen = choose_mechanisms(EVERYTHING, &p, true);
    for tls in [true, false] {
        assert_eq!(
            next_after_failure(
                &chosen,
                ScramSha1,
                FailureKind::from_error(&err),
                &p,
                false,
                tls
            ),
            NextAttempt::GiveUp(GiveUpReason::ServerNotProven)
        );
    }
}

#[test]
fn v0034_policy_order_and_final_conditions() {
    let p = Policy {
        order: Some(vec![Plain, CramMd5]),
        ..Policy::password()
    };
    let chosen = choose_mechanisms(EVERYTHING, &p, true);
    assert_eq!(chosen, vec![Plain, CramMd5]);
    assert_eq!(
        next_after_failure(
            &chosen,
            Plain,
            FailureKind::MechanismUnusable,
            &p,
            false,
            true
        ),
        NextAttempt::Mechanism(CramMd5)
    );
    assert_eq!(
        next_after_failure(
            &chosen,
            Plain,
            FailureKind::from_response_code(Some("UNAVAILABLE")),
            &p,
            false,
            true
        ),
        NextAttempt::GiveUp(GiveUpReason::ServerRefused)
    );
    // A mechanism outside the list has no successor: no loop.
    assert_eq!(
        next_after_failure(
            &chosen,
            Ntlm,
            FailureKind::MechanismUnusable,
            &p,
            true,
            true
        ),
        NextAttempt::GiveUp(GiveUpReason::Exhausted)
    );
}

#[test]
fn e0001_plain_exchange_rfc4616() {
    let creds = Credentials::password("Kurt", "xipj3plmq").with_authzid("Ursel");
    let mut m = new_mechanism(
        Plain,
        &creds,
        &ClientContext::imap("h", 993),
        &mut FixedNonces::new(),
    )
    .unwrap();
    assert_eq!(m.name(), "PLAIN");
    let ir = m.initial_response().unwrap().unwrap();
    assert_eq!(ir.expose().as_slice(), b"Ursel\0Kurt\0xipj3plmq");
    assert!(m.is_complete());
}

#[test]
fn e0001_digest_md5_exchange_rfc2831() {
    let mut nonces = FixedNonces::new().with_text("OA6MHXh6VqTrRk");
    let mut m = new_mechanism(
        DigestMd5,
        &Credentials::password("chris", "secret"),
        &ClientContext::imap("elwood.innosoft.com", 143),
        &mut nonces,
    )
    .unwrap();
    assert!(m.initial_response().unwrap().is_none());
    let r = m
        .step(
            b"realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",qop=\"auth\",\
              algorithm=md5-sess,charset=utf-8",
        )
        .unwrap();
    let text = String::from_utf8(r.into_inner()).unwrap();
    assert!(
        text.contains("digest-uri=\"imap/elwood.innosoft.com\""),
        "{text}"
    );
    assert!(
        text.contains("response=d388dad90d4bbd760a152321f2143af7"),
        "{text}"
    );
    m.step(b"rspauth=ea40f60335c427b5527b84dbabcdfffd").unwrap();
    assert!(m.is_complete());
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// The MS-NLMP 4.2.4 CHALLENGE_MESSAGE (server challenge 0123456789abcdef, target
/// info NetBIOS domain "Domain", NetBIOS computer "Server").
fn nlmp_challenge() -> Vec<u8> {
    let mut info = Vec::new();
    for (id, v) in [(2u16, "Domain"), (1, "Server")] {
        let v = utf16(v);
        info.extend_from_slice(&id.to_le_bytes());
        info.extend_from_slice(&(v.len() as u16).to_le_bytes());
        info.extend_from_slice(&v);
    }
    info.extend_from_slice(&[0, 0, 0, 0]);
    let mut m = b"NTLMSSP\0".to_vec();
    m.extend_from_slice(&2u32.to_le_bytes());
    m.extend_from_slice(&[0, 0, 0, 0, 48, 0, 0, 0]); // empty target name
    m.extend_from_slice(&0xe28a_8233u32.to_le_bytes());
    m.extend_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&(info.len() as u16).to_le_bytes());
    m.extend_from_slice(&(info.len() as u16).to_le_bytes());
    m.extend_from_slice(&48u32.to_le_bytes());
    m.extend_from_slice(&info);
    m
}

#[test]
fn e0001_ntlm_exchange_ms_nlmp_4_2_4() {
    let mut ctx = ClientContext::imap("server", 143).with_filetime(0);
    ctx.ntlm_domain = Some("Domain".into());
    let mut nonces = FixedNonces::new().with_bytes([0xaa; 8]);
    let mut m = new_mechanism(
        Ntlm,
        &Credentials::password("User", "Password"),
        &ctx,
        &mut nonces,
    )
    .unwrap();
    let negotiate = m.initial_response().unwrap().unwrap();
    assert_eq!(&negotiate.expose()[..12], b"NTLMSSP\0\x01\0\0\0");
    let auth = m.step(&nlmp_challenge()).unwrap().into_inner();
    assert!(m.is_complete());
    // NtChallengeResponseFields at offset 20: (len, maxlen, offset).
    let len = u16::from_le_bytes([auth[20], auth[21]]) as usize;
    let off = u32::from_le_bytes([auth[24], auth[25], auth[26], auth[27]]) as usize;
    let nt = &auth[off..off + len];
    let proof: String = nt[..16].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(proof, "68cd0ab851e51c96aabc927bebef6a1c"); // MS-NLMP 4.2.4.2.2
                                                           // LmChallengeResponseFields at offset 12: the LMv2 response of 4.2.4.2.1.
    let len = u16::from_le_bytes([auth[12], auth[13]]) as usize;
    let off = u32::from_le_bytes([auth[16], auth[17], auth[18], auth[19]]) as usize;
    let lm: String = auth[off..off + len]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(lm, "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa");
}

#[test]
fn e0002_scram_and_oauth_preferred_when_offered() {
    let outlook_style = [
        "AUTH=PLAIN",
        "AUTH=NTLM",
        "AUTH=DIGEST-MD5",
        "AUTH=SCRAM-SHA-1",
    ];
    assert_eq!(
        choose_mechanisms(&outlook_style, &Policy::password(), true)[0],
        ScramSha1
    );
    let chosen = choose_mechanisms(EVERYTHING, &Policy::password(), true);
    assert_eq!(&chosen[..2], &[ScramSha256, ScramSha1]);
    let tokens = choose_mechanisms(EVERYTHING, &Policy::oauth_token(), true);
    assert_eq!(tokens, vec![OAuthBearer, XOAuth2]);
    // The default order is strongest first: SCRAM, OAuth, then the older digests,
    // then the mechanisms that reveal the password.
    let pos = |m| DEFAULT_ORDER.iter().position(|&x| x == m).unwrap();
    assert!(pos(ScramSha1) < pos(OAuthBearer));
    assert!(pos(XOAuth2) < pos(DigestMd5));
    assert!(pos(Ntlm) < pos(Plain));
    assert!(pos(Plain) < pos(Login));
    assert_eq!(Policy::password().secret, SecretKind::Password);
}

#[test]
fn credentials_never_appear_in_debug_or_errors() {
    let creds = Credentials::password("user", "hunter2-secret");
    assert!(!format!("{creds:?}").contains("hunter2"));
    let mut nonces = FixedNonces::new().with_text("abc");
    let mut m = new_mechanism(
        ScramSha256,
        &creds,
        &ClientContext::imap("h", 993),
        &mut nonces,
    )
    .unwrap();
    let ir = m.initial_response().unwrap().unwrap();
    assert_eq!(format!("{ir:?}"), "Secret(<redacted>)");
    let err: SaslError = m.step(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=1").unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
}
