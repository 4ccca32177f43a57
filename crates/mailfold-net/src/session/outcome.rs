//! How the engine's command outcomes and connection errors become this crate's [`Error`],
//! with the server's response code kept in the text the user reads (seed V0019).

use mailfold_proto::engine::{EngineError, Outcome};
use mailfold_proto::response::Code;

use crate::error::Error;

pub(super) fn outcome_error(o: &Outcome) -> Option<Error> {
    match o {
        Outcome::Ok { .. } => None,
        Outcome::No { code, text } => Some(Error::Command {
            status: "NO".into(),
            text: with_code(code.as_ref(), text),
        }),
        Outcome::Bad { code, text } => Some(Error::Command {
            status: "BAD".into(),
            text: with_code(code.as_ref(), text),
        }),
        Outcome::Rejected(why) => Some(Error::Command {
            status: "not sent".into(),
            text: why.clone(),
        }),
        Outcome::Aborted => Some(Error::Closed),
    }
}

/// A failed outcome as the user should read it (`server said NO: [CODE] text`).
pub(super) fn outcome_text(o: &Outcome) -> String {
    outcome_error(o).map(|e| e.to_string()).unwrap_or_default()
}

fn with_code(code: Option<&Code>, text: &str) -> String {
    match code.and_then(code_name) {
        Some(name) => format!("[{name}] {text}"),
        None => text.to_string(),
    }
}

/// The name of a response code, upper-case (for RFC 5530 classification and messages).
pub(super) fn code_name(code: &Code) -> Option<String> {
    Some(match code {
        Code::Alert => "ALERT".into(),
        Code::Parse => "PARSE".into(),
        Code::TryCreate => "TRYCREATE".into(),
        Code::ReadOnly => "READ-ONLY".into(),
        Code::ReadWrite => "READ-WRITE".into(),
        Code::Referral(_) => "REFERRAL".into(),
        Code::Other { name, .. } => name.to_ascii_uppercase(),
        _ => return None,
    })
}

pub(super) fn map_engine_error(e: EngineError) -> Error {
    match e {
        EngineError::Timeout(s) => Error::Timeout(s),
        EngineError::Injection(s) => Error::Security(format!("response injection: {s}")),
        other => Error::Protocol(other),
    }
}
