//! A private Cyrus IMAP 3.6 per test: the second real server of the suite, and the
//! one that speaks NTLM for real (seed E0001), all inside one temporary directory
//! that is removed on drop.
//!
//! Debian's `cyrus-imapd` conflicts with `dovecot-imapd`, so `scripts/install-cyrus` installs
//! the support packages (cyrus-common: `master`, `ctl_cyrusdb` and the libraries; sasl2-bin;
//! libsasl2-modules with the NTLM plugin) and unpacks `imapd` alone into a private folder
//! (`$MAILFOLD_CYRUS_ROOT`, default `/opt/mailfold/cyrus-imapd`). An instance here is that
//! `imapd` run by `/usr/lib/cyrus/bin/master` in the foreground, as this process' child, with
//! its own `imapd.conf` and `cyrus.conf` (listeners on 127.0.0.1 at free ports), users in a
//! private sasldb (`sasl_pwcheck_method: auxprop`), and the per-run CA of [`TestPki`].
//!
//! Facts it relies on, checked against Debian 12's 3.6.1: the master reports a failed bind
//! only to syslog and keeps running, hence the check (module `procfs`) that it holds its
//! sockets; as root it drops to `cyrus_user` (the package's `cyrus`), so everything it
//! reads is owned by that user; `servername: localhost` makes `localhost` the SASL realm,
//! the DIGEST-MD5 realm and the NTLM target (`LOCALHOST`); the hierarchy delimiter is `/`
//! (`unixhierarchysep`, `altnamespace`, both Cyrus 3 defaults, set explicitly here).
//!
//! Setup (mailboxes, messages) goes through IMAP over implicit TLS with a small blocking
//! client (module `client`): users' INBOXes are created by the admin, everything else as the user,
//! so names are exactly what the client under test sees.

mod client;
mod procfs;
mod real;

pub use real::RealServer;

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Gid, Group, Pid, Uid, User};

use crate::instance::TestUser;
use crate::instance::{
    chown, exits_within, greeting, instance_name, make_owned_dir, nth_user, on_free_ports,
    recorded_sessions, run_bounded, stop_all, test_users, write_file, PortTaken, SPECIAL_USE,
};
use crate::pki::{CertKind, TestPki};
use crate::ports::free_port;
use crate::rng::SplitMix64;
use client::{quote, Client};

/// The SASL mechanisms a private Cyrus offers (`sasl_mech_list`): all of them authenticate
/// for real against the sasldb, NTLM included.
pub const CYRUS_MECHANISMS: &[&str] = &[
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "DIGEST-MD5",
    "NTLM",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
];

/// Login name of the administrator (`admins:`), who creates the users' INBOXes.
pub const CYRUS_ADMIN: &str = "cyradmin";

/// The instance's `servername`: the SASL and DIGEST-MD5 realm, and (upper-cased) the NTLM
/// target name in the server's CHALLENGE.
pub const CYRUS_SERVER_NAME: &str = "localhost";

/// Environment variable naming the folder `imapd` was unpacked into (see
/// `scripts/install-cyrus`).
pub const CYRUS_ROOT_ENV: &str = "MAILFOLD_CYRUS_ROOT";

/// Default of [`CYRUS_ROOT_ENV`].
pub const DEFAULT_CYRUS_ROOT: &str = "/opt/mailfold/cyrus-imapd";

/// Set to a non-empty value to turn "Cyrus is not installed" from a skip into a failure
/// (where `scripts/install-cyrus` has run; see [`crate::require`]).
pub const REQUIRE_CYRUS_ENV: &str = "MAILFOLD_REQUIRE_CYRUS";

/// Where cyrus-common puts `master` and `ctl_cyrusdb` (and cyrus-imapd, when installed
/// normally, `imapd`).
const LIBEXEC: &str = "/usr/lib/cyrus/bin";
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Bound on startup (typical: a few hundred milliseconds).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a master that has not bound its ports yet is given before the start is retried.
const BIND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the master gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Bound on a helper program (saslpasswd2).
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// Prefix of instance directories in the temporary directory (for [`reap_orphans`]).
const DIR_PREFIX: &str = "mfcy";
/// File in an instance directory naming the owning test process.
const OWNER_FILE: &str = "owner";

