//! `mailfold import-config FILE`: reads an mbsync (`~/.mbsyncrc`) or OfflineIMAP
//! (`~/.offlineimaprc`) configuration and prints the equivalent mailfold accounts as TOML,
//! with a `#` comment for every setting that could not be carried over, so that moving to
//! mailfold is `import-config`, then `sync` (the first sync adopts the other tool's Maildir,
//! see `mailfold_sync::adopt`).
//!
//! The conversion is a pure function of the file's text ([`convert`]); nothing is run, no
//! password is read, and a password written in the file is never copied into the output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::Ctx;

/// Which tool wrote the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// isync's mbsync.
    Mbsync,
    /// OfflineIMAP (2 or 3).
    OfflineImap,
}

/// Runs the command: prints the converted configuration on stdout.
pub fn run(ctx: &Ctx, file: &Path) -> anyhow::Result<u8> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let source = detect(&text).with_context(|| {
        format!(
            "{} is neither an mbsync nor an OfflineIMAP configuration",
            file.display()
        )
    })?;
    let out = convert(&text, source)?;
    if ctx.json {
        super::print_json(&serde_json::json!({
            "source": match source { Source::Mbsync => "mbsync", Source::OfflineImap => "offlineimap" },
            "config": out,
        }))?;
    } else {
        print!("{out}");
    }
    Ok(crate::exit::OK)
}

/// Tells the two formats apart: OfflineIMAP's is an INI file with a `[general]` section.
pub fn detect(text: &str) -> Option<Source> {
    let mut ini = false;
    let mut mbsync = false;
    for line in text.lines().map(str::trim) {
        let lower = line.to_ascii_lowercase();
        if lower == "[general]" || lower.starts_with("[account ") {
            ini = true;
        }
        let word = lower.split_whitespace().next().unwrap_or("");
        if matches!(
            word,
            "imapaccount" | "imapstore" | "maildirstore" | "channel"
        ) {
            mbsync = true;
        }
    }
    match (ini, mbsync) {
        (true, false) => Some(Source::OfflineImap),
        (false, true) => Some(Source::Mbsync),
        _ => None,
    }
}

/// Converts a configuration to mailfold's TOML.
pub fn convert(text: &str, source: Source) -> anyhow::Result<String> {
    let accounts = match source {
        Source::Mbsync => mbsync(text)?,
        Source::OfflineImap => offlineimap(text)?,
    };
    if accounts.is_empty() {
        anyhow::bail!(
            "the file defines no account that mailfold can sync (no IMAP to Maildir pairing)"
        );
    }
    let tool = match source {
        Source::Mbsync => "mbsync",
        Source::OfflineImap => "OfflineIMAP",
    };
    let mut out = format!(
        "# Converted from an {tool} configuration by `mailfold import-config`.\n\
         # Lines starting with `# not carried over` name settings mailfold does not take.\n"
    );
    for a in accounts {
        a.write(&mut out);
    }
    Ok(out)
}

/// One account being built: keys in output order, and the comments.
#[derive(Debug, Default)]
struct Out {
    name: String,
    keys: Vec<(String, String)>,
    notes: Vec<String>,
}

impl Out {
    fn set(&mut self, key: &str, value: String) {
        self.keys.retain(|(k, _)| k != key);
        self.keys.push((key.to_owned(), value));
    }

    fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|(k, _)| k == key)
    }

    fn note(&mut self, text: String) {
        self.notes.push(text);
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "\n[accounts.{}]", quote(&self.name));
        for n in &self.notes {
            for (i, line) in n.lines().enumerate() {
                let lead = if i == 0 { "# " } else { "#   " };
                let _ = writeln!(out, "{lead}{line}");
            }
        }
        for (k, v) in &self.keys {
            let _ = writeln!(out, "{k} = {v}");
        }
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04X}", u32::from(c));
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn quote_list<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<String> = items.iter().map(|s| quote(s.as_ref())).collect();
    format!("[{}]", inner.join(", "))
}

