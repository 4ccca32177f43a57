//! A private Dovecot instance per test: its own config, ports, users, certificates and mail,
//! all inside one temporary directory, stopped and removed on drop.
//!
//! The facts this relies on were checked on Debian 12's Dovecot 2.3.19 (see the project's
//! dovecot notes): `dovecot -F -c CONF` runs a master in the foreground (so this process owns
//! it and reaps it), listeners bind before the auth process is up (hence the wait for `AUTH=` in
//! the greeting), Dovecot refuses to touch mail as root (hence an unprivileged mail owner), and a
//! connection whose local and remote address are equal counts as secured, so 127.0.0.1 clients
//! may always send passwords in clear. The optional "plaintext" listener therefore sits on
//! 127.0.0.2, where Dovecot treats the connection as insecure and offers no STARTTLS, like a
//! real cleartext-only server.
//!
//! The system's own Dovecot (if the package started one on 143/993) is never touched: nothing
//! here reads /etc/dovecot, binds a fixed port, or signals a process it did not start.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Gid, Pid, Uid, User};

use crate::instance::{
    exits_within, greeting, instance_name, make_owned_dir, nth_user, on_free_ports,
    processes_where, recorded_sessions, run_bounded, stop_all, test_users, write_file, PortTaken,
    TestUser, SPECIAL_USE,
};
use crate::oauth::Introspection;
use crate::pki::{CertKind, TestPki};
use crate::ports::free_port;
use crate::rng::SplitMix64;

/// Every SASL mechanism Debian's Dovecot 2.3 accepts in `auth_mechanisms` without extra
/// infrastructure (NTLM is unknown to it; OTP needs an OTP passdb).
pub const MECHANISMS: &[&str] = &[
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "DIGEST-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "ANONYMOUS",
    "OAUTHBEARER",
    "XOAUTH2",
];

/// The login name ANONYMOUS authentication maps to (`auth_anonymous_username`).
pub const ANONYMOUS_USER: &str = "anonymous";

/// The second loopback address, used by the optional plaintext listener (see module docs).
const PLAINTEXT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// How long startup may take before the test is failed (typical: well under a second).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a doveadm call may take.
const DOVEADM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long Dovecot gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Mailbox layout of the users' Maildirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Maildir++ (`.Sent`, `.a.b`): Dovecot's default, hierarchy delimiter `.`.
    MaildirPlusPlus,
    /// `LAYOUT=fs` (`Sent/`, `a/b/`): hierarchy delimiter `/`.
    Fs,
}

impl Layout {
    /// The IMAP hierarchy delimiter the server announces for this layout.
    pub fn delimiter(self) -> char {
        match self {
            Layout::MaildirPlusPlus => '.',
            Layout::Fs => '/',
        }
    }
}

/// The optional third listener, on 127.0.0.2, without TLS of any kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plaintext {
    /// No such listener.
    Off,
    /// Cleartext only, and Dovecot accepts passwords on it (`disable_plaintext_auth = no`).
    AllowAuth,
    /// Cleartext only, and Dovecot advertises LOGINDISABLED and refuses cleartext passwords.
    LoginDisabled,
}

/// Options for [`Dovecot`]; create with [`Dovecot::builder`].
#[derive(Debug, Clone)]
pub struct DovecotBuilder {
    users: usize,
    layout: Layout,
    special_use: bool,
    plaintext: Plaintext,
    rawlog: bool,
    verbose: bool,
    extra_config: String,
}

impl Default for DovecotBuilder {
    fn default() -> Self {
        Self {
            users: 2,
            layout: Layout::MaildirPlusPlus,
            special_use: true,
            plaintext: Plaintext::Off,
            rawlog: false,
            verbose: false,
            extra_config: String::new(),
        }
    }
}

impl DovecotBuilder {
    /// Number of test users (`user1`..`userN`); default 2.
    pub fn users(mut self, n: usize) -> Self {
        self.users = n;
        self
    }

    /// Mailbox layout; default Maildir++ (delimiter `.`).
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Whether Sent, Drafts, Trash, Junk and Archive exist (auto-subscribed) with their
    /// RFC 6154 special-use attributes; default true. When false, a fresh account has only INBOX
    /// and the server does not advertise SPECIAL-USE.
    pub fn special_use(mut self, on: bool) -> Self {
        self.special_use = on;
        self
    }

    /// The optional cleartext-only listener on 127.0.0.2; default off.
    pub fn plaintext(mut self, plaintext: Plaintext) -> Self {
        self.plaintext = plaintext;
        self
    }

