//! What the servers that hold bodies share: the hold itself ([`Hold`], [`Holds`]), the state
//! behind a lock with a condition variable ([`Monitor`]), and the connections they track to
//! know when they are idle and to end them on drop ([`Connections`]).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where a served body stops until the test releases it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Every response whose body covers this offset of the file sends the bytes before it,
    /// then holds. With parallel ranged requests only the one whose range holds the offset
    /// stops; the others are served whole.
    AtOffset(u64),
    /// Every response sends this many bytes of its body, then holds: for a single stream.
    AfterBytes(u64),
}

impl Hold {
    /// How many bytes of a body of `len` bytes, starting at `offset` in the file, go before
    /// this hold; `None` when the body does not reach it.
    pub(crate) fn stop_in(self, offset: u64, len: u64) -> Option<u64> {
        match self {
            Hold::AtOffset(x) if (offset..offset + len).contains(&x) => Some(x - offset),
            Hold::AfterBytes(n) if n < len => Some(n),
            _ => None,
        }
    }
}

/// The hold part of a server's state, and whether the server is stopping (which ends every
/// hold for good).
#[derive(Debug, Default)]
pub(crate) struct Holds {
    hold: Option<Hold>,
    /// Bumped by each release, so that a held response wakes even if a new hold is armed at
    /// once.
    releases: u64,
    /// Responses that reached the hold point since it was armed.
    reached: usize,
    stop: bool,
}

impl Holds {
    /// Whether the server is stopping.
    pub(crate) fn stopping(&self) -> bool {
        self.stop
    }
}

/// The connections a server has open, and the peer address of every one it accepted.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    open: HashMap<u64, TcpStream>,
    accepted: Vec<SocketAddr>,
    next: u64,
}

/// Gives a server's `State`, with fields `holds: Holds` and `connections: Connections`, to
/// the [`Monitor`] methods that need them.
macro_rules! server_state {
    ($state:ty) => {
        impl AsRef<$crate::holds::Holds> for $state {
            fn as_ref(&self) -> &$crate::holds::Holds {
                &self.holds
            }
        }
        impl AsMut<$crate::holds::Holds> for $state {
            fn as_mut(&mut self) -> &mut $crate::holds::Holds {
                &mut self.holds
            }
        }
        impl AsRef<$crate::holds::Connections> for $state {
            fn as_ref(&self) -> &$crate::holds::Connections {
                &self.connections
            }
        }
        impl AsMut<$crate::holds::Connections> for $state {
            fn as_mut(&mut self) -> &mut $crate::holds::Connections {
                &mut self.connections
            }
        }
    };
}
pub(crate) use server_state;

/// A server's state `S` behind a lock, with a condition variable notified on every change a
/// waiter may care about, and its settings `C`, fixed at start.
#[derive(Debug)]
pub(crate) struct Monitor<S, C = ()> {
    pub(crate) config: C,
    state: Mutex<S>,
    changed: Condvar,
    /// The server's name, for the panic on a poisoned lock.
    name: &'static str,
}

impl<S, C> Monitor<S, C> {
    pub(crate) fn new(name: &'static str, config: C, state: S) -> Self {
        Monitor {
            config,
            state: Mutex::new(state),
            changed: Condvar::new(),
            name,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.state
            .lock()
            .unwrap_or_else(|_| panic!("{} state poisoned", self.name))
    }

    /// Changes the state and wakes the waiters.
    pub(crate) fn update<T>(&self, change: impl FnOnce(&mut S) -> T) -> T {
        let out = change(&mut self.lock());
        self.changed.notify_all();
        out
    }

    /// Waits until `done` holds or `timeout` passes; returns whether it holds.
    pub(crate) fn wait_until(&self, timeout: Duration, done: impl Fn(&S) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while !done(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|_| panic!("{} state poisoned", self.name))
                .0;
        }
        true
    }
}

impl<S: AsRef<Holds> + AsMut<Holds>, C> Monitor<S, C> {
    /// Whether the server is stopping.
    pub(crate) fn stopping(&self) -> bool {
        self.lock().as_ref().stop
    }