/// Options for [`Cyrus`]; create with [`Cyrus::builder`].
#[derive(Debug, Clone)]
pub struct CyrusBuilder {
    users: usize,
    special_use: bool,
    plaintext_auth: bool,
    telemetry: bool,
    extra_config: String,
}

impl Default for CyrusBuilder {
    fn default() -> Self {
        Self {
            users: 2,
            special_use: false,
            plaintext_auth: true,
            telemetry: false,
            extra_config: String::new(),
        }
    }
}

impl CyrusBuilder {
    /// Number of test users (`user1`..`userN`); default 2.
    pub fn users(mut self, n: usize) -> Self {
        self.users = n;
        self
    }

    /// Whether each user gets Sent, Drafts, Trash, Junk and Archive with their RFC 6154
    /// special-use attributes (created with `CREATE ... (USE (...))`); default false, so a
    /// fresh account has only INBOX.
    pub fn special_use(mut self, on: bool) -> Self {
        self.special_use = on;
        self
    }

    /// Whether passwords may be sent over the cleartext listener before STARTTLS
    /// (`allowplaintext`); default true, as Dovecot allows on loopback. When false, Cyrus
    /// advertises LOGINDISABLED and no plaintext mechanism before STARTTLS.
    pub fn plaintext_auth(mut self, on: bool) -> Self {
        self.plaintext_auth = on;
        self
    }

    /// Record every session's protocol (Cyrus "telemetry": `conf/log/USER/`); read it with
    /// [`Cyrus::telemetry`]. Default off.
    pub fn telemetry(mut self, on: bool) -> Self {
        self.telemetry = on;
        self
    }

    /// Append raw `imapd.conf` lines (e.g. `munge8bit: no`) after the generated settings.
    pub fn extra_config(mut self, text: &str) -> Self {
        self.extra_config.push_str(text);
        self.extra_config.push('\n');
        self
    }

    /// Starts the instance and waits until it greets with its mechanisms.
    ///
    /// # Panics
    /// If Cyrus is not installed or fails to start; the message says what to do or holds
    /// the master's output.
    pub fn start(self) -> Cyrus {
        Cyrus::launch(self)
    }
}

/// Who the Cyrus processes run as and own the files.
#[derive(Debug, Clone)]
struct Identity {
    user: String,
    group: String,
    uid: Uid,
    gid: Gid,
    as_root: bool,
}

impl Identity {
    /// Who must own what the Cyrus processes read: `None` when they run as this user.
    fn owner(&self) -> Option<(Uid, Gid)> {
        self.as_root.then_some((self.uid, self.gid))
    }

    fn detect() -> Identity {
        let (user, as_root) = if Uid::effective().is_root() {
            // As root the master drops to `cyrus_user`, which must own everything it
            // reads; cyrus-common creates `cyrus` (group `mail`).
            let cyrus = User::from_name("cyrus").ok().flatten().unwrap_or_else(|| {
                panic!("system user 'cyrus' is missing: run scripts/install-cyrus as root")
            });
            (cyrus, true)
        } else {
            let me = User::from_uid(Uid::current())
                .ok()
                .flatten()
                .expect("the current user must have a passwd entry");
            (me, false)
        };
        let group = Group::from_gid(user.gid)
            .ok()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_else(|| panic!("group {} of {} has no name", user.gid, user.name));
        Identity {
            group,
            uid: user.uid,
            gid: user.gid,
            user: user.name,
            as_root,
        }
    }
}

/// A running private Cyrus IMAP; stopped (SIGTERM, then SIGKILL) and deleted on drop.
pub struct Cyrus {
    // `Drop::drop` stops the processes before the fields (and so the directory) are dropped.
    child: Option<Child>,
    imap: SocketAddr,
    imaps: SocketAddr,
    users: Vec<TestUser>,
    admin: TestUser,
    telemetry: bool,
    pki: TestPki,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Cyrus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cyrus")
            .field("dir", &self.dir.path())
            .field("imap", &self.imap)
            .field("imaps", &self.imaps)
            .finish_non_exhaustive()
    }
}