/// A path as the other tool would resolve it: `~/` kept (mailfold expands it too).
fn path_value(p: &str) -> String {
    quote(p.trim_end_matches('/'))
}

// ---------------------------------------------------------------------------------------
// mbsync

/// One mbsync section: its kind, name and `(keyword, arguments)` lines.
#[derive(Debug, Default, Clone)]
struct Section {
    kind: String,
    name: String,
    lines: Vec<(String, Vec<String>)>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&[String]> {
        self.lines
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_slice())
    }

    fn first(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| v.first()).map(String::as_str)
    }
}

/// Splits an mbsync line into words; double quotes group, a backslash escapes inside them.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        c => cur.push(c),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

fn mbsync_sections(text: &str) -> Vec<Section> {
    const KINDS: [&str; 5] = [
        "imapaccount",
        "imapstore",
        "maildirstore",
        "channel",
        "group",
    ];
    let mut sections = Vec::new();
    let mut cur: Option<Section> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut w = words(line);
        if w.is_empty() {
            continue;
        }
        let key = w.remove(0);
        if KINDS.contains(&key.to_ascii_lowercase().as_str()) {
            sections.extend(cur.take());
            cur = Some(Section {
                kind: key.to_ascii_lowercase(),
                name: w.first().cloned().unwrap_or_default(),
                lines: Vec::new(),
            });
        } else if let Some(s) = cur.as_mut() {
            s.lines.push((key, w));
        }
    }
    sections.extend(cur);
    sections
}

/// `:store:path` of a channel side.
fn store_ref(v: &str) -> Option<(&str, &str)> {
    let rest = v.strip_prefix(':')?;
    let (store, path) = rest.split_once(':')?;
    Some((store, path))
}

/// The accounts of an mbsync configuration: one per Channel pairing an IMAPStore with a
/// MaildirStore.
fn mbsync(text: &str) -> anyhow::Result<Vec<Out>> {
    let sections = mbsync_sections(text);
    let find = |kind: &str, name: &str| {
        sections
            .iter()
            .find(|s| s.kind == kind && s.name == name)
            .cloned()
    };
    let mut accounts = Vec::new();
    for ch in sections.iter().filter(|s| s.kind == "channel") {
        let side = |a: &str, b: &str| ch.first(a).or_else(|| ch.first(b)).and_then(store_ref);
        let (Some((far, far_path)), Some((near, near_path))) =
            (side("Far", "Master"), side("Near", "Slave"))
        else {
            continue;
        };
        let (Some(imap), Some(md)) = (find("imapstore", far), find("maildirstore", near)) else {
            continue;
        };
        let mut o = Out {
            name: ch.name.clone(),
            ..Out::default()
        };
        // The IMAP side: the store's own keys, else those of its IMAPAccount.
        let acct = imap.first("Account").and_then(|a| find("imapaccount", a));
        let mut server = imap.clone();
        if let Some(a) = &acct {
            let mut lines = a.lines.clone();
            lines.extend(imap.lines.iter().cloned());
            server.lines = lines;
        }
        mbsync_server(&server, &mut o);
        // The Maildir side.
        mbsync_maildir(&md, near_path, &mut o);
        mbsync_channel(ch, far_path, &mut o);
        accounts.push(o);
    }
    for g in sections.iter().filter(|s| s.kind == "group") {
        if let Some(first) = accounts.first_mut() {
            first.note(format!(
                "not carried over: Group {} (name the accounts to `mailfold sync` instead)",
                g.name
            ));
        }
    }
    Ok(accounts)
}