    /// Record every IMAP session's raw protocol (`rawlog_dir`); read it with
    /// [`Dovecot::rawlog`]. Default off.
    pub fn rawlog(mut self, on: bool) -> Self {
        self.rawlog = on;
        self
    }

    /// Turn on `auth_debug` and `mail_debug` in the log; default off.
    pub fn verbose(mut self, on: bool) -> Self {
        self.verbose = on;
        self
    }

    /// Append raw configuration text (e.g. `mail_plugins = zlib imap_zlib`) after the
    /// generated settings.
    pub fn extra_config(mut self, text: &str) -> Self {
        self.extra_config.push_str(text);
        self.extra_config.push('\n');
        self
    }

    /// Starts the instance and waits until it is ready to authenticate.
    ///
    /// # Panics
    /// If Dovecot is not installed or fails to start; the message includes its log.
    pub fn start(self) -> Dovecot {
        Dovecot::launch(self)
    }
}

/// Who runs the mail processes and owns the mail.
#[derive(Debug, Clone)]
struct Identity {
    internal_user: String,
    internal_group: String,
    login_user: String,
    mail_uid: Uid,
    mail_gid: Gid,
    first_valid_uid: u32,
    as_root: bool,
}

impl Identity {
    /// Who must own what the mail processes touch: `None` when they run as this user.
    fn owner(&self) -> Option<(Uid, Gid)> {
        self.as_root.then_some((self.mail_uid, self.mail_gid))
    }

    fn detect() -> Identity {
        if Uid::effective().is_root() {
            // Dovecot will not access mail as root; `nobody` exists on every Debian system and
            // `dovecot`/`dovenull` are created by the package.
            let nobody = User::from_name("nobody")
                .ok()
                .flatten()
                .expect("user 'nobody' must exist to own test mail when running as root");
            for name in ["dovecot", "dovenull"] {
                if User::from_name(name).ok().flatten().is_none() {
                    panic!(
                        "system user '{name}' is missing: is Dovecot installed? \
                         (apt-get install -y dovecot-imapd)"
                    );
                }
            }
            Identity {
                internal_user: "dovecot".into(),
                internal_group: "dovecot".into(),
                login_user: "dovenull".into(),
                mail_uid: nobody.uid,
                mail_gid: nobody.gid,
                first_valid_uid: 1,
                as_root: true,
            }
        } else {
            let uid = Uid::current();
            let me = User::from_uid(uid)
                .ok()
                .flatten()
                .expect("the current user must have a passwd entry");
            // Sockets are chowned to the internal group; a non-root master can only use its own.
            let group = nix::unistd::Group::from_gid(Gid::current())
                .ok()
                .flatten()
                .map(|g| g.name)
                .expect("the current group must have a group entry");
            Identity {
                internal_user: me.name.clone(),
                internal_group: group,
                login_user: me.name,
                mail_uid: uid,
                mail_gid: Gid::current(),
                first_valid_uid: uid.as_raw(),
                as_root: false,
            }
        }
    }
}

/// A running private Dovecot; stopped (SIGTERM, then SIGKILL) and deleted on drop.
pub struct Dovecot {
    // `Drop::drop` stops the processes; it runs before the fields (and so the temporary
    // directory) are dropped.
    child: Option<Child>,
    instance: String,
    imap: SocketAddr,
    imaps: SocketAddr,
    plaintext: Option<SocketAddr>,
    users: Vec<TestUser>,
    layout: Layout,
    rawlog: bool,
    identity: Identity,
    introspection: Introspection,
    pki: TestPki,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Dovecot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dovecot")
            .field("instance", &self.instance)
            .field("dir", &self.dir.path())
            .field("imap", &self.imap)
            .field("imaps", &self.imaps)
            .field("plaintext", &self.plaintext)
            .finish_non_exhaustive()
    }
}

impl Dovecot {
    /// Starts an instance with the default options: 2 users, Maildir++, special-use mailboxes,
    /// STARTTLS and implicit-TLS listeners.
    ///
    /// # Panics
    /// If Dovecot is not installed or fails to start.
    pub fn start() -> Dovecot {
        DovecotBuilder::default().start()
    }

    /// Options for a new instance.
    pub fn builder() -> DovecotBuilder {
        DovecotBuilder::default()
    }