/// Why a start attempt failed.
enum StartFailure {
    /// Another process holds one of the chosen ports: retry with new ones.
    PortTaken(String),
    /// Anything else: give up.
    Fatal(String),
}

impl Cyrus {
    /// Starts an instance with the default options: 2 users with only an INBOX, STARTTLS
    /// and implicit-TLS listeners, every mechanism of [`CYRUS_MECHANISMS`].
    ///
    /// # Panics
    /// If Cyrus is not installed or fails to start.
    pub fn start() -> Cyrus {
        CyrusBuilder::default().start()
    }

    /// Options for a new instance.
    pub fn builder() -> CyrusBuilder {
        CyrusBuilder::default()
    }

    /// Whether everything an instance needs is installed (see `scripts/install-cyrus`).
    pub fn is_installed() -> bool {
        missing_parts().is_empty()
    }

    /// Sets up the instance's directory, users and certificate, starts the master on free
    /// ports (new ones while another process takes one first), then creates the mailboxes.
    fn launch(opts: CyrusBuilder) -> Cyrus {
        let missing = missing_parts();
        assert!(
            missing.is_empty(),
            "Cyrus IMAP is not installed (missing: {}); run scripts/install-cyrus as root",
            missing.join(", ")
        );
        reap_orphans();
        let identity = Identity::detect();
        let dir = instance_dir(&identity);
        let root = dir.path().to_path_buf();
        let mut rng = SplitMix64::from_entropy();
        let instance = instance_name("mfcyrus");
        // Cyrus has no OAuth here: the users' tokens stay empty.
        let users = test_users(&mut rng, opts.users, false);
        let admin = TestUser {
            name: CYRUS_ADMIN.into(),
            password: format!("adm-{}", rng.hex(16)),
            token: String::new(),
        };
        write_sasldb(&root, &users, &admin, &identity);
        if opts.telemetry {
            for user in users.iter().chain(std::iter::once(&admin)) {
                make_owned_dir(&root.join("conf/log").join(&user.name), identity.owner());
            }
        }
        let pki = TestPki::generate();
        install_certificate(&root, &pki, &identity);
        let (child, imap, imaps) = on_free_ports("Cyrus", || {
            let imap = SocketAddr::new(IpAddr::V4(LOOPBACK), free_port(IpAddr::V4(LOOPBACK)));
            let imaps = SocketAddr::new(IpAddr::V4(LOOPBACK), free_port(IpAddr::V4(LOOPBACK)));
            write_file(
                &root.join("imapd.conf"),
                imapd_conf(&root, &opts, &identity, &instance).as_bytes(),
                0o644,
            );
            write_file(
                &root.join("cyrus.conf"),
                cyrus_conf(&root, imap, imaps).as_bytes(),
                0o644,
            );
            let mut child = spawn_master(&root);
            match wait_ready(&mut child, imap, imaps) {
                Ok(()) => Ok((child, imap, imaps)),
                Err(StartFailure::Fatal(why)) => {
                    stop_instance(&mut child, &root.join("imapd.conf"));
                    let log = read_log(&root);
                    panic!("private Cyrus failed to start: {why}\n--- output ---\n{log}");
                }
                Err(StartFailure::PortTaken(why)) => {
                    // Another process took a port in the meantime: try again with new ones.
                    stop_instance(&mut child, &root.join("imapd.conf"));
                    Err(PortTaken(why))
                }
            }
        });
        let cyrus = Cyrus {
            child: Some(child),
            imap,
            imaps,
            users,
            admin,
            telemetry: opts.telemetry,
            pki,
            dir,
        };
        cyrus.provision(opts.special_use);
        cyrus
    }