/// The channel's own keys: its Far path prefix, its patterns and what it says about syncing.
fn mbsync_channel(ch: &Section, far_path: &str, o: &mut Out) {
    if !far_path.is_empty() {
        o.note(format!(
            "not carried over: Far path prefix {far_path:?} (use `root_folder` if it names the server folder to mirror)"
        ));
    }
    let mut patterns = Vec::new();
    for (k, v) in &ch.lines {
        if k.eq_ignore_ascii_case("Patterns") || k.eq_ignore_ascii_case("Pattern") {
            patterns.extend(v.iter().cloned());
        }
    }
    if patterns.iter().any(|p| p != "*") {
        o.set("folders", quote_list(&patterns));
    }
    for (k, v) in &ch.lines {
        let kl = k.to_ascii_lowercase();
        let val = v.join(" ");
        match kl.as_str() {
            "far" | "master" | "near" | "slave" | "patterns" | "pattern" => {}
            "sync" => {
                let lower = val.to_ascii_lowercase();
                if lower == "pull" {
                    o.set("sync", quote("pull"));
                } else if lower != "all" && lower != "full" && !lower.is_empty() {
                    o.note(format!("not carried over: Sync {val} (mailfold syncs both ways, or pull only with sync = \"pull\")"));
                }
            }
            "copyarrivaldate" => {} // mailfold always keeps INTERNALDATE (seed V0006)
            "create" | "remove" | "expunge" => o.note(format!(
                "not carried over: {k} {val} (mailfold creates, removes and expunges on both sides, never deleting what its state does not prove synced)"
            )),
            "syncstate" if val != "*" => o.note(format!(
                "not carried over: SyncState {val} (the first sync looks for .mbsyncstate inside each folder only)"
            )),
            _ => o.note(format!("not carried over: {k} {val}")),
        }
    }
}

fn mbsync_server(s: &Section, o: &mut Out) {
    let tls = s
        .first("SSLType")
        .or_else(|| s.first("TLSType"))
        .map(str::to_ascii_lowercase);
    let tunnel = s.first("Tunnel");
    for (k, v) in &s.lines {
        let val = v.join(" ");
        match k.to_ascii_lowercase().as_str() {
            "host" => o.set("host", quote(&val)),
            "port" => match val.parse::<u16>() {
                Ok(p) if p > 0 => o.set("port", p.to_string()),
                _ => o.note(format!("not carried over: Port {val} (not a port number)")),
            },
            "user" => o.set("user", quote(&val)),
            "passcmd" => {
                // A leading `+` only tells mbsync the command is interactive.
                let cmd = val.strip_prefix('+').unwrap_or(&val);
                o.set("password_command", quote(cmd));
            }
            "pass" => o.note(
                "not carried over: Pass (a password written in the file); set password_command, e.g. [\"pass\", \"show\", \"mail\"]".into(),
            ),
            "certificatefile" => o.set("ca_file", path_value(&val)),
            "authmechs" => {
                let m: Vec<&String> = v.iter().filter(|m| m.as_str() != "*").collect();
                if !m.is_empty() {
                    o.set("mechanisms", quote_list(&m));
                }
            }
            "tunnel" => o.set("tunnel", quote_list(&["sh", "-c", val.as_str()])),
            "account" | "ssltype" | "tlstype" => {}
            "systemcertificates" if val.eq_ignore_ascii_case("no") => o.note(
                "not carried over: SystemCertificates no (mailfold trusts the system roots and ca_file)".into(),
            ),
            "sslversions" | "tlsversions" => o.note(format!(
                "not carried over: {k} {val} (mailfold speaks TLS 1.2 and 1.3 only)"
            )),
            "timeout" => match val.parse::<i64>() {
                Ok(t) if (1..=3600).contains(&t) => o.set("command_timeout", t.to_string()),
                _ => o.note(format!("not carried over: Timeout {val}")),
            },
            "pipelinedepth" => {} // mailfold pipelines on its own
            _ => o.note(format!("not carried over: {k} {val}")),
        }
    }
    if tunnel.is_some() {
        // Over a tunnel the session is PREAUTH: TLS settings and credentials do not apply.
        for key in ["port", "tls", "ca_file", "mechanisms"] {
            o.keys.retain(|(k, _)| k != key);
        }
    } else {
        // mbsync 1.4's default is STARTTLS.
        match tls.as_deref() {
            Some("imaps") => {}
            Some("none") => o.set("tls", quote("none")),
            _ => o.set("tls", quote("starttls")),
        }
    }
    if !o.has("user") && tunnel.is_none() {
        o.set("user", quote(""));
        o.note("no User in the mbsync file: set `user`".into());
    }
    if !o.has("password_command") && tunnel.is_none() {
        o.note("no PassCmd in the mbsync file: set password_command".into());
        o.set("password_command", quote_list(&["false"]));
    }
}

