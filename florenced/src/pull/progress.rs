//! Download progress: an indicatif bar when stderr is a terminal, otherwise
//! plain lines (a start line, one every 10 s, an end line) that read well in a
//! log or journald.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

const LINE_EVERY: Duration = Duration::from_secs(10);

pub struct Reporter {
    tty: bool,
}

impl Reporter {
    pub fn new() -> Reporter {
        Reporter {
            tty: std::io::stderr().is_terminal(),
        }
    }

    pub fn info(&self, message: &str) {
        eprintln!("florenced pull: {message}");
    }

    /// Progress of one file of `total` bytes, `start` of which are already there.
    pub fn file(&self, name: &str, total: u64, start: u64) -> FileProgress {
        let resume = if start > 0 {
            format!(", resuming at {}", HumanBytes(start))
        } else {
            String::new()
        };
        let bar = if self.tty {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(name.to_owned());
            bar.set_position(start);
            Some(bar)
        } else {
            self.info(&format!(
                "downloading {name} ({}{resume})",
                HumanBytes(total)
            ));
            None
        };
        FileProgress {
            bar,
            name: name.to_owned(),
            total,
            done: start,
            started: Instant::now(),
            from: start,
            last_line: Instant::now(),
        }
    }
}

pub struct FileProgress {
    bar: Option<ProgressBar>,
    name: String,
    total: u64,
    done: u64,
    from: u64,
    started: Instant,
    last_line: Instant,
}

impl FileProgress {
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.set_position(self.done),
            None if self.last_line.elapsed() >= LINE_EVERY => {
                self.last_line = Instant::now();
                let pct = (self.done as f64 * 100.0 / self.total.max(1) as f64).min(100.0);
                eprintln!(
                    "florenced pull: {}: {pct:.0} % ({} of {})",
                    self.name,
                    HumanBytes(self.done),
                    HumanBytes(self.total)
                );
            }
            None => {}
        }
    }

    /// The transfer starts over from `at` bytes (a retry, or a server that ignored Range).
    pub fn restart(&mut self, at: u64) {
        self.done = at;
        self.from = self.from.min(at);
        if let Some(bar) = &self.bar {
            bar.set_position(at);
        }
    }

    /// A message that does not tear the bar.
    pub fn note(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("florenced pull: {message}")),
            None => eprintln!("florenced pull: {message}"),
        }
    }

    pub fn finish(self) {
        let secs = self.started.elapsed().as_secs_f64();
        match &self.bar {
            Some(bar) => bar.finish(),
            None => eprintln!(
                "florenced pull: {}: {} in {secs:.1} s",
                self.name,
                HumanBytes(self.done.saturating_sub(self.from))
            ),
        }
    }

    pub fn abandon(self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}