    /// Creates each user's INBOX as the admin (a Cyrus user has no mailbox until one is
    /// created), then the special-use mailboxes as the user.
    fn provision(&self, special_use: bool) {
        let mut admin = self
            .connect_as(CYRUS_ADMIN)
            .unwrap_or_else(|e| panic!("admin login failed: {e}\n{}", self.log()));
        for user in &self.users {
            // `user/NAME` is the INBOX of NAME in the admin's view (`/` delimiter).
            let mailbox =
                quote(&format!("user/{}", user.name)).unwrap_or_else(|e| panic!("user name: {e}"));
            admin
                .command(&format!("CREATE {mailbox}"))
                .and_then(|r| r.ok())
                .unwrap_or_else(|e| panic!("create INBOX of {}: {e}\n{}", user.name, self.log()));
        }
        admin.logout();
        if special_use {
            for user in &self.users {
                let mut client = self
                    .connect_as(&user.name)
                    .unwrap_or_else(|e| panic!("login as {}: {e}", user.name));
                for (name, flag) in SPECIAL_USE {
                    client
                        .command(&format!("CREATE {name} (USE ({flag}))"))
                        .and_then(|r| r.ok())
                        .unwrap_or_else(|e| panic!("create {name} for {}: {e}", user.name));
                    client
                        .command(&format!("SUBSCRIBE {name}"))
                        .and_then(|r| r.ok())
                        .unwrap_or_else(|e| panic!("subscribe {name} for {}: {e}", user.name));
                }
                client.logout();
            }
        }
    }

    /// Address of the cleartext listener that offers STARTTLS (the port 143 role).
    pub fn imap_addr(&self) -> SocketAddr {
        self.imap
    }

    /// Address of the implicit-TLS listener (the port 993 role).
    pub fn imaps_addr(&self) -> SocketAddr {
        self.imaps
    }

    /// Path of the CA certificate that issued the server certificate: pass it as the
    /// account's `ca_file`. The server certificate names `IP:127.0.0.1` and `DNS:localhost`.
    pub fn ca_file(&self) -> PathBuf {
        self.pki.ca_file()
    }

    /// The certificates of this run (the server uses [`CertKind::Valid`]).
    pub fn pki(&self) -> &TestPki {
        &self.pki
    }

    /// All test users, in order `user1`, `user2`, ... Their `token` is empty: this Cyrus
    /// has no OAuth.
    pub fn users(&self) -> &[TestUser] {
        &self.users
    }

    /// The `i`-th test user, counting from 0 (so `user(0)` is `user1`).
    ///
    /// # Panics
    /// If the instance was built with fewer users.
    pub fn user(&self, i: usize) -> &TestUser {
        nth_user(&self.users, i, "Cyrus")
    }

    /// The administrator ([`CYRUS_ADMIN`]) and its password.
    pub fn admin(&self) -> &TestUser {
        &self.admin
    }

    /// The hierarchy delimiter: always `/` (`unixhierarchysep: yes`).
    pub fn delimiter(&self) -> char {
        '/'
    }

