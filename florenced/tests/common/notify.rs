//! A datagram socket standing in for systemd's notification socket
//! (`NOTIFY_SOCKET`): what the daemon says (READY=1, RELOADING=1, ...).

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::scratch::Scratch;

pub struct NotifySocket {
    pub path: PathBuf,
    messages: mpsc::Receiver<String>,
    /// Holds the socket's directory (removed when dropped).
    _dir: Scratch,
}

impl NotifySocket {
    pub fn new(name: &str) -> NotifySocket {
        let dir = Scratch::new(name);
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                if tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        NotifySocket {
            path,
            messages,
            _dir: dir,
        }
    }

    /// Waits (60 s hang guard) for a message with the line `line`; returns the whole message.
    pub fn wait_for(&self, line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let msg = self
                .messages
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no {line} notification"));
            if msg.lines().any(|l| l == line) {
                return msg;
            }
        }
    }
}
