//! The exact SASL messages that would carry a secret, so that an output scrubber can
//! recognise a server echoing one whole.

use mailfold_sasl::{new_mechanism, ClientContext, Credentials, MechanismName, OsNonceSource};

/// The client messages of PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER that carry `secret` for
/// `user` on `host:port`, built by the mechanisms that send them, secret taken as a password
/// and as a bearer token alike. Messages without the secret (LOGIN's user name) are left
/// out, and so is whichever mechanism the secret does not fit.
pub fn login_messages(user: &str, secret: &str, host: &str, port: u16) -> Vec<Vec<u8>> {
    let ctx = ClientContext::imap(host.to_owned(), port);
    let mut out = Vec::new();
    let logins = [
        Credentials::password(user.to_owned(), secret.to_owned()),
        Credentials::bearer_token(user.to_owned(), secret.to_owned()),
    ];
    for creds in &logins {
        for name in [
            MechanismName::Plain,
            MechanismName::Login,
            MechanismName::XOAuth2,
            MechanismName::OAuthBearer,
        ] {
            let Ok(mut m) = new_mechanism(name, creds, &ctx, &mut OsNonceSource) else {
                continue;
            };
            let mut messages = Vec::new();
            match m.initial_response() {
                Ok(Some(r)) => messages.push(r.expose().clone()),
                // LOGIN is server-first: user name, then password, one challenge each.
                Ok(None) => {
                    for challenge in [&b"Username:"[..], b"Password:"] {
                        if let Ok(r) = m.step(challenge) {
                            messages.push(r.expose().clone());
                        }
                    }
                }
                Err(_) => {}
            }
            out.extend(
                messages
                    .into_iter()
                    .filter(|msg| contains(msg, secret.as_bytes())),
            );
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
