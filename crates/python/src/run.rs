//! A library call made on a worker thread while the calling thread, the GIL released, waits
//! for it: every ~100 ms it takes the GIL back to hand the progress events that came to
//! `on_progress` and to let Python see its signals. A signal's exception (Ctrl-C's
//! `KeyboardInterrupt`) or one raised by `on_progress` cancels the call, and is raised once the
//! call has stopped.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use model_provisioner::{Cancel, Error, Event, Events, ProvisionerBuilder, json_line};
use pyo3::prelude::*;

use crate::errors;

/// How often the calling thread looks at Python's signals while the work runs.
const POLL: Duration = Duration::from_millis(100);

/// A call of the library, given the builder with the cancel flag and the reporter set.
pub(crate) type Work<T> = Box<dyn FnOnce(ProvisionerBuilder) -> Result<T, Error> + Send>;

/// What the worker tells the calling thread.
enum Message<T> {
    /// A progress event, as its JSON line.
    Event(String),
    /// The work's result.
    Done(Result<T, Error>),
}

/// Runs `work` on a worker thread with `builder` (its options set), handing its progress events
/// to `on_progress` on this thread.
pub(crate) fn run<T: Send + 'static>(
    py: Python<'_>,
    builder: ProvisionerBuilder,
    on_progress: Option<&Bound<'_, PyAny>>,
    work: Work<T>,
) -> PyResult<T> {
    let (tx, rx) = mpsc::channel::<Message<T>>();
    let cancel = Cancel::new();
    let mut builder = builder.cancel(cancel.clone());
    if on_progress.is_some() {
        let events = tx.clone();
        builder = builder.reporter(Arc::new(Events::new(move |event: &Event<'_>| {
            // The calling thread has gone only once the work is done.
            let _ = events.send(Message::Event(json_line(event)));
        })));
    }
    let worker = std::thread::Builder::new()
        .name("model-provisioner".into())
        .spawn(move || {
            let result = work(builder);
            let _ = tx.send(Message::Done(result));
        })
        .map_err(|e| errors::provision(&format!("failed to start a thread: {e}")))?;
    let rx = Mutex::new(rx);
    // The exception to raise instead of the result: a signal's, or `on_progress`'s.
    let mut raised: Option<PyErr> = None;
    let result = loop {
        let message = py.detach(|| {
            rx.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .recv_timeout(POLL)
        });
        match message {
            Ok(Message::Done(result)) => break Some(result),
            Ok(Message::Event(line)) => {
                if let (None, Some(callback)) = (&raised, on_progress)
                    && let Err(e) = dispatch(callback, &line)
                {
                    cancel.cancel();
                    raised = Some(e);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            // The worker panicked.
            Err(RecvTimeoutError::Disconnected) => break None,
        }
        if raised.is_none()
            && let Err(e) = py.check_signals()
        {
            cancel.cancel();
            raised = Some(e);
        }
    };
    let joined = py.detach(|| worker.join());
    if let Some(e) = raised {
        return Err(e);
    }
    match (result, joined) {
        (Some(result), Ok(())) => result.map_err(errors::to_py),
        _ => Err(errors::provision(
            "the call failed unexpectedly (a panic); see the message above",
        )),
    }
}

/// Hands the event of the JSON `line` to `callback`, as a `dict`.
fn dispatch(callback: &Bound<'_, PyAny>, line: &str) -> PyResult<()> {
    let event = callback
        .py()
        .import("json")?
        .call_method1("loads", (line,))?;
    callback.call1((event,))?;
    Ok(())
}
