//! Logs at `-vv` and `-vvv` over TLS: rustls's own records (it logs through the
//! `log` crate) reach mailfold's log, and neither they nor anything else there shows the
//! password, raw or as the base64 of a SASL PLAIN or LOGIN exchange.

mod util;

use util::{plain, Env};

fn b64(b: &[u8]) -> String {
    // Small local encoder: the test must not trust the code under test to spot the secret.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn rustls_records_are_logged_at_vv_and_no_secret_is() {
    let env = Env::new();
    env.deliver("INBOX", &plain("a@example.org", "hello", "body"));
    let password = env.dovecot.user(0).password.clone();
    let user = env.user.clone();
    let needles = [
        password.clone(),
        b64(password.as_bytes()),
        b64(format!("\0{user}\0{password}").as_bytes()),
        b64(format!("{user}\0{user}\0{password}").as_bytes()),
    ];
    for (args, mechanism) in [
        (&["-vv", "sync"][..], None),
        (&["-vvv", "sync"][..], None),
        // The password mechanisms whose exchange carries the password itself.
        (&["-vvv", "sync"][..], Some("PLAIN")),
        (&["-vvv", "sync"][..], Some("LOGIN")),
    ] {
        if let Some(m) = mechanism {
            let addr = env.dovecot.imaps_addr();
            env.home.write_config(
                &addr.ip().to_string(),
                addr.port(),
                "implicit",
                &password,
                Some(&env.dovecot.ca_file()),
                &format!("mechanisms = [\"{m}\"]\n"),
            );
        }
        let r = env.run(args).ok();
        // rustls's records came through the log bridge, with their target at -vv.
        assert!(
            r.stderr.contains("rustls::"),
            "{args:?}: no rustls record:\n{}",
            r.stderr
        );
        for n in &needles {
            assert!(
                !r.stderr.contains(n.as_str()) && !r.stdout.contains(n.as_str()),
                "{args:?} {mechanism:?}: a secret form {n:?} is in the output"
            );
        }
    }
}