fn mbsync_maildir(md: &Section, near_path: &str, o: &mut Out) {
    let path = md.first("Path").unwrap_or("");
    let inbox = md.first("Inbox").unwrap_or("~/Maildir");
    let sub = md.first("SubFolders").map(str::to_ascii_lowercase);
    let flatten = md.first("Flatten");
    let joined = format!("{}{}", path, near_path);
    match (sub.as_deref(), flatten) {
        (Some("maildir++"), _) => {
            o.set("local", path_value(inbox));
            o.set("layout", quote("maildir++"));
        }
        (_, Some(sep)) if sep.chars().count() == 1 => {
            o.set("local", path_value(&joined));
            o.set("layout", quote("flat"));
            if sep != "." {
                o.set("layout_separator", quote(sep));
            }
            inbox_note(o, inbox, &joined);
        }
        (Some("legacy"), _) => {
            o.set("local", path_value(&joined));
            o.note("not carried over: SubFolders Legacy (Path/top/.sub); mailfold reads nested, flat and maildir++ trees: convert the tree or resync into a new one".into());
        }
        _ => {
            o.set("local", path_value(&joined));
            inbox_note(o, inbox, &joined);
        }
    }
    for (k, v) in &md.lines {
        let val = v.join(" ");
        match k.to_ascii_lowercase().as_str() {
            "path" | "inbox" | "subfolders" | "flatten" => {}
            "altmap" if val.eq_ignore_ascii_case("yes") => o.note(
                "not carried over: AltMap yes (UIDs kept in a Berkeley DB); the first sync binds messages by content instead".into(),
            ),
            "altmap" => {}
            "infodelimiter" | "fielddelimiter" if val == ":" => {}
            _ => o.note(format!("not carried over: {k} {val}")),
        }
    }
}

fn inbox_note(o: &mut Out, inbox: &str, local: &str) {
    let expected = format!("{}/INBOX", local.trim_end_matches('/'));
    if inbox.trim_end_matches('/') != expected {
        o.note(format!(
            "not carried over: Inbox {inbox} (mailfold keeps INBOX at {expected}: move it there before the first sync)"
        ));
    }
}

// ---------------------------------------------------------------------------------------
// OfflineIMAP

/// The INI file as sections of lower-cased keys, the `[DEFAULT]` section applied.
fn ini(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut cur: Option<String> = None;
    let mut last_key: Option<String> = None;
    for raw in text.lines() {
        if raw.trim().is_empty() || raw.trim_start().starts_with(['#', ';']) {
            continue;
        }
        // configparser: an indented line continues the previous value.
        if raw.starts_with([' ', '\t']) {
            if let (Some(sec), Some(k)) = (&cur, &last_key) {
                if let Some((_, v)) = out
                    .get_mut(sec)
                    .and_then(|e| e.iter_mut().rev().find(|(kk, _)| kk == k))
                {
                    v.push('\n');
                    v.push_str(raw.trim());
                    continue;
                }
            }
        }
        let line = raw.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            cur = Some(name.trim().to_owned());
            out.entry(name.trim().to_owned()).or_default();
            last_key = None;
            continue;
        }
        let Some((k, v)) = line.split_once(['=', ':']) else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        if let Some(sec) = &cur {
            out.entry(sec.clone())
                .or_default()
                .push((k.clone(), v.trim().to_owned()));
            last_key = Some(k);
        }
    }
    if let Some(defaults) = out.remove("DEFAULT") {
        for (name, entries) in out.iter_mut() {
            if name == "general" {
                continue;
            }
            for (k, v) in &defaults {
                if !entries.iter().any(|(kk, _)| kk == k) {
                    entries.push((k.clone(), v.clone()));
                }
            }
        }
    }
    out
}

