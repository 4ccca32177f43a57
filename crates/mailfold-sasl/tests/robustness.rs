//! No challenge, however hostile, makes a mechanism panic: random bytes and mutations
//! of valid challenges are fed to every mechanism at every step.

use mailfold_sasl::{
    new_mechanism, ChannelBinding, ClientContext, Credentials, FixedNonces, MechanismName, Secret,
};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (self.next() as usize) % (max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const VALID: &[&[u8]] = &[
    b"r=abcdefgh,s=QSXCR+Q6sek8bf92,i=4096",
    b"realm=\"r\",nonce=\"n\",qop=\"auth\",algorithm=md5-sess,charset=utf-8",
    b"rspauth=ea40f60335c427b5527b84dbabcdfffd",
    b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    b"NTLMSSP\0\x02\0\0\0\0\0\0\0\x30\0\0\0\x33\x82\x8a\xe2\x01\x23\x45\x67\x89\xab\xcd\xef\
      \0\0\0\0\0\0\0\0\x08\0\x08\0\x30\0\0\0\x07\0\x00\0\0\0\0\0",
    b"<1896.697170952@postoffice.reston.mci.net>",
];

fn fresh(name: MechanismName) -> Box<dyn mailfold_sasl::Mechanism> {
    let creds = if name.uses_token() {
        Credentials::bearer_token("u@example.com", "tok")
    } else if name == MechanismName::Anonymous {
        Credentials::anonymous("trace")
    } else {
        Credentials::password("user", "pencil")
    };
    let mut ctx = ClientContext::imap("imap.example.org", 993);
    ctx.channel_binding = Some(ChannelBinding {
        kind: "tls-exporter".into(),
        data: Secret::new(vec![7; 32]),
    });
    let mut nonces = FixedNonces::new().with_text("abc").with_bytes([0xaa; 8]);
    new_mechanism(name, &creds, &ctx, &mut nonces).unwrap()
}

#[test]
fn random_and_mutated_challenges_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..400 {
        for name in MechanismName::ALL {
            let mut m = fresh(name);
            if round % 2 == 0 {
                let _ = m.initial_response();
            }
            for _ in 0..4 {
                let challenge = if rng.next() & 1 == 0 {
                    rng.bytes(300)
                } else {
                    let mut c = VALID[(rng.next() as usize) % VALID.len()].to_vec();
                    for _ in 0..(rng.next() % 4) {
                        if c.is_empty() {
                            break;
                        }
                        let i = (rng.next() as usize) % c.len();
                        match rng.next() % 3 {
                            0 => c[i] = rng.next() as u8,
                            1 => c.truncate(i),
                            _ => c.insert(i, rng.next() as u8),
                        }
                    }
                    c
                };
                if m.step(&challenge).is_err() {
                    break;
                }
            }
        }
    }
}

#[test]
fn oversized_challenges_are_refused() {
    let huge = vec![b'a'; 1 << 20];
    for name in MechanismName::ALL {
        let mut m = fresh(name);
        let _ = m.initial_response();
        assert!(m.step(&huge).is_err(), "{name}");
    }
}
