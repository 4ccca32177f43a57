//! NOTIFY (RFC 5465) and the cheap status reads a watcher uses, against a private Dovecot:
//! another client's delivery, flag change and new folder arrive as typed notices on a
//! session with no folder selected; LIST-STATUS and pipelined STATUS read every folder in one
//! round trip.

use std::time::Duration;

use mailfold_net::{ConnectConfig, IdleStop, Security, Session};
use mailfold_proto::command::StatusItem;
use mailfold_proto::core::Mailbox;
use mailfold_proto::engine::Event;
use mailfold_proto::notify::{Notice, Notify};
use mailfold_sasl::Credentials;
use mailfold_testsupport::Dovecot;

async fn connect(d: &Dovecot) -> Session {
    let addr = d.imaps_addr();
    let mut c = ConnectConfig::new(addr.ip().to_string());
    c.port = Some(addr.port());
    c.security = Security::ImplicitTls;
    c.tls.ca_file = Some(d.ca_file());
    c.connect_timeout = Duration::from_secs(10);
    c.engine.command_timeout = Duration::from_secs(20);
    let u = d.user(0);
    let creds = Credentials::password(u.name.clone(), u.password.clone());
    Session::connect(&c, Some(&creds)).await.unwrap()
}

const MSG: &[u8] = b"From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n";

/// Waits (IDLE, bounded) until a notice for which `want` holds arrives; panics after a
/// generous bound so a missing notification fails rather than hangs.
async fn wait_notice(s: &mut Session, want: impl Fn(&Notice<'_>) -> bool) {
    let stop = IdleStop::new();
    for _ in 0..20 {
        let notes: Vec<Event> = s
            .idle_or_poll(&stop, Duration::from_secs(3), Duration::from_secs(1))
            .await
            .unwrap();
        if notes.iter().filter_map(Notice::of).any(|n| want(&n)) {
            return;
        }
    }
    panic!("no such notice arrived");
}

#[tokio::test]
async fn notify_reports_changes_in_folders_that_are_not_selected() {
    let d = Dovecot::builder().users(1).start();
    let user = d.user(0).name.clone();
    d.create_mailbox(&user, "Work");
    d.deliver(&user, "Work", MSG);
    let mut s = connect(&d).await;
    assert!(s.capabilities().unwrap().has("NOTIFY"));
    s.enable(&["CONDSTORE"]).await.unwrap();
    s.notify(&Notify::every_personal_change()).await.unwrap();

    d.deliver(&user, "Work", MSG);
    wait_notice(&mut s, |n| {
        matches!(n, Notice::Status(st) if st.mailbox == Mailbox::from_utf8("Work")
            && st.messages() == Some(2))
    })
    .await;
    // Another client's flag change: only HIGHESTMODSEQ moves (CONDSTORE is enabled).
    d.doveadm(&[
        "flags",
        "add",
        "-u",
        &user,
        "\\Flagged",
        "mailbox",
        "Work",
        "uid",
        "1",
    ]);
    wait_notice(&mut s, |n| {
        matches!(n, Notice::Status(st) if st.mailbox == Mailbox::from_utf8("Work")
            && st.highest_modseq().is_some())
    })
    .await;
    d.create_mailbox(&user, "Fresh");
    wait_notice(
        &mut s,
        |n| matches!(n, Notice::MailboxName(l) if l.mailbox == Mailbox::from_utf8("Fresh")),
    )
    .await;

    s.notify(&Notify::None).await.unwrap();
    s.logout().await.unwrap();
}

#[tokio::test]
async fn list_status_and_pipelined_status_read_every_folder_at_once() {
    let d = Dovecot::builder().users(1).start();
    let user = d.user(0).name.clone();
    d.create_mailbox(&user, "Work");
    d.deliver(&user, "Work", MSG);
    let mut s = connect(&d).await;
    let items = [
        StatusItem::Messages,
        StatusItem::UidNext,
        StatusItem::HighestModSeq,
    ];
    let (list, statuses) = s.list_status("*", &items).await.unwrap();
    assert!(list.iter().any(|m| m.mailbox == Mailbox::from_utf8("Work")));
    let work = statuses
        .iter()
        .find(|st| st.mailbox == Mailbox::from_utf8("Work"))
        .unwrap();
    assert_eq!((work.messages(), work.uid_next()), (Some(1), Some(2)));

    let boxes = [
        Mailbox::from_utf8("INBOX"),
        Mailbox::from_utf8("Work"),
        Mailbox::from_utf8("NoSuchFolder"),
    ];
    let r = s.status_many(&boxes, &items).await.unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].as_ref().unwrap().messages(), Some(0));
    assert_eq!(r[1].as_ref().unwrap().messages(), Some(1));
    assert!(r[2].is_err(), "a missing folder is refused on its own");
    // The session is still usable after the refusal.
    s.noop().await.unwrap();
    s.logout().await.unwrap();
}
