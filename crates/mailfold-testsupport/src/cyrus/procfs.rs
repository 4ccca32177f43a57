//! What /proc says about a private Cyrus: whether its master really holds the listening
//! socket it was told to open, and which processes belong to the instance.
//!
//! Cyrus' master reports a failed bind only to syslog and keeps running without the service,
//! so "something greets on the port" is not proof that our instance does (a parallel test
//! could have taken the port between `free_port` and the bind). The socket inode settles it.

use std::fs;
use std::net::Ipv4Addr;

use nix::unistd::Pid;

/// TCP state LISTEN in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";

/// The inode of the TCP socket listening on `ip:port`, if any (IPv4 only).
pub(crate) fn listener_inode(ip: Ipv4Addr, port: u16) -> Option<u64> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9))
        else {
            continue;
        };
        if *state != TCP_LISTEN {
            continue;
        }
        let Some((addr_hex, port_hex)) = local.split_once(':') else {
            continue;
        };
        // The kernel prints the address as the raw network-order word in host byte order
        // and the port in host order.
        let (Ok(raw), Ok(p)) = (
            u32::from_str_radix(addr_hex, 16),
            u16::from_str_radix(port_hex, 16),
        ) else {
            continue;
        };
        if Ipv4Addr::from(raw.to_ne_bytes()) == ip && p == port {
            return inode.parse().ok();
        }
    }
    None
}

/// Whether process `pid` has the socket with `inode` among its open files.
pub(crate) fn owns_socket(pid: u32, inode: u64) -> bool {
    let want = format!("socket:[{inode}]");
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    entries.flatten().any(|e| {
        fs::read_link(e.path())
            .map(|target| target.as_os_str() == want.as_str())
            .unwrap_or(false)
    })
}

/// Live (non-zombie) processes other than this one whose command line contains `needle`
/// as one argument: for an instance, the path of its unique imapd.conf.
pub(crate) fn processes_with_arg(needle: &str) -> Vec<Pid> {
    crate::instance::processes_where(|cmdline| {
        cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == needle.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn finds_our_own_listener_and_its_owner() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inode = listener_inode(Ipv4Addr::LOCALHOST, port).expect("listed in /proc/net/tcp");
        assert!(owns_socket(std::process::id(), inode));
        drop(listener);
        assert_eq!(listener_inode(Ipv4Addr::LOCALHOST, port), None);
    }

    #[test]
    fn never_lists_this_process() {
        let me = std::env::args().next().unwrap_or_default();
        assert!(!processes_with_arg(&me)
            .iter()
            .any(|p| u32::try_from(p.as_raw()).ok() == Some(std::process::id())));
    }
}