fn get<'a>(sec: &'a [(String, String)], key: &str) -> Option<&'a str> {
    sec.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn yes(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1")
}

fn offlineimap(text: &str) -> anyhow::Result<Vec<Out>> {
    let secs = ini(text);
    let empty = Vec::new();
    let general = secs.get("general").unwrap_or(&empty);
    let metadata = get(general, "metadata").unwrap_or("~/.offlineimap");
    let pythonfile = get(general, "pythonfile");
    let names: Vec<String> = get(general, "accounts")
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let mut accounts = Vec::new();
    for name in names {
        let Some(acct) = secs.get(&format!("Account {name}")) else {
            continue;
        };
        let repo = |key: &str| {
            get(acct, key).and_then(|r| secs.get(&format!("Repository {r}")).map(|s| (r, s)))
        };
        let (Some((_, local)), Some((remote_name, remote))) =
            (repo("localrepository"), repo("remoterepository"))
        else {
            continue;
        };
        let mut o = Out {
            name: name.clone(),
            ..Out::default()
        };
        offlineimap_remote(remote, pythonfile, &mut o);
        offlineimap_local(local, &mut o);
        // Where OfflineIMAP keeps each server folder's UIDVALIDITY: the first sync checks the
        // UIDs in the file names (`,U=`) against it before binding them.
        o.set(
            "adopt_offlineimap",
            quote(&format!(
                "{}/Repository-{remote_name}",
                metadata.trim_end_matches('/')
            )),
        );
        for (k, v) in acct {
            match k.as_str() {
                "localrepository" | "remoterepository" => {}
                "autorefresh" | "quick" => o.note(format!(
                    "not carried over: {k} = {v} (use `mailfold watch` to keep the account in sync)"
                )),
                _ => o.note(format!("not carried over: {k} = {v}")),
            }
        }
        accounts.push(o);
    }
    Ok(accounts)
}

