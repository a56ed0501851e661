//! [`Cancel`]: a flag that stops the downloads of the engines given it, between two reads.

use std::sync::Arc;

use tokio::sync::watch;

use crate::error::Error;

/// A flag, shared by its clones, that stops every download of the engines configured with it
/// ([`DownloadConfig::cancel`](crate::DownloadConfig::cancel)): a request waiting for its
/// answer or a body waiting for its next bytes stops at once, and the download fails with
/// [`Error::Cancelled`] once what reached the disk is in its resume record, so that the next
/// run resumes it. A download asked for after the flag is set fails before its first request.
/// The flag stays set.
#[derive(Debug, Clone)]
pub struct Cancel(Arc<watch::Sender<bool>>);

impl Default for Cancel {
    fn default() -> Self {
        Cancel(Arc::new(watch::Sender::new(false)))
    }
}

impl Cancel {
    /// A flag not set.
    pub fn new() -> Self {
        Cancel::default()
    }

    /// Sets the flag: the downloads stop.
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// Whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the flag is set.
    pub async fn cancelled(&self) {
        let mut flag = self.0.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = flag.wait_for(|set| *set).await;
    }
}

/// `work`'s output, unless `cancel` is set first: then [`Error::Cancelled`], and `work` is
/// dropped where it waits.
pub(crate) async fn unless_cancelled<T>(
    cancel: Option<&Cancel>,
    work: impl Future<Output = T>,
) -> Result<T, Error> {
    let Some(cancel) = cancel else {
        return Ok(work.await);
    };
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(Error::Cancelled),
        output = work => Ok(output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_flag_stops_what_waits_and_what_comes_after() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let cancel = Cancel::new();
        let done = runtime.block_on(unless_cancelled(Some(&cancel), async { 7 }));
        assert!(matches!(done, Ok(7)));
        let clone = cancel.clone();
        let waited = runtime.block_on(async {
            let forever = std::future::pending::<()>();
            let setter = async {
                tokio::task::yield_now().await;
                clone.cancel();
                std::future::pending::<()>().await;
            };
            tokio::select! {
                r = unless_cancelled(Some(&cancel), forever) => r,
                () = setter => unreachable!("it never ends"),
            }
        });
        assert!(matches!(waited, Err(Error::Cancelled)));
        assert!(cancel.is_cancelled());
        let after = runtime.block_on(unless_cancelled(Some(&cancel), async { 7 }));
        assert!(matches!(after, Err(Error::Cancelled)), "the flag stays set");
        let free = runtime.block_on(unless_cancelled(None, async { 7 }));
        assert!(matches!(free, Ok(7)));
    }
}
