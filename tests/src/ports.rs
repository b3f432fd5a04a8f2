//! Free loopback ports.
//!
//! A port is found by binding `127.0.0.1:0` and releasing it again. Between the
//! release and the server's own bind another process may take it, so callers
//! retry a failed start with fresh ports. Inside one test binary the same port
//! is never handed out twice, which removes the common collision between tests
//! that run in parallel threads.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// Ports this process already handed out; never returned again.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Attempts before giving up on finding an unused port.
const MAX_PORT_ATTEMPTS: usize = 100;

/// Returns a loopback TCP port that is free right now and that this process has
/// not returned before.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = guard.get_or_insert_with(HashSet::new);
    for _ in 0..MAX_PORT_ATTEMPTS {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("no free loopback port after {MAX_PORT_ATTEMPTS} attempts");
}