    /// The hold armed now, if any.
    pub(crate) fn armed(&self) -> Option<Hold> {
        self.lock().as_ref().hold
    }

    /// Arms a hold: from now on, bodies stop at `at` until [`Self::release`].
    pub(crate) fn hold(&self, at: Hold) {
        self.update(|s| {
            let holds = s.as_mut();
            holds.hold = Some(at);
            holds.reached = 0;
        });
    }

    /// Waits until a body has reached the armed hold, up to `timeout`; returns whether one
    /// has.
    pub(crate) fn wait_held(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.as_ref().reached > 0)
    }

    /// Disarms the hold: held bodies go on, later ones are not held.
    pub(crate) fn release(&self) {
        self.update(|s| {
            let holds = s.as_mut();
            holds.hold = None;
            holds.releases += 1;
        });
    }

    /// Says a body has reached the hold (marking its log entry with `mark`) and waits for the
    /// release; `false` when the server stops first. With no hold armed any more, goes on at
    /// once.
    pub(crate) fn wait_release(&self, mark: impl FnOnce(&mut S)) -> bool {
        let mut state = self.lock();
        let holds = state.as_mut();
        if holds.hold.is_none() {
            return true;
        }
        let release = holds.releases;
        holds.reached += 1;
        mark(&mut state);
        drop(state);
        self.changed.notify_all();
        let mut state = self.lock();
        while state.as_ref().releases == release && !state.as_ref().stop {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|_| panic!("{} state poisoned", self.name));
        }
        !state.as_ref().stop
    }
}

impl<S, C> Monitor<S, C>
where
    S: AsRef<Holds> + AsMut<Holds> + AsRef<Connections> + AsMut<Connections>,
{
    /// Stops the server: held bodies end, the accept loop ends at its next connection.
    /// Returns the connections open now, for the caller to shut down if it will.
    pub(crate) fn stop(&self) -> Vec<TcpStream> {
        self.update(|s| {
            AsMut::<Holds>::as_mut(s).stop = true;
            let connections: &mut Connections = s.as_mut();
            connections.open.drain().map(|(_, stream)| stream).collect()
        })
    }

    /// Waits until every connection accepted before this call (at `addr`) is closed, up to
    /// `timeout`; returns whether they are.
    pub(crate) fn wait_idle(&self, addr: SocketAddr, timeout: Duration) -> bool {
        // Connections are accepted in order, so once this one is, every earlier one is too.
        let Ok(marker) = TcpStream::connect(addr).and_then(|s| s.local_addr()) else {
            return false;
        };
        self.wait_until(timeout, |s| {
            let connections: &Connections = s.as_ref();
            connections.open.is_empty() && connections.accepted.contains(&marker)
        })
    }
}

/// Accepts connections on `listener` until the server stops, serving each on a thread of its
/// own with `serve`; each is tracked in [`Connections`] while it is open.
pub(crate) fn accept_loop<S, C, F>(listener: &TcpListener, shared: &Arc<Monitor<S, C>>, serve: F)
where
    S: AsRef<Holds> + AsMut<Holds> + AsRef<Connections> + AsMut<Connections> + Send + 'static,
    C: Send + Sync + 'static,
    F: Fn(TcpStream, &Monitor<S, C>) + Clone + Send + 'static,
{
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let id = {
            let mut state = shared.lock();
            if AsRef::<Holds>::as_ref(&*state).stop {
                return;
            }
            let (Ok(clone), Ok(peer)) = (stream.try_clone(), stream.peer_addr()) else {
                continue;
            };
            let connections: &mut Connections = state.as_mut();
            connections.next += 1;
            let id = connections.next;
            connections.open.insert(id, clone);
            connections.accepted.push(peer);
            id
        };
        shared.changed.notify_all();
        let (shared, serve) = (Arc::clone(shared), serve.clone());
        std::thread::spawn(move || {
            serve(stream, &shared);
            shared.update(|s| AsMut::<Connections>::as_mut(s).open.remove(&id));
        });
    }
}