fn offlineimap_remote(r: &[(String, String)], pythonfile: Option<&str>, o: &mut Out) {
    let gmail = get(r, "type").is_some_and(|t| t.eq_ignore_ascii_case("gmail"));
    if gmail {
        o.set("host", quote("imap.gmail.com"));
    }
    let tunnel = get(r, "preauthtunnel");
    // OfflineIMAP 7.3 and later: TLS on by default, STARTTLS when `ssl = no`.
    let ssl = get(r, "ssl").is_none_or(yes);
    let starttls = get(r, "starttls").is_none_or(yes);
    for (k, v) in r {
        match k.as_str() {
            "type" if v.eq_ignore_ascii_case("imap") || gmail => {}
            "remotehost" => o.set("host", quote(v)),
            "remoteport" => match v.parse::<u16>() {
                Ok(p) if p > 0 => o.set("port", p.to_string()),
                _ => o.note(format!("not carried over: remoteport = {v}")),
            },
            "remoteuser" => o.set("user", quote(v)),
            // A bare string literal is a password written in the file: never copied (it would
            // end up in an argv).
            "remotepasseval" if v.trim_start().starts_with(['"', '\'']) => o.note(
                "not carried over: remotepasseval (a password written in the file); set password_command".into(),
            ),
            "remotepasseval" => {
                // The expression is Python evaluated with `pythonfile` loaded: run exactly that.
                let prog = match pythonfile {
                    Some(f) => format!(
                        "import os; exec(open(os.path.expanduser({})).read()); print({v})",
                        py_str(f)
                    ),
                    None => format!("print({v})"),
                };
                o.set("password_command", quote_list(&["python3", "-c", prog.as_str()]));
            }
            "remotepassfile" => o.set("password_command", quote_list(&["head", "-n1", v])),
            "remotepass" => o.note(
                "not carried over: remotepass (a password written in the file); set password_command".into(),
            ),
            "sslcacertfile" if v == "OS-DEFAULT" => {}
            "sslcacertfile" => o.set("ca_file", path_value(v)),
            "auth_mechanisms" => {
                let m: Vec<&str> = v.split(',').map(str::trim).filter(|m| !m.is_empty()).collect();
                o.set("mechanisms", quote_list(&m));
            }
            "preauthtunnel" => o.set("tunnel", quote_list(&["sh", "-c", v.as_str()])),
            "maxconnections" => match v.parse::<u8>() {
                Ok(c) if (1..=16).contains(&c) => o.set("connections", c.to_string()),
                _ => o.note(format!("not carried over: maxconnections = {v}")),
            },
            "readonly" if yes(v) => o.set("sync", quote("pull")),
            "ssl" | "starttls" | "readonly" => {}
            "folderfilter" => match simple_folderfilter(v) {
                Some(list) => o.set("folders", quote_list(&list)),
                None => o.note(format!("not carried over: folderfilter = {v} (a Python expression; write `folders` patterns)")),
            },
            _ => o.note(format!("not carried over: {k} = {v}")),
        }
    }
    if tunnel.is_some() {
        for key in ["port", "tls", "ca_file", "mechanisms"] {
            o.keys.retain(|(k, _)| k != key);
        }
    } else if !ssl {
        o.set("tls", quote(if starttls { "starttls" } else { "none" }));
    }
    if !o.has("user") && tunnel.is_none() {
        o.set("user", quote(""));
        o.note("no remoteuser in the OfflineIMAP file: set `user`".into());
    }
    if !o.has("password_command") && tunnel.is_none() {
        o.note(
            "no remotepasseval or remotepassfile in the OfflineIMAP file: set password_command"
                .into(),
        );
        o.set("password_command", quote_list(&["false"]));
    }
}

fn offlineimap_local(l: &[(String, String)], o: &mut Out) {
    o.set("layout", quote("flat"));
    for (k, v) in l {
        match k.as_str() {
            "type" if v.eq_ignore_ascii_case("maildir") => {}
            "localfolders" => o.set("local", path_value(v)),
            "sep" => {
                if v.chars().count() == 1 && v != "/" {
                    if v != "." {
                        o.set("layout_separator", quote(v));
                    }
                } else if v == "/" {
                    o.set("layout", quote("nested"));
                } else {
                    o.note(format!("not carried over: sep = {v}"));
                }
            }
            _ => o.note(format!("not carried over: {k} = {v}")),
        }
    }
}

/// A Python string literal.
fn py_str(s: &str) -> String {
    let mut q = String::from("'");
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('\'');
    q
}

