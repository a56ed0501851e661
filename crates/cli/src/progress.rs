//! Progress bars on stderr, drawn only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use model_provisioner::{Progress, Reporter};

/// Draws one bar per task; hidden when stderr is not a terminal or `--quiet` is given.
#[derive(Debug)]
pub struct BarReporter {
    multi: MultiProgress,
}

impl BarReporter {
    pub fn new(quiet: bool) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        BarReporter {
            multi: MultiProgress::with_draw_target(target),
        }
    }
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn restart(&self) {
        self.0.set_position(0);
    }

    fn set_total(&self, total: u64) {
        self.0.set_length(total);
        self.0.set_style(bar_style());
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Reporter for BarReporter {
    fn start(&self, label: &str, total: Option<u64>) -> Box<dyn Progress> {
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(bar_style()),
            None => ProgressBar::no_length().with_style(
                ProgressStyle::with_template("{msg:>20!} {spinner} {bytes} {bytes_per_sec}")
                    .expect("valid template"),
            ),
        };
        bar.set_message(label.to_owned());
        Box::new(Bar(self.multi.add(bar)))
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg:>20!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .expect("valid template")
    .progress_chars("=> ")
}
