//! Facts about the connection that some mechanisms put into their messages: the service and
//! host (DIGEST-MD5, OAUTHBEARER), the time (NTLMv2), the TLS channel binding (SCRAM
//! `-PLUS`), and server quirks that change a mechanism's arithmetic. The caller gathers them;
//! the mechanisms only read them.

use crate::secret::Secret;

/// TLS channel-binding data for SCRAM `-PLUS` (RFC 5929, RFC 9266).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelBinding {
    /// The binding type name, e.g. `"tls-exporter"` or `"tls-server-end-point"`.
    pub kind: String,
    /// The binding data taken from the TLS session.
    pub data: Secret<Vec<u8>>,
}

/// Facts about the connection that some mechanisms put into their messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientContext {
    /// SASL service name; `"imap"` for IMAP (RFC 9051 section 6.2.2).
    pub service: String,
    /// The server host name the user configured (DIGEST-MD5 `digest-uri`, OAUTHBEARER
    /// `host`).
    pub host: String,
    /// The server port (OAUTHBEARER `port`); 0 leaves it out.
    pub port: u16,
    /// DIGEST-MD5 realm to use when the server offers several or none.
    pub realm: Option<String>,
    /// Server quirk: hash DIGEST-MD5 credentials as UTF-8 even where RFC 2831
    /// 2.1.2.1 converts them to ISO 8859-1 (the servers that do: [`crate::quirks`]);
    /// Cyrus SASL follows the RFC. Only matters for non-ASCII user names, realms or
    /// passwords.
    pub digest_md5_utf8_hash: bool,
    /// NTLM domain; when `None`, a `DOMAIN\user` user name is split, else it is empty.
    pub ntlm_domain: Option<String>,
    /// NTLM workstation name; empty when `None`.
    pub ntlm_workstation: Option<String>,
    /// Current time as a Windows FILETIME (100 ns units since 1601-01-01), used by
    /// NTLMv2 when the server sends no timestamp. The caller reads the clock; see
    /// [`filetime_from_unix`].
    pub filetime: u64,
    /// Channel binding for SCRAM, when the TLS layer can provide it.
    pub channel_binding: Option<ChannelBinding>,
}

impl ClientContext {
    /// A context for IMAP to `host:port`, with no clock reading (FILETIME 0) and no
    /// channel binding.
    pub fn imap(host: impl Into<String>, port: u16) -> Self {
        ClientContext {
            service: "imap".into(),
            host: host.into(),
            port,
            realm: None,
            digest_md5_utf8_hash: false,
            ntlm_domain: None,
            ntlm_workstation: None,
            filetime: 0,
            channel_binding: None,
        }
    }

    /// Sets the time NTLMv2 uses (see [`filetime_from_unix`]).
    pub fn with_filetime(mut self, filetime: u64) -> Self {
        self.filetime = filetime;
        self
    }
}

/// Converts seconds since the Unix epoch into a Windows FILETIME (MS-DTYP 2.3.3).
pub fn filetime_from_unix(unix_seconds: u64) -> u64 {
    /// Seconds from 1601-01-01 to 1970-01-01.
    const EPOCH_DELTA: u64 = 11_644_473_600;
    unix_seconds
        .saturating_add(EPOCH_DELTA)
        .saturating_mul(10_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetime_of_unix_epoch() {
        assert_eq!(filetime_from_unix(0), 116_444_736_000_000_000);
        assert_eq!(filetime_from_unix(u64::MAX), u64::MAX)
    }
}
