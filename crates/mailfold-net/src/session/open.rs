//! Opening a session: the transport (TCP, implicit TLS, or a tunnel command), the greeting,
//! STARTTLS when configured, then authentication. The connection policy of RFC 8314 and
//! RFC 9051 6.2.1 (seed N1) lives here: no STARTTLS or a refused one abandons the
//! connection, never downgrades it, and a PREAUTH over cleartext is refused when TLS is
//! required.

use mailfold_proto::command::Command;
use mailfold_proto::engine::{ConnState, EngineError};
use std::sync::Arc;

use mailfold_sasl::Credentials;

use crate::connect::{connect_tcp, spawn_tunnel};
use crate::error::Error;
use crate::stream::Transport;
use crate::tls::{
    client_config_recording, handshake_error, server_name, warn_if_dangerous, TrustRecord,
};

use super::config::{ConnectConfig, Security};
use super::driver::{no_tls, Session};
use super::outcome::{map_engine_error, outcome_error};
use super::report::{AuthInfo, ConnectFailure};

impl Session {
    /// Connects, secures the transport as configured, and authenticates with `creds`
    /// (or not at all with `None`, e.g. for a PREAUTH server over TLS).
    pub async fn connect(cfg: &ConnectConfig, creds: Option<&Credentials>) -> Result<Self, Error> {
        Session::connect_report(cfg, creds)
            .await
            .map_err(|f| f.error)
    }

    /// [`Session::connect`], and on failure what the session had learned before it failed:
    /// the greeting, the TLS session, and every authentication attempt with how it ended.
    pub async fn connect_report(
        cfg: &ConnectConfig,
        creds: Option<&Credentials>,
    ) -> Result<Self, Box<ConnectFailure>> {
        let mut s = Session::open_report(cfg).await?;
        s.log_in_report(cfg, creds).await?;
        Ok(s)
    }

    /// The second half of [`Session::connect`] on a session [`Session::open`] opened: checks
    /// the capabilities and authenticates with `creds` (or not at all with `None`). Splitting
    /// the two lets a caller fetch the credentials (a password command) while the
    /// connection, TLS and greeting are under way. A failure abandons the session.
    pub async fn log_in(
        &mut self,
        cfg: &ConnectConfig,
        creds: Option<&Credentials>,
    ) -> Result<(), Error> {
        self.log_in_report(cfg, creds).await.map_err(|f| f.error)
    }