    /// Whether the Dovecot binaries are installed, for tests that prefer to skip loudly.
    pub fn is_installed() -> bool {
        binary("dovecot").is_file() && binary("doveadm").is_file()
    }

    /// Sets up the instance's directory, users, OAuth endpoint and certificates, then starts
    /// the master on free ports (new ones while another process takes one first).
    fn launch(opts: DovecotBuilder) -> Dovecot {
        assert!(
            Self::is_installed(),
            "Dovecot is not installed (apt-get install -y dovecot-imapd)"
        );
        let identity = Identity::detect();
        let dir = instance_dir();
        let root = dir.path().to_path_buf();
        let mut rng = SplitMix64::from_entropy();
        let instance = instance_name("mf");
        let users = test_users(&mut rng, opts.users, true);
        let passwd_path = write_passwd(&root, &users, &mut rng, &identity, opts.rawlog);
        let introspection = Introspection::start(
            users
                .iter()
                .map(|u| (u.token.clone(), u.name.clone()))
                .collect(),
        );
        let oauth_path = write_oauth_conf(&root, &introspection);
        let pki = TestPki::generate();
        let (child, imap, imaps, plaintext) = on_free_ports("Dovecot", || {
            let imap = SocketAddr::new(LOOPBACK, free_port(LOOPBACK));
            let imaps = SocketAddr::new(LOOPBACK, free_port(LOOPBACK));
            let plaintext = (opts.plaintext != Plaintext::Off)
                .then(|| SocketAddr::new(PLAINTEXT_IP, free_port(PLAINTEXT_IP)));
            let conf = config_text(&ConfigInput {
                opts: &opts,
                identity: &identity,
                instance: &instance,
                root: &root,
                passwd: &passwd_path,
                oauth: &oauth_path,
                pki: &pki,
                imap,
                imaps,
                plaintext,
            });
            write_file(&root.join("dovecot.conf"), conf.as_bytes(), 0o644);
            let mut child = spawn_master(&root);
            match wait_ready(&mut child, imap, &root) {
                Ok(()) => Ok((child, imap, imaps, plaintext)),
                Err(failure) => {
                    stop_instance(&mut child, &root, &instance);
                    let log = read_log(&root);
                    if !log.contains("Address already in use") {
                        panic!("private Dovecot failed to start: {failure}\n--- log ---\n{log}");
                    }
                    // Another process took one of the chosen ports in the meantime: try again
                    // with new ones.
                    Err(PortTaken(format!("{failure}\n{log}")))
                }
            }
        });
        Dovecot {
            child: Some(child),
            instance,
            imap,
            imaps,
            plaintext,
            users,
            layout: opts.layout,
            rawlog: opts.rawlog,
            identity,
            introspection,
            pki,
            dir,
        }
    }

    /// Address of the cleartext listener that offers STARTTLS (the usual port 143 role).
    pub fn imap_addr(&self) -> SocketAddr {
        self.imap
    }

    /// Address of the implicit-TLS listener (the usual port 993 role).
    pub fn imaps_addr(&self) -> SocketAddr {
        self.imaps
    }

