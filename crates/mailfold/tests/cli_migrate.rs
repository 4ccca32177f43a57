//! The migration the README describes, as a user runs it: a Maildir mirrored by the real
//! OfflineIMAP from a private Dovecot, then `mailfold import-config ~/.offlineimaprc` written to
//! the config file as it is, then `mailfold sync`: every file is adopted, nothing is
//! transferred.

mod util;

use std::process::Command;

use mailfold_testsupport::Dovecot;
use util::{plain, Home};

#[test]
fn import_config_then_sync_adopts_an_offlineimap_mirror() {
    let dovecot = Dovecot::start();
    let user = dovecot.user(0).clone();
    dovecot.create_mailbox(&user.name, "Work");
    for (folder, n) in [("INBOX", 3), ("Work", 2)] {
        for i in 0..n {
            let msg = plain("a@example.org", &format!("{folder} {i}"), "hello");
            dovecot.deliver(&user.name, folder, msg.replace('\n', "\r\n").as_bytes());
        }
    }
    let home = Home::new();
    let pw = home.path().join("password");
    std::fs::write(&pw, &user.password).unwrap();
    let rc = home.path().join(".offlineimaprc");
    std::fs::write(
        &rc,
        format!(
            "[general]\naccounts = Personal\nmetadata = {meta}\n\n[Account Personal]\n\
             localrepository = Local\nremoterepository = Remote\n\n[Repository Local]\n\
             type = Maildir\nlocalfolders = {mail}\n\n[Repository Remote]\ntype = IMAP\n\
             remotehost = localhost\nremoteport = {port}\nremoteuser = {user}\n\
             remotepassfile = {pw}\nsslcacertfile = {ca}\n",
            meta = home.path().join(".offlineimap").display(),
            mail = home.maildir().display(),
            port = dovecot.imaps_addr().port(),
            user = user.name,
            pw = pw.display(),
            ca = dovecot.ca_file().display(),
        ),
    )
    .unwrap();
    // scripts/test installs offlineimap3; a missing tool is a failure, not a skip.
    let out = Command::new("offlineimap")
        .arg("-c")
        .arg(&rc)
        .args(["-u", "quiet"])
        .output()
        .expect("offlineimap is installed (apt-get install -y offlineimap3)");
    assert!(out.status.success(), "{out:?}");

    let imported = home.run(&["import-config", rc.to_str().unwrap()]).ok();
    std::fs::write(home.config(), &imported.stdout).unwrap();
    let r = home.run(&["sync", "--json"]).ok().json();
    let acct = &r["accounts"][0];
    assert_eq!(acct["account"], "Personal", "{r:#}");
    assert_eq!(acct["adoption"]["by_uid"], 5, "{r:#}");
    assert_eq!(acct["adoption"]["local_only"], 0, "{r:#}");
    let folders = acct["folders"].as_array().unwrap();
    for f in folders {
        assert_eq!(f["downloaded"], 0, "{r:#}");
        assert_eq!(f["uploaded"], 0, "{r:#}");
    }
}