    /// The `servername`, which is also the SASL realm and the NTLM target.
    pub fn server_name(&self) -> &'static str {
        CYRUS_SERVER_NAME
    }

    /// The PID of the master process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The instance's temporary directory (configuration, sasldb, spool, log).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The generated `imapd.conf`.
    pub fn config_path(&self) -> PathBuf {
        self.root().join("imapd.conf")
    }

    /// The generated `cyrus.conf`.
    pub fn cyrus_conf_path(&self) -> PathBuf {
        self.root().join("cyrus.conf")
    }

    /// What the master and its children printed. Cyrus logs to syslog, so this is usually
    /// empty unless something failed badly; [`CyrusBuilder::telemetry`] records protocols.
    pub fn log(&self) -> String {
        read_log(self.root())
    }

    /// Whether sessions are recorded (see [`CyrusBuilder::telemetry`]).
    pub fn telemetry_enabled(&self) -> bool {
        self.telemetry
    }

    /// The protocol of every session of `user` so far, as Cyrus' telemetry recorded it
    /// (`<` lines from the client, `>` from the server, interleaved), each file headed by
    /// its name. Empty unless built with [`CyrusBuilder::telemetry`].
    pub fn telemetry(&self, user: &str) -> String {
        recorded_sessions(&self.root().join("conf/log").join(user))
    }

    fn password_of(&self, user: &str) -> Result<&str, String> {
        self.users
            .iter()
            .chain(std::iter::once(&self.admin))
            .find(|u| u.name == user)
            .map(|u| u.password.as_str())
            .ok_or_else(|| format!("{user} is not a user of this instance"))
    }

    fn connect_as(&self, user: &str) -> Result<Client, String> {
        Client::login(
            self.imaps,
            self.pki.client_config(),
            user,
            self.password_of(user)?,
        )
    }

    /// Logs in as `user` (a test user or [`CYRUS_ADMIN`]) over implicit TLS, runs each
    /// command line (without tag), and returns every command's response lines, the tagged
    /// one last. A command answered NO or BAD does not stop the rest.
    ///
    /// `Err` only when the connection or the login fails.
    pub fn run_as(&self, user: &str, commands: &[&str]) -> Result<Vec<Vec<String>>, String> {
        let mut client = self.connect_as(user)?;
        let mut out = Vec::with_capacity(commands.len());
        for command in commands {
            out.push(client.command(command)?.lines);
        }
        client.logout();
        Ok(out)
    }

    /// Creates `mailbox` (a name as `user` sees it, `/` as delimiter) for `user`.
    ///
    /// # Panics
    /// If Cyrus refuses (e.g. it exists already).
    pub fn create_mailbox(&self, user: &str, mailbox: &str) {
        let result = self.connect_as(user).and_then(|mut client| {
            let reply = client.command(&format!("CREATE {}", quote(mailbox)?))?;
            client.logout();
            reply.ok()
        });
        if let Err(e) = result {
            panic!("create {mailbox} for {user} failed: {e}");
        }
    }

    /// APPENDs `message` to `user`'s `mailbox` as that user and returns its UID (from
    /// APPENDUID); `Err` carries the server's tagged answer. Cyrus checks what it is given:
    /// it refuses some malformed messages (e.g. "Message contains invalid header") and
    /// bare CR or LF.
    pub fn try_deliver(&self, user: &str, mailbox: &str, message: &[u8]) -> Result<u32, String> {
        let mut client = self.connect_as(user)?;
        let reply = client.append(mailbox, message)?;
        client.logout();
        let reply = reply.ok()?;
        reply
            .append_uid()
            .ok_or_else(|| format!("no APPENDUID in {:?}", reply.lines))
    }

    /// Like [`Cyrus::try_deliver`].
    ///
    /// # Panics
    /// If Cyrus refuses the message or the mailbox does not exist.
    pub fn deliver(&self, user: &str, mailbox: &str, message: &[u8]) -> u32 {
        self.try_deliver(user, mailbox, message)
            .unwrap_or_else(|e| panic!("deliver to {user}/{mailbox} failed: {e}"))
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_instance(&mut child, &self.config_path());
        }
        // The temporary directory goes when `dir` drops, after the processes are gone.
    }
}

/// The instance's temporary directory, marked with its owner (for [`reap_orphans`]), with
/// the folders the Cyrus user writes to.
fn instance_dir(identity: &Identity) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(DIR_PREFIX)
        .tempdir()
        .expect("create the Cyrus temporary directory");
    let root = dir.path();
    // cyrus.conf quotes its command lines with `"` and splits them at blanks.
    let shown = root.display().to_string();
    assert!(
        !shown.contains(|c: char| c == '"' || c.is_whitespace()),
        "the temporary directory {shown:?} contains a quote or a blank, which cyrus.conf \
         cannot express; set TMPDIR to a plain path"
    );
    // The Cyrus processes run as another user and must traverse to their files.
    fs::set_permissions(root, fs::Permissions::from_mode(0o755))
        .expect("make the Cyrus directory traversable");
    if let Some(owner) = Owner::current() {
        write_file(
            &root.join(OWNER_FILE),
            format!("{} {}\n", owner.pid, owner.start).as_bytes(),
            0o644,
        );
    }
    for sub in ["conf", "conf/socket", "conf/sieve", "spool", "tls"] {
        make_owned_dir(&root.join(sub), identity.owner());
    }
    dir
}

/// Stores every user's password, the admin's too, in the instance's sasldb.
fn write_sasldb(root: &Path, users: &[TestUser], admin: &TestUser, identity: &Identity) {
    let sasldb = root.join("sasldb2");
    for user in users.iter().chain(std::iter::once(admin)) {
        set_sasl_password(&sasldb, &user.name, &user.password);
    }
    chown(&sasldb, identity.owner());
}

