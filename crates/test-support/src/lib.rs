//! Servers the integration tests run against, all on 127.0.0.1 and stopped on drop.
//!
//! - [`Nginx`]: Debian's nginx serving a temporary directory, with `Range` on (`/files/`),
//!   off (`/norange/`), throttled (`/slow/`), and fixed error statuses (`/status/500`, `/503`, `/403`).
//!   Its access log records each request's range and the body bytes it sent.
//! - [`FaultServer`]: a tiny HTTP/1.1 server whose answers a test scripts: cut bodies, stalls,
//!   errors, lies.
//!
//! A missing nginx is a test failure with instructions, never a silent skip.
#![deny(missing_docs)]
#![expect(
    clippy::missing_panics_doc,
    reason = "test servers panic when they cannot start, by design"
)]

mod fault;
mod nginx;

pub use fault::{Answer, FaultServer};
pub use nginx::{LogLine, Nginx};

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral port on 127.0.0.1")
        .port()
}