    /// Address of the cleartext-only listener on 127.0.0.2, if enabled with
    /// [`DovecotBuilder::plaintext`].
    pub fn plaintext_addr(&self) -> Option<SocketAddr> {
        self.plaintext
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

    /// All test users, in order `user1`, `user2`, ...
    pub fn users(&self) -> &[TestUser] {
        &self.users
    }

    /// The `i`-th test user, counting from 0 (so `user(0)` is `user1`).
    ///
    /// # Panics
    /// If the instance was built with fewer users.
    pub fn user(&self, i: usize) -> &TestUser {
        nth_user(&self.users, i, "Dovecot")
    }

    /// The mailbox layout of this instance.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The hierarchy delimiter the server announces (`.` for Maildir++, `/` for LAYOUT=fs).
    pub fn delimiter(&self) -> char {
        self.layout.delimiter()
    }

    /// The instance's temporary directory (config, sockets, log, mail).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The generated `dovecot.conf`.
    pub fn config_path(&self) -> PathBuf {
        self.root().join("dovecot.conf")
    }

    /// The root of `user`'s Maildir (it holds `cur/`, `new/`, `tmp/` of INBOX).
    pub fn mail_root(&self, user: &str) -> PathBuf {
        self.root().join("mail").join(user).join("Maildir")
    }

    /// How many token checks the OAuth introspection endpoint has answered.
    pub fn oauth_requests(&self) -> usize {
        self.introspection.requests()
    }

    /// Dovecot's log (and anything it printed), for the message of a failing test.
    pub fn log(&self) -> String {
        read_log(self.root())
    }

    /// The raw protocol of every IMAP session of `user` so far (`*.in` is what the client
    /// sent, `*.out` what the server answered), each file headed by its name. Empty unless the
    /// instance was built with [`DovecotBuilder::rawlog`].
    pub fn rawlog(&self, user: &str) -> String {
        recorded_sessions(&self.root().join("mail").join(user).join("rawlog"))
    }

    /// Whether sessions are being recorded (see [`DovecotBuilder::rawlog`]).
    pub fn rawlog_enabled(&self) -> bool {
        self.rawlog
    }

    /// Runs `doveadm -c <this config> ARGS...` and returns its standard output.
    ///
    /// # Panics
    /// If doveadm fails or takes more than a minute; the message includes its stderr.
    pub fn doveadm(&self, args: &[&str]) -> String {
        self.try_doveadm(args, None)
            .unwrap_or_else(|e| panic!("doveadm {args:?} failed: {e}"))
    }

    /// Runs doveadm with optional standard input; `Err` carries the exit status and stderr.
    pub fn try_doveadm(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String, String> {
        let mut cmd = Command::new(binary("doveadm"));
        cmd.arg("-c").arg(self.config_path()).args(args);
        run_bounded(cmd, stdin, DOVEADM_TIMEOUT)
    }

    /// Stores `message` in `user`'s `mailbox` (`doveadm save`), as a delivery would.
    ///
    /// # Panics
    /// If doveadm refuses (e.g. the mailbox does not exist).
    pub fn deliver(&self, user: &str, mailbox: &str, message: &[u8]) {
        if let Err(e) = self.try_doveadm(&["save", "-u", user, "-m", mailbox], Some(message)) {
            panic!("deliver to {user}/{mailbox} failed: {e}");
        }
    }

    /// Creates `mailbox` (a full name with this instance's delimiter) for `user`.
    ///
    /// # Panics
    /// If doveadm refuses (e.g. it exists already).
    pub fn create_mailbox(&self, user: &str, mailbox: &str) {
        self.doveadm(&["mailbox", "create", "-u", user, mailbox]);
    }

    /// Forces `mailbox`'s UIDVALIDITY to `value`, as a server that lost its state would.
    ///
    /// # Panics
    /// If doveadm refuses.
    pub fn set_uidvalidity(&self, user: &str, mailbox: &str, value: u32) {
        self.doveadm(&[
            "mailbox",
            "update",
            "-u",
            user,
            "--uid-validity",
            &value.to_string(),
            mailbox,
        ]);
    }

    /// A mailbox's status items as doveadm reports them, e.g.
    /// `status(user, "INBOX", "messages uidvalidity")` → `INBOX messages=1 uidvalidity=42`.
    pub fn status(&self, user: &str, mailbox: &str, items: &str) -> String {
        self.doveadm(&["mailbox", "status", "-u", user, items, mailbox])
            .trim()
            .to_string()
    }

    /// Whether Dovecot's processes run unprivileged because this test runs as root.
    pub fn runs_as_root(&self) -> bool {
        self.identity.as_root
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_instance(&mut child, self.dir.path(), &self.instance);
        }
        // The temporary directory is removed when `dir` drops, after the processes are gone.
    }
}

/// The instance's temporary directory with its `run`, `state` and `mail` folders.
fn instance_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("mfdc")
        .tempdir()
        .expect("create the Dovecot temporary directory");
    let root = dir.path();
    // The login and mail processes run as other users and must traverse to their sockets
    // and homes.
    fs::set_permissions(root, fs::Permissions::from_mode(0o755))
        .expect("make the Dovecot directory traversable");
    for sub in ["run", "state", "mail"] {
        fs::create_dir(root.join(sub)).expect("create a Dovecot subdirectory");
    }
    dir
}