/// Copies the server certificate and key of `pki` into the instance: TestPki's directory is
/// private to this process' user, and the Cyrus user needs its own copies.
fn install_certificate(root: &Path, pki: &TestPki, identity: &Identity) {
    for (from, name) in [
        (pki.cert_file(CertKind::Valid), "server.crt"),
        (pki.key_file(CertKind::Valid), "server.key"),
    ] {
        let to = root.join("tls").join(name);
        fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        fs::set_permissions(&to, fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", to.display()));
        chown(&to, identity.owner());
    }
}

/// Starts the master in the foreground, as this process' child, on the instance's
/// configuration, its output in `master.log`.
fn spawn_master(root: &Path) -> Child {
    let log = fs::File::create(root.join("master.log")).expect("create the master log");
    Command::new(Path::new(LIBEXEC).join("master"))
        .arg("-C")
        .arg(root.join("imapd.conf"))
        .arg("-M")
        .arg(root.join("cyrus.conf"))
        .arg("-p")
        .arg(root.join("conf/master.pid"))
        // Keep stdout/stderr (our log file) instead of closing them: without syslog,
        // that is the only place startup errors show.
        .arg("-D")
        .current_dir(root)
        // A master that is told to stop sends SIGTERM to its whole process group
        // (`kill(0, SIGTERM)`, seen with strace). In the test's group that would stop
        // every other instance of the run; in its own group it reaches only its
        // imapd children.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("duplicate a file handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the Cyrus master: {e}"))
}

/// What is missing for an instance, as short names for a message.
pub(crate) fn missing_parts() -> Vec<String> {
    let mut missing = Vec::new();
    for tool in ["master", "ctl_cyrusdb"] {
        if !Path::new(LIBEXEC).join(tool).is_file() {
            missing.push(format!("{LIBEXEC}/{tool} (cyrus-common)"));
        }
    }
    if imapd_path().is_none() {
        missing.push(format!(
            "imapd (unpacked cyrus-imapd in ${CYRUS_ROOT_ENV} or {DEFAULT_CYRUS_ROOT})"
        ));
    }
    if !Path::new("/usr/sbin/saslpasswd2").is_file() {
        missing.push("saslpasswd2 (sasl2-bin)".into());
    }
    if !sasl_plugin_installed("libntlm.so") {
        missing.push("the SASL NTLM plugin (libsasl2-modules)".into());
    }
    if Uid::effective().is_root() && User::from_name("cyrus").ok().flatten().is_none() {
        missing.push("the system user 'cyrus' (cyrus-common)".into());
    }
    missing
}

/// The `imapd` to run: the privately unpacked one, else a normally installed one.
fn imapd_path() -> Option<PathBuf> {
    let root = std::env::var_os(CYRUS_ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CYRUS_ROOT));
    [
        root.join("usr/lib/cyrus/bin/imapd"),
        Path::new(LIBEXEC).join("imapd"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

fn sasl_plugin_installed(file: &str) -> bool {
    let Ok(entries) = fs::read_dir("/usr/lib") else {
        return false;
    };
    entries
        .flatten()
        .map(|e| e.path().join("sasl2").join(file))
        .chain(std::iter::once(Path::new("/usr/lib/sasl2").join(file)))
        .any(|p| p.exists())
}

fn imapd_conf(root: &Path, opts: &CyrusBuilder, identity: &Identity, instance: &str) -> String {
    let root = root.display();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    format!(
        "# Generated by mailfold-testsupport for one test run.\n\
configdirectory: {root}/conf\n\
partition-default: {root}/spool\n\
sievedir: {root}/conf/sieve\n\
servername: {CYRUS_SERVER_NAME}\n\
cyrus_user: {user}\n\
cyrus_group: {group}\n\
admins: {CYRUS_ADMIN}\n\
syslog_prefix: {instance}\n\
# Delimiter `/` and INBOX children at the top level: the Cyrus 3 defaults, made explicit.\n\
unixhierarchysep: yes\n\
altnamespace: yes\n\
sasl_pwcheck_method: auxprop\n\
sasl_auxprop_plugin: sasldb\n\
sasl_sasldb_path: {root}/sasldb2\n\
sasl_mech_list: {mechanisms}\n\
allowplaintext: {plaintext}\n\
# Tests try wrong passwords on purpose; no 3 s pause per failure.\n\
failedloginpause: 0\n\
# Without idled, IDLE polls; once a second lets IDLE tests see changes promptly.\n\
imapidlepoll: 1\n\
tls_server_cert: {root}/tls/server.crt\n\
tls_server_key: {root}/tls/server.key\n\
tls_versions: tls1_2 tls1_3\n\
{extra}",
        user = identity.user,
        group = identity.group,
        mechanisms = CYRUS_MECHANISMS.join(" "),
        plaintext = yes_no(opts.plaintext_auth),
        extra = opts.extra_config,
    )
}

/// The master's configuration: crash recovery of the databases at start, and the two
/// listeners. `prefork=0`: no idle imapd waiting between tests; `maxuse=1`: each imapd
/// serves one connection and exits, so nothing carries over from one connection to the next.
fn cyrus_conf(root: &Path, imap: SocketAddr, imaps: SocketAddr) -> String {
    let conf = root.join("imapd.conf");
    let conf = conf.display();
    // `imapd_path` was checked by `launch`; the fallback name only shows in a failure.
    let imapd = imapd_path().unwrap_or_else(|| PathBuf::from("imapd"));
    let imapd = imapd.display();
    format!(
        "# Generated by mailfold-testsupport for one test run.\n\
START {{\n  recover cmd=\"{LIBEXEC}/ctl_cyrusdb -C {conf} -r\"\n}}\n\
SERVICES {{\n  \
imap cmd=\"{imapd} -C {conf}\" listen=\"{imap}\" prefork=0 maxuse=1\n  \
imaps cmd=\"{imapd} -s -C {conf}\" listen=\"{imaps}\" prefork=0 maxuse=1\n}}\n\
EVENTS {{\n}}\n"
    )
}

/// Stores `password` for `user` in the sasldb at `db` under this instance's realm.
fn set_sasl_password(db: &Path, user: &str, password: &str) {
    let mut cmd = Command::new("/usr/sbin/saslpasswd2");
    cmd.arg("-f")
        .arg(db)
        .args(["-c", "-p", "-u", CYRUS_SERVER_NAME, user]);
    if let Err(e) = run_bounded(cmd, Some(password.as_bytes()), TOOL_TIMEOUT) {
        panic!("saslpasswd2 for {user} failed: {e}");
    }
}

/// Waits until the master holds both listeners and the STARTTLS listener greets with
/// `AUTH=` (imapd is spawned per connection, so that greeting proves the whole chain:
/// master, imapd, configuration, SASL plugins).
fn wait_ready(child: &mut Child, imap: SocketAddr, imaps: SocketAddr) -> Result<(), StartFailure> {
    let started = Instant::now();
    let deadline = started + START_TIMEOUT;
    let pid = child.id();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StartFailure::Fatal(format!("master exited with {status}")));
        }
        if Instant::now() > deadline {
            return Err(StartFailure::Fatal(format!(
                "no greeting with AUTH= within {START_TIMEOUT:?}"
            )));
        }
        let mut bound = true;
        for addr in [imap, imaps] {
            match procfs::listener_inode(LOOPBACK, addr.port()) {
                Some(inode) if procfs::owns_socket(pid, inode) => {}
                Some(_) => {
                    return Err(StartFailure::PortTaken(format!(
                        "another process listens on {addr}"
                    )))
                }
                None => bound = false,
            }
        }
        if !bound {
            if started.elapsed() > BIND_TIMEOUT {
                // The master logs bind failures only to syslog; a port taken and
                // released again in between looks like this.
                return Err(StartFailure::PortTaken(format!(
                    "the master did not bind {} and {} within {BIND_TIMEOUT:?}",
                    imap, imaps
                )));
            }
        } else if greeting(imap, Duration::from_millis(1000), 8192)
            .is_some_and(|g| g.contains("AUTH="))
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGTERM to the master (our child; it takes its imapd children with it), SIGKILL after
/// a grace period, then the same for any process left that was started with this
/// instance's configuration file (orphans after a SIGKILL).
fn stop_instance(child: &mut Child, config: &Path) {
    // The master leads its own process group (see `launch`), so its PID names the group.
    let group = i32::try_from(child.id()).ok().map(Pid::from_raw);
    if let Some(pid) = group {
        let _ = kill(pid, Signal::SIGTERM);
    }
    if !exits_within(child, STOP_GRACE) {
        if let Some(pid) = group {
            let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    stop_leftovers(config);
}

/// SIGTERM, then SIGKILL, to processes still running with this instance's configuration
/// (imapd children that outlived a killed master), each wait bounded.
fn stop_leftovers(config: &Path) {
    let needle = config.display().to_string();
    stop_all(|| procfs::processes_with_arg(&needle));
}

/// Stops instances whose owning test process has died without dropping them (a SIGKILLed
/// or aborted test run) and removes their directories. Only instances this harness made
/// are touched: a master is recognised by the `-C <dir>/imapd.conf` argument of a
/// directory that holds this harness' owner file, and is stopped only when the process
/// named in that file is gone.
fn reap_orphans() {
    let Some(tmp) = std::env::temp_dir().canonicalize().ok() else {
        return;
    };
    let Ok(entries) = fs::read_dir(&tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        if !is_ours {
            continue;
        }
        let Some(owner) = fs::read_to_string(dir.join(OWNER_FILE))
            .ok()
            .and_then(|s| Owner::parse(&s))
        else {
            continue;
        };
        if owner.alive() {
            continue;
        }
        let config = dir.join("imapd.conf");
        let masters = procfs::processes_with_arg(&config.display().to_string());
        for pid in &masters {
            let _ = nix::sys::signal::killpg(*pid, Signal::SIGKILL);
        }
        stop_leftovers(&config);
        let _ = fs::remove_dir_all(&dir);
    }
}

/// The test process that owns an instance: its PID and its start time (so a recycled
/// PID is not mistaken for the owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    pid: u32,
    start: u64,
}

impl Owner {
    fn current() -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner {
            pid,
            start: process_start(pid)?,
        })
    }

    fn parse(text: &str) -> Option<Owner> {
        let (pid, start) = text.trim().split_once(' ')?;
        Some(Owner {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        })
    }

    fn alive(self) -> bool {
        process_start(self.pid) == Some(self.start)
    }
}

/// Field 22 of /proc/PID/stat: the start time in clock ticks since boot; `None` when the
/// process is gone or a zombie (dead, waiting to be reaped).
fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold blanks; fields after it are plain.
    let (_, rest) = stat.rsplit_once(") ")?;
    if rest.starts_with('Z') {
        return None;
    }
    rest.split(' ').nth(19)?.parse().ok()
}