    /// [`Session::log_in`], and on failure what the session had learned before it failed.
    pub async fn log_in_report(
        &mut self,
        cfg: &ConnectConfig,
        creds: Option<&Credentials>,
    ) -> Result<(), Box<ConnectFailure>> {
        match self.login_steps(cfg, creds).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // No LOGOUT on a connection we refuse or that failed (seed V0011): close it,
                // and the error says why.
                self.abandon().await;
                Err(self.failure(e))
            }
        }
    }

    pub(super) fn failure(&self, error: Error) -> Box<ConnectFailure> {
        Box::new(ConnectFailure {
            error,
            greeting: self.greeting.clone(),
            tls: self.tls_info.clone(),
            auth: self.auth_info.clone(),
        })
    }

    async fn login_steps(
        &mut self,
        cfg: &ConnectConfig,
        creds: Option<&Credentials>,
    ) -> Result<(), Error> {
        if self.engine.session().capabilities.is_none() {
            self.capability().await?;
        }
        // A server without IMAP4rev1 (e.g. only "IMAP4", RFC 1730) speaks a dialect whose
        // responses we would misread; nothing, credentials least of all, is sent to it.
        if !self.caps().is_imap4rev1() {
            return Err(Error::Protocol(EngineError::Protocol(format!(
                "server does not speak IMAP4rev1 (capabilities: {})",
                self.caps().names().join(" ")
            ))));
        }
        if let Some(creds) = creds {
            if self.engine.state() == ConnState::NotAuthenticated {
                self.authenticate(cfg, creds).await?;
            }
        }
        if self.engine.session().capabilities.is_none() {
            self.capability().await?;
        }
        if self.engine.state() != ConnState::NotAuthenticated {
            self.auth_info.capabilities_after = Some(self.caps().names().to_vec());
        }
        Ok(())
    }

    /// Connects and secures the transport, without authenticating.
    pub async fn open(cfg: &ConnectConfig) -> Result<Self, Error> {
        Session::open_report(cfg).await.map_err(|f| f.error)
    }

    /// [`Session::open`], and on failure what the session had learned before it failed (the
    /// greeting, when the failure came after it: a refused STARTTLS, say).
    pub async fn open_report(cfg: &ConnectConfig) -> Result<Self, Box<ConnectFailure>> {
        let bare = |error| {
            Box::new(ConnectFailure {
                error,
                greeting: None,
                tls: None,
                auth: AuthInfo::default(),
            })
        };
        // A plaintext session never shakes hands, so it skips reading the system trust store
        // (milliseconds per process, most of a no-change run's own time).
        let (tls, trust) = if cfg.security == Security::Plaintext {
            (None, TrustRecord::default())
        } else {
            let (config, trust) = client_config_recording(&cfg.tls).map_err(bare)?;
            (Some(config), trust)
        };
        if cfg.security != Security::Plaintext && cfg.tunnel.is_none() {
            warn_if_dangerous(&cfg.tls, &cfg.host);
        }
        let implicit = cfg.security == Security::ImplicitTls && cfg.tunnel.is_none();
        let transport = open_transport(cfg, implicit, tls.clone(), &trust)
            .await
            .map_err(bare)?;
        let mut s = Session::new(cfg, transport, implicit, tls, trust);
        match s.open_steps(cfg).await {
            Ok(()) => Ok(s),
            Err(e) => {
                s.abandon().await;
                Err(s.failure(e))
            }
        }
    }

    /// After the transport is up: the greeting, then STARTTLS when configured.
    async fn open_steps(&mut self, cfg: &ConnectConfig) -> Result<(), Error> {
        // The greeting, bounded by the connect timeout as well as the engine's own.
        let greeting = tokio::time::timeout(
            cfg.connect_timeout,
            self.drive_until(|s| s.engine.state() != ConnState::Greeting, None),
        )
        .await;
        match greeting {
            Err(_) => return Err(Error::Timeout("waiting for the greeting".into())),
            Ok(r) => r?,
        }
        if let Some(e) = self.closed.clone() {
            return Err(map_engine_error(e));
        }
        let preauth = self.engine.state() == ConnState::Authenticated;
        self.auth_info.preauth = preauth;
        if cfg.tunnel.is_some() {
            // Nothing secret crosses a tunnel: the command has authenticated already.
            return if preauth {
                Ok(())
            } else {
                Err(Error::Security(
                    "the tunnel command's server did not greet with PREAUTH; mailfold sends no credentials through a tunnel".into(),
                ))
            };
        }
        match cfg.security {
            Security::StartTls => {
                if preauth {
                    // RFC 9051 6.2.1 / RFC 8314: PREAUTH over cleartext skips STARTTLS; an
                    // account that requires TLS must not go on (the 2021 STARTTLS study).
                    return Err(Error::Security(
                        "server sent PREAUTH on a cleartext connection; TLS is required".into(),
                    ));
                }
                self.starttls().await?;
            }
            Security::ImplicitTls | Security::Plaintext => {}
        }
        Ok(())
    }

    async fn starttls(&mut self) -> Result<(), Error> {
        if self.engine.session().capabilities.is_none() {
            if let Err(e) = self.capability().await {
                self.abandon().await;
                return Err(Error::Security(format!(
                    "CAPABILITY failed before STARTTLS ({e}); not continuing without TLS"
                )));
            }
        }
        let offered = self
            .engine
            .session()
            .capabilities
            .as_ref()
            .is_some_and(|c| c.has("STARTTLS"));
        if !offered {
            self.abandon().await;
            return Err(Error::Security(
                "server does not offer STARTTLS; not continuing without TLS".into(),
            ));
        }
        let h = self.submit(Command::StartTls);
        let c = match self.wait(h).await {
            Ok(c) => c,
            Err(e) => {
                self.abandon().await;
                return Err(match e {
                    // A certificate refused after STARTTLS is the same failure as with
                    // implicit TLS; keep its kind so the caller can tell.
                    Error::Tls(_) | Error::Certificate { .. } | Error::NotTls(_) => e,
                    e => Error::Security(format!("STARTTLS failed: {e}")),
                });
            }
        };
        if let Some(e) = outcome_error(&c.outcome) {
            self.abandon().await;
            return Err(Error::Security(format!("STARTTLS refused: {e}")));
        }
        if !self.engine.session().encrypted {
            self.abandon().await;
            return Err(Error::Security("TLS did not start after STARTTLS".into()));
        }
        // Capabilities from before TLS are gone (engine); ask again over TLS (seed V0033).
        self.capability().await?;
        Ok(())
    }
}

/// The transport `cfg` asks for: the tunnel command, TCP with the TLS handshake at once
/// (`implicit`), or cleartext TCP (plaintext, or STARTTLS to come).
async fn open_transport(
    cfg: &ConnectConfig,
    implicit: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    trust: &TrustRecord,
) -> Result<Transport, Error> {
    if let Some(argv) = &cfg.tunnel {
        return Ok(Transport::Tunnel(Box::new(spawn_tunnel(argv)?)));
    }
    let tcp = connect_tcp(&cfg.host, cfg.port(), cfg.connect_timeout).await?;
    if !implicit {
        return Ok(Transport::Plain(tcp));
    }
    let name = server_name(&cfg.host)?;
    tokio::time::timeout(
        cfg.connect_timeout,
        Transport::tls_handshake(tcp, tls.ok_or_else(no_tls)?, name),
    )
    .await
    .map_err(|_| Error::Timeout("TLS handshake".into()))?
    .map_err(|e| handshake_error(&e, trust))
}
