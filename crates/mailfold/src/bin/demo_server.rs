//! `mailfold-demo-server --dir DIR`: the private server behind `scripts/demo`.
//!
//! Starts a Dovecot of its own on 127.0.0.1 (random free ports, files under a temporary
//! directory, through `mailfold-testsupport`), fills the first user's mailbox with a generated
//! sample — several folders, a few hundred messages, MIME variety (plain, multipart/
//! alternative, an attachment, RFC 2047 subjects and names) and non-ASCII folder names — and
//! writes `DIR/config.toml` for mailfold, `DIR/password` (mode 0600) and finally `DIR/ready`.
//! It then waits until its standard input closes and stops the server.
//!
//! Built only with `--features demo`.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;

use mailfold_testsupport::Dovecot;

/// Folders (Maildir++ names, delimiter `.`) and how many messages each gets.
const FOLDERS: &[(&str, usize)] = &[
    ("INBOX", 240),
    ("Archive", 30),
    ("Archive.2024", 25),
    ("Projekte", 12),
    ("Projekte.Übersicht", 8),
    ("Été", 6),
    ("Sent", 20),
];

const NAMES: &[(&str, &str)] = &[
    ("Alice Example", "alice@example.org"),
    ("=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?=", "juergen@example.de"),
    ("Bob", "bob@example.net"),
    ("=?UTF-8?B?5bGx55Sw5aSq6YOO?=", "yamada@example.jp"),
    ("Chloé", "chloe@example.fr"),
];

const SUBJECTS: &[&str] = &[
    "Quarterly report",
    "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=",
    "Lunch on Friday?",
    "=?UTF-8?B?5Lya6K2w44Gu44GK55+l44KJ44Gb?=",
    "Re: build failure on main",
    "Invoice 2024-117",
    "=?ISO-8859-1?Q?R=E9sum=E9_des_d=E9cisions?=",
];

fn message(folder: &str, i: usize) -> Vec<u8> {
    let (name, addr) = NAMES[i % NAMES.len()];
    let subject = SUBJECTS[i % SUBJECTS.len()];
    // One message a day going back from a fixed date, so the demo output is stable.
    let day = 1 + (i % 28);
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"][(i / 28) % 6];
    let mut m = String::new();
    let _ = write!(
        m,
        "From: {name} <{addr}>\r\nTo: Demo User <user1@example.org>\r\nSubject: {subject} #{i}\r\n\
         Date: {day:02} {month} 2024 09:{:02}:00 +0100\r\nMessage-ID: <demo-{folder}-{i}@mailfold.example>\r\n\
         MIME-Version: 1.0\r\n",
        i % 60
    );
    match i % 4 {
        0 => {
            m.push_str("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
            let _ = write!(
                m,
                "Hello,\r\n\r\nthis is message {i} in {folder}. Grüße!\r\n"
            );
        }
        1 => {
            m.push_str("Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n");
            let _ = write!(
                m,
                "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain text of message {i}.\r\n\
                 --alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>HTML of message <b>{i}</b>.</p>\r\n--alt--\r\n"
            );
        }
        2 => {
            m.push_str("Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n");
            let _ = write!(
                m,
                "--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe figures are attached.\r\n\
                 --mix\r\nContent-Type: application/pdf; name=\"report-{i}.pdf\"\r\n\
                 Content-Disposition: attachment; filename=\"report-{i}.pdf\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK\r\n--mix--\r\n"
            );
        }
        _ => {
            m.push_str(
                "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
            );
            let _ = write!(m, "Message {i}: caf=E9 cr=E8me br=FBl=E9e.\r\n");
        }
    }
    m.into_bytes()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = match (args.next().as_deref(), args.next()) {
        (Some("--dir"), Some(d)) => PathBuf::from(d),
        _ => {
            eprintln!("usage: mailfold-demo-server --dir DIR");
            std::process::exit(2);
        }
    };
    if !Dovecot::is_installed() {
        eprintln!("mailfold-demo-server: Dovecot is not installed (apt-get install dovecot-imapd)");
        std::process::exit(1);
    }
    let dovecot = Dovecot::builder().users(1).start();
    let user = dovecot.user(0).clone();
    let mut total = 0;
    for &(folder, n) in FOLDERS {
        if folder != "INBOX" && folder != "Sent" {
            dovecot.create_mailbox(&user.name, folder);
        }
        for i in 0..n {
            dovecot.deliver(&user.name, folder, &message(folder, i));
        }
        total += n;
    }
    // Some messages read and flagged, so `list` shows variety.
    dovecot.doveadm(&[
        "flags", "add", "-u", &user.name, "\\Seen", "mailbox", "INBOX", "uid", "1:150",
    ]);
    dovecot.doveadm(&[
        "flags",
        "add",
        "-u",
        &user.name,
        "\\Flagged",
        "mailbox",
        "INBOX",
        "uid",
        "5,17,42",
    ]);
    let addr = dovecot.imaps_addr();
    let password = dir.join("password");
    if let Err(e) = write_private(&password, &user.password) {
        eprintln!("mailfold-demo-server: {}: {e}", password.display());
        std::process::exit(1);
    }
    let config = format!(
        "# Written by mailfold-demo-server for scripts/demo.\n\
         [accounts.demo]\n\
         host = \"{}\"\n\
         port = {}\n\
         tls = \"implicit\"\n\
         user = \"{}\"\n\
         password_command = [\"cat\", {:?}]\n\
         ca_file = {:?}\n\
         local = {:?}\n\
         state = {:?}\n",
        addr.ip(),
        addr.port(),
        user.name,
        password.display().to_string(),
        dovecot.ca_file().display().to_string(),
        dir.join("mail").display().to_string(),
        dir.join("state.sqlite").display().to_string(),
    );
    let ready = std::fs::write(dir.join("config.toml"), config)
        .and_then(|()| std::fs::write(dir.join("ready"), format!("{total}\n")));
    if let Err(e) = ready {
        eprintln!("mailfold-demo-server: writing {}: {e}", dir.display());
        std::process::exit(1);
    }
    eprintln!(
        "mailfold-demo-server: Dovecot on {addr} with {total} messages in {} folders",
        FOLDERS.len()
    );
    // Until the demo script closes our stdin; then Dovecot stops when `dovecot` drops.
    let mut sink = Vec::new();
    let _ = std::io::stdin().take(1 << 20).read_to_end(&mut sink);
    drop(dovecot);
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}