fn read_log(root: &Path) -> String {
    let out = fs::read_to_string(root.join("master.log")).unwrap_or_default();
    format!("(Cyrus logs to syslog; master output follows)\n{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_file_round_trips_and_detects_a_recycled_pid() {
        let me = Owner::current().expect("this process has a /proc entry");
        assert!(me.alive());
        assert_eq!(
            Owner::parse(&format!("{} {}\n", me.pid, me.start)),
            Some(me)
        );
        let recycled = Owner {
            start: me.start.wrapping_add(1),
            ..me
        };
        assert!(!recycled.alive());
        assert_eq!(Owner::parse("garbage"), None);
    }

    #[test]
    fn cyrus_conf_names_both_listeners_and_the_config() {
        let root = Path::new("/tmp/mfcyTEST");
        let imap: SocketAddr = "127.0.0.1:20143".parse().unwrap();
        let imaps: SocketAddr = "127.0.0.1:20993".parse().unwrap();
        let text = cyrus_conf(root, imap, imaps);
        assert!(text.contains("listen=\"127.0.0.1:20143\""), "{text}");
        assert!(text.contains("-s -C /tmp/mfcyTEST/imapd.conf\" listen=\"127.0.0.1:20993\""));
        assert!(text.contains("ctl_cyrusdb -C /tmp/mfcyTEST/imapd.conf -r"));
    }
}
