//! Server processes on loopback: started on a free port, waited for, killed on drop.

use std::fs;
use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

/// A server process, killed (and reaped) on drop.
#[derive(Debug)]
pub(crate) struct ServerProcess(pub(crate) Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub(crate) fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Waits up to `limit` until `ready` says the server `name`, started as `child` on
/// 127.0.0.1:`port`, serves. The error quotes its output, in `log`, when it exits first or
/// is not ready in time; the process is left as it is.
pub(crate) fn wait_ready(
    child: &mut Child,
    name: &str,
    port: u16,
    log: &Path,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) -> io::Result<()> {
    let output = || fs::read_to_string(log).unwrap_or_default();
    let outcome = crate::poll(limit, || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(io::Error::other(format!(
                "{name} exited at start ({status}):\n{}",
                output()
            ))));
        }
        ready().then_some(Ok(()))
    });
    outcome.unwrap_or_else(|| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{name} was not ready on 127.0.0.1:{port} within {limit:?}:\n{}",
                output()
            ),
        ))
    })
}

/// Starts a server on a free port of 127.0.0.1: `spawn` starts it on the port given, `wait`
/// waits until it serves there. A port picked free may be taken before the server binds it,
/// so it tries `attempts` ports, killing each server that did not come up; the last error
/// when none did.
pub(crate) fn start_on_free_port(
    attempts: usize,
    mut spawn: impl FnMut(u16) -> io::Result<Child>,
    mut wait: impl FnMut(&mut Child, u16) -> io::Result<()>,
) -> io::Result<(ServerProcess, u16)> {
    let mut last = None;
    for _ in 0..attempts {
        let port = crate::free_port();
        let mut process = ServerProcess(spawn(port)?);
        match wait(&mut process.0, port) {
            Ok(()) => return Ok((process, port)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one attempt"))
}

/// `name` found in `PATH`, if any.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