/// Makes the home of each test user and of [`ANONYMOUS_USER`] (with its `rawlog` folder when
/// `rawlog` is on), and writes the passwd-file that is both passdb and userdb; its path.
fn write_passwd(
    root: &Path,
    users: &[TestUser],
    rng: &mut SplitMix64,
    identity: &Identity,
    rawlog: bool,
) -> PathBuf {
    let mut passwd = String::new();
    let accounts = users
        .iter()
        .map(|u| (u.name.clone(), u.password.clone()))
        .chain(std::iter::once((ANONYMOUS_USER.to_string(), rng.hex(16))));
    for (name, password) in accounts {
        let home = root.join("mail").join(&name);
        make_owned_dir(&home, identity.owner());
        if rawlog {
            make_owned_dir(&home.join("rawlog"), identity.owner());
        }
        passwd.push_str(&format!(
            "{name}:{{PLAIN}}{password}:{}:{}::{}::\n",
            identity.mail_uid,
            identity.mail_gid,
            home.display()
        ));
    }
    let path = root.join("users.passwd");
    write_file(&path, passwd.as_bytes(), 0o644);
    path
}

/// Writes the oauth2 passdb's settings, which ask `introspection` about each token; their
/// path.
fn write_oauth_conf(root: &Path, introspection: &Introspection) -> PathBuf {
    let path = root.join("oauth2.conf.ext");
    write_file(
        &path,
        format!(
            "introspection_mode = post\n\
             introspection_url = {}\n\
             username_attribute = username\n\
             active_attribute = active\n\
             active_value = true\n",
            introspection.url()
        )
        .as_bytes(),
        0o644,
    );
    path
}

/// Starts the master in the foreground (`dovecot -F`, so this process owns and reaps it) on
/// the instance's `dovecot.conf`, its output in `dovecot.stderr`; an earlier attempt's log is
/// removed first.
fn spawn_master(root: &Path) -> Child {
    let _ = fs::remove_file(root.join("dovecot.log"));
    let stderr =
        fs::File::create(root.join("dovecot.stderr")).expect("create the Dovecot stderr file");
    Command::new(binary("dovecot"))
        .arg("-F")
        .arg("-c")
        .arg(root.join("dovecot.conf"))
        .stdin(Stdio::null())
        .stdout(stderr.try_clone().expect("duplicate a file handle"))
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run dovecot: {e}"))
}

struct ConfigInput<'a> {
    opts: &'a DovecotBuilder,
    identity: &'a Identity,
    instance: &'a str,
    root: &'a Path,
    passwd: &'a Path,
    oauth: &'a Path,
    pki: &'a TestPki,
    imap: SocketAddr,
    imaps: SocketAddr,
    plaintext: Option<SocketAddr>,
}

/// The whole configuration. Nothing is included from /etc/dovecot, so the system
/// instance's settings cannot leak in.
///
/// Longer than most functions on purpose: it is one configuration file, written as one text
/// so that it reads as Dovecot will read it; the optional parts are made by the helpers
/// below it.
fn config_text(c: &ConfigInput<'_>) -> String {
    let root = c.root.display();
    let layout = match c.opts.layout {
        Layout::MaildirPlusPlus => "",
        Layout::Fs => ":LAYOUT=fs",
    };
    let special = if c.opts.special_use {
        special_use_mailboxes()
    } else {
        String::new()
    };
    let debug = if c.opts.verbose {
        "auth_debug = yes\nmail_debug = yes\nverbose_ssl = yes\n"
    } else {
        ""
    };
    let rawlog = if c.opts.rawlog {
        format!("  rawlog_dir = {root}/mail/%u/rawlog\n")
    } else {
        String::new()
    };
    let (plain_listener, plain_local) = match c.plaintext {
        None => (String::new(), String::new()),
        Some(addr) => plaintext_sections(addr, c.opts.plaintext),
    };
    let mechanisms = MECHANISMS.join(" ").to_ascii_lowercase();
    format!(
        "# Generated by mailfold-testsupport for one test run.\n\
instance_name = {instance}\n\
base_dir = {root}/run\n\
state_dir = {root}/state\n\
log_path = {root}/dovecot.log\n\
listen = 127.0.0.1\n\
protocols = imap\n\
default_internal_user = {internal}\n\
default_internal_group = {internal_group}\n\
default_login_user = {login}\n\
first_valid_uid = {first_uid}\n\
ssl = yes\n\
ssl_cert = <{cert}\n\
ssl_key = <{key}\n\
ssl_min_protocol = TLSv1.2\n\
auth_mechanisms = {mechanisms}\n\
auth_anonymous_username = {anon}\n\
# Tests try wrong passwords on purpose; no 2 s delay per failure.\n\
auth_failure_delay = 0\n\
auth_verbose = yes\n\
{debug}\
mail_location = maildir:~/Maildir{layout}\n\
passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {passwd}\n  \
mechanisms = plain login cram-md5 digest-md5 scram-sha-1 scram-sha-256 anonymous\n}}\n\
passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {oauth}\n}}\n\
userdb {{\n  driver = passwd-file\n  args = username_format=%u {passwd}\n}}\n\
namespace inbox {{\n  inbox = yes\n  separator = {sep}\n{special}}}\n\
protocol imap {{\n  mail_max_userip_connections = 100\n{rawlog}}}\n\
service imap-login {{\n{login_chroot}  \
inet_listener imap {{\n    port = {imap}\n  }}\n  \
inet_listener imaps {{\n    port = {imaps}\n    ssl = yes\n  }}\n\
{plain_listener}}}\n\
# Many failed logins from 127.0.0.1 must not earn growing penalties (anvil auth penalty).\n\
service anvil {{\n  unix_listener anvil-auth-penalty {{\n    mode = 0\n  }}\n}}\n\
{plain_local}\
{extra}",
        instance = c.instance,
        // Login processes chroot by default, which only root may do (rootless Dovecot).
        login_chroot = if c.identity.as_root {
            ""
        } else {
            "  chroot =\n"
        },
        internal = c.identity.internal_user,
        internal_group = c.identity.internal_group,
        login = c.identity.login_user,
        first_uid = c.identity.first_valid_uid,
        cert = c.pki.cert_file(CertKind::Valid).display(),
        key = c.pki.key_file(CertKind::Valid).display(),
        anon = ANONYMOUS_USER,
        passwd = c.passwd.display(),
        oauth = c.oauth.display(),
        sep = c.opts.layout.delimiter(),
        imap = c.imap.port(),
        imaps = c.imaps.port(),
        extra = c.opts.extra_config,
    )
}