/// `lambda folder: folder in ['INBOX', 'Sent']`, the common form, as a plain list.
fn simple_folderfilter(v: &str) -> Option<Vec<String>> {
    let rest = v.trim().strip_prefix("lambda")?.trim_start();
    let (var, body) = rest.split_once(':')?;
    let body = body.trim().strip_prefix(var.trim())?.trim_start();
    let list = body.strip_prefix("in")?.trim();
    let inner = list.strip_prefix('[')?.strip_suffix(']')?;
    let mut out = Vec::new();
    for item in inner.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let s = item
            .strip_prefix('\'')
            .and_then(|i| i.strip_suffix('\''))
            .or_else(|| item.strip_prefix('"').and_then(|i| i.strip_suffix('"')))?;
        if s.contains(['*', '%', '\\']) {
            return None;
        }
        out.push(s.to_owned());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const MBSYNCRC: &str = r#"
IMAPAccount work
Host mail.example.org
User alice
PassCmd "pass show mail/work"
SSLType IMAPS
CertificateFile ~/.certs/ca.pem
AuthMechs PLAIN

IMAPStore work-remote
Account work

MaildirStore work-local
SubFolders Maildir++
Inbox ~/Maildir/
AltMap yes

Channel work
Far :work-remote:
Near :work-local:
Patterns * !Junk
Create Both
SyncState *
"#;

    #[test]
    fn mbsync_channel_becomes_an_account() {
        assert_eq!(detect(MBSYNCRC), Some(Source::Mbsync));
        let out = convert(MBSYNCRC, Source::Mbsync).unwrap();
        let cfg = Config::parse(&out, Path::new("x.toml")).unwrap();
        let a = &cfg.accounts["work"];
        assert_eq!(a.host, "mail.example.org");
        assert_eq!(a.user, "alice");
        assert_eq!(a.effective_port(), 993);
        assert_eq!(a.layout, crate::config::LayoutName::MaildirPlusPlus);
        assert_eq!(
            a.folders.as_deref(),
            Some(&["*".to_owned(), "!Junk".to_owned()][..])
        );
        assert!(out.contains("AltMap yes"), "{out}");
        assert!(out.contains("Create Both"), "{out}");
    }

    #[test]
    fn mbsync_tunnel_becomes_a_tunnel_without_password() {
        let rc = "IMAPStore far\nTunnel \"ssh -q host /usr/lib/dovecot/imap\"\n\n\
                  MaildirStore near\nPath ~/Mail/\nInbox ~/Mail/INBOX\nSubFolders Verbatim\n\n\
                  Channel c\nFar :far:\nNear :near:\n";
        let out = convert(rc, Source::Mbsync).unwrap();
        let cfg = Config::parse(&out, Path::new("x.toml")).unwrap();
        let a = &cfg.accounts["c"];
        assert_eq!(
            a.tunnel.as_deref(),
            Some(
                &[
                    "sh".to_owned(),
                    "-c".into(),
                    "ssh -q host /usr/lib/dovecot/imap".into()
                ][..]
            )
        );
        assert!(a.password_command.is_none(), "{out}");
        assert_eq!(a.layout, crate::config::LayoutName::Nested);
        assert!(!out.contains("Inbox"), "INBOX already at Path/INBOX: {out}");
    }

    const OFFLINEIMAPRC: &str = r#"
[general]
accounts = Personal
pythonfile = ~/.offlineimap.py

[Account Personal]
localrepository = Local
remoterepository = Remote
autorefresh = 5

[Repository Local]
type = Maildir
localfolders = ~/Mail/personal

[Repository Remote]
type = IMAP
remotehost = imap.example.net
remoteuser = bob
remotepasseval = get_pass("personal")
remotepass = hunter2
sslcacertfile = OS-DEFAULT
folderfilter = lambda folder: folder in ['INBOX', 'Sent']
"#;

    #[test]
    fn offlineimap_account_becomes_an_account_and_no_password_is_copied() {
        assert_eq!(detect(OFFLINEIMAPRC), Some(Source::OfflineImap));
        let out = convert(OFFLINEIMAPRC, Source::OfflineImap).unwrap();
        assert!(!out.contains("hunter2"), "{out}");
        let literal = OFFLINEIMAPRC.replace("get_pass(\"personal\")", "'hunter3'");
        let out2 = convert(&literal, Source::OfflineImap).unwrap();
        assert!(!out2.contains("hunter3"), "{out2}");
        let cfg = Config::parse(&out, Path::new("x.toml")).unwrap();
        let a = &cfg.accounts["Personal"];
        assert_eq!(a.host, "imap.example.net");
        assert_eq!(a.layout, crate::config::LayoutName::Flat);
        assert_eq!(
            a.folders.as_deref(),
            Some(&["INBOX".to_owned(), "Sent".to_owned()][..])
        );
        assert!(out.contains("get_pass(\\\"personal\\\")"), "{out}");
        assert!(out.contains("autorefresh"), "{out}");
    }
}
