//! mfbench: the helper binary of `bench/compare` (see docs/bench.md).
//!
//! ```text
//! mfbench corpus  MAILDIR FOLDERS MESSAGES mixed|small|tiny SEED [FIRST_INDEX]
//! mfbench big     MAILDIR MEGABYTES SEED
//! mfbench limit   HOST:PORT USER PASSWORD_FILE OUT_DIR|-
//! mfbench resync-limit HOST:PORT USER PASSWORD_FILE STATE_FILE
//! mfbench flag    HOST:PORT USER PASSWORD_FILE SHARE SEED
//! mfbench deliver HOST:PORT USER PASSWORD_FILE MAILBOX COUNT SEED
//! mfbench port
//! mfbench report  RUN_DIR [BASELINE_RUN_DIR]
//! mfbench block   DATA_DIR
//! mfbench splice  MARKDOWN_FILE BLOCK_FILE
//! ```
//! Passwords come from a file so that they never appear in a process list.

#![forbid(unsafe_code)]

mod corpus;
mod imap;
mod limit;
mod mutate;
mod report;
mod resync_limit;
mod rng;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: mfbench corpus MAILDIR FOLDERS MESSAGES mixed|small|tiny SEED [FIRST_INDEX]\n\
         \x20      mfbench big MAILDIR MEGABYTES SEED\n\
         \x20      mfbench limit HOST:PORT USER PASSWORD_FILE OUT_DIR|-\n\
         \x20      mfbench resync-limit HOST:PORT USER PASSWORD_FILE STATE_FILE\n\
         \x20      mfbench flag HOST:PORT USER PASSWORD_FILE SHARE SEED\n\
         \x20      mfbench deliver HOST:PORT USER PASSWORD_FILE MAILBOX COUNT SEED\n\
         \x20      mfbench port\n\
         \x20      mfbench report RUN_DIR [BASELINE_RUN_DIR]\n\
         \x20      mfbench block DATA_DIR\n\
         \x20      mfbench splice MARKDOWN_FILE BLOCK_FILE"
    );
    ExitCode::from(2)
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{what}: not a number: {s}"))
}

fn password(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match a.as_slice() {
        ["corpus", dir, folders, messages, mix, seed, rest @ ..] => (|| {
            let mix = corpus::Mix::parse(mix).ok_or("mix must be mixed, small or tiny")?;
            let first = match rest.first() {
                Some(f) => num(f, "FIRST_INDEX")?,
                None => 0,
            };
            let w = corpus::write_maildir(
                Path::new(dir),
                num(folders, "FOLDERS")?,
                num(messages, "MESSAGES")?,
                mix,
                num(seed, "SEED")?,
                first,
            )
            .map_err(|e| format!("{dir}: {e}"))?;
            println!("{} {}", w.messages, w.bytes);
            Ok(())
        })(),
        ["big", dir, megabytes, seed] => (|| {
            let mb: usize = num(megabytes, "MEGABYTES")?;
            let m = corpus::big_message(num(seed, "SEED")?, mb * 1_000_000);
            let root = PathBuf::from(dir);
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(root.join(sub)).map_err(|e| e.to_string())?;
            }
            corpus::store(&root, &m, 0).map_err(|e| e.to_string())?;
            println!("1 {}", m.bytes.len());
            Ok(())
        })(),
        ["limit", addr, user, pw, out] => (|| {
            let pw = password(pw)?;
            let out = (*out != "-").then(|| PathBuf::from(out));
            let moved = limit::run(addr, user, &pw, out.as_deref()).map_err(|e| e.to_string())?;
            println!("{} {}", moved.messages, moved.bytes);
            Ok(())
        })(),
        ["resync-limit", addr, user, pw, state] => (|| {
            let pw = password(pw)?;
            let done =
                resync_limit::run(addr, user, &pw, Path::new(state)).map_err(|e| e.to_string())?;
            println!("{} {} {}", done.examined, done.changed, done.bodies);
            Ok(())
        })(),
        ["flag", addr, user, pw, share, seed] => (|| {
            let pw = password(pw)?;
            let n = mutate::flag_share(addr, user, &pw, num(share, "SHARE")?, num(seed, "SEED")?)
                .map_err(|e| e.to_string())?;
            println!("{n}");
            Ok(())
        })(),
        ["deliver", addr, user, pw, mailbox, count, seed] => (|| {
            let pw = password(pw)?;
            let n = mutate::deliver(
                addr,
                user,
                &pw,
                mailbox,
                num(count, "COUNT")?,
                num(seed, "SEED")?,
                corpus::Mix::Small,
            )
            .map_err(|e| e.to_string())?;
            println!("{n}");
            Ok(())
        })(),
        ["port"] => (|| {
            // Bind port 0 and release it: the caller retries if another process takes it
            // in between.
            let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            println!("{}", l.local_addr().map_err(|e| e.to_string())?.port());
            Ok(())
        })(),
        ["report", dir, rest @ ..] if rest.len() <= 1 => {
            report::build(Path::new(dir), rest.first().map(Path::new))
                .map(|md| print!("{md}"))
                .map_err(|e| format!("{dir}: {e}"))
        }
        ["block", data] => report::block(Path::new(data))
            .map(|md| print!("{md}"))
            .map_err(|e| format!("{data}: {e}")),
        ["splice", doc, block] => (|| {
            let text = std::fs::read_to_string(doc).map_err(|e| format!("{doc}: {e}"))?;
            let block = std::fs::read_to_string(block).map_err(|e| format!("{block}: {e}"))?;
            let new = report::splice(&text, &block).map_err(|e| format!("{doc}: {e}"))?;
            // Written beside and renamed over, so an interrupted run never leaves half a file.
            let tmp = format!("{doc}.mfbench-tmp");
            std::fs::write(&tmp, new).map_err(|e| format!("{tmp}: {e}"))?;
            std::fs::rename(&tmp, doc).map_err(|e| format!("{doc}: {e}"))
        })(),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mfbench: {e}");
            ExitCode::FAILURE
        }
    }
}