/// The special-use mailboxes of the inbox namespace, created and subscribed on first login.
fn special_use_mailboxes() -> String {
    SPECIAL_USE
        .iter()
        .map(|(name, flag)| {
            format!("  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}\n")
        })
        .collect()
}

/// The cleartext-only listener at `addr` (for the `imap-login` service) and the settings
/// for connections to it (at top level): no TLS, and passwords allowed or not.
fn plaintext_sections(addr: SocketAddr, plaintext: Plaintext) -> (String, String) {
    let allow = if plaintext == Plaintext::AllowAuth {
        "no"
    } else {
        "yes"
    };
    (
        format!(
            "  inet_listener plaintext {{\n    address = {}\n    port = {}\n  }}\n",
            addr.ip(),
            addr.port()
        ),
        format!(
            "local {} {{\n  ssl = no\n  disable_plaintext_auth = {allow}\n}}\n",
            addr.ip()
        ),
    )
}

/// Waits until the STARTTLS listener greets with `AUTH=` (the auth process is up), or the
/// master exits, or the startup timeout passes.
fn wait_ready(child: &mut Child, imap: SocketAddr, root: &Path) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("dovecot exited with {status}"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no greeting with AUTH= within {START_TIMEOUT:?} (log: {})",
                root.join("dovecot.log").display()
            ));
        }
        if let Some(greeting) = greeting(imap, Duration::from_millis(500), 4096) {
            if greeting.contains("AUTH=") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGTERM to the master (its PID from master.pid, which is our child), SIGKILL after a grace
/// period, then the same for any process left with this instance's name.
fn stop_instance(child: &mut Child, root: &Path, instance: &str) {
    let pid = fs::read_to_string(root.join("run").join("master.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|&p| u32::try_from(p).ok() == Some(child.id()))
        .unwrap_or_else(|| i32::try_from(child.id()).unwrap_or(i32::MAX));
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    if !exits_within(child, STOP_GRACE) {
        let _ = child.kill();
        let _ = child.wait();
    }
    // The master normally takes its children with it; after a SIGKILL (or a crash) they would
    // be orphaned. Their process titles carry the unique instance name.
    let prefix = format!("dovecot-{instance}/");
    stop_all(|| processes_where(|cmdline| cmdline.starts_with(prefix.as_bytes())));
}

fn read_log(root: &Path) -> String {
    let mut out = fs::read_to_string(root.join("dovecot.log")).unwrap_or_default();
    let stderr = fs::read_to_string(root.join("dovecot.stderr")).unwrap_or_default();
    if !stderr.trim().is_empty() {
        out.push_str("--- stderr ---\n");
        out.push_str(&stderr);
    }
    out
}

/// Where a Dovecot binary lives; /usr/sbin is often not on a non-root PATH.
fn binary(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    PathBuf::from(name)
}
