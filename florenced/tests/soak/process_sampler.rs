//! The daemon's resident memory, open file descriptors and threads, read from
//! /proc/PID while the soak runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub at_s: f64,
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
}

/// One reading of `/proc/PID`; None once the process is gone.
pub fn sample(pid: u32, since: Instant) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        at_s: since.elapsed().as_secs_f64(),
        rss_kib: field("VmRSS:")?,
        fds,
        threads: field("Threads:")?,
    })
}

/// Samples `pid` every `every` on a thread until dropped.
pub struct Sampler {
    pub samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub fn start(pid: u32, every: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let since = Instant::now();
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match sample(pid, since) {
                        Some(s) => samples.lock().unwrap().push(s),
                        None => return,
                    }
                    std::thread::park_timeout(every);
                }
            })
        };
        Sampler {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// About `n` samples evenly spread over the run, to show the trend.
    pub fn trail(&self, n: usize) -> Vec<Sample> {
        let s = self.samples.lock().unwrap();
        let step = s.len().div_ceil(n.max(1)).max(1);
        let mut out: Vec<Sample> = s.iter().step_by(step).copied().collect();
        if s.len() % step != 1 && step > 1 {
            out.extend(s.last());
        }
        out
    }

    /// The largest value of each figure over the samples so far.
    pub fn peaks(&self) -> Option<(u64, u64, u64)> {
        let s = self.samples.lock().unwrap();
        (!s.is_empty()).then(|| {
            (
                s.iter().map(|x| x.rss_kib).max().unwrap_or(0),
                s.iter().map(|x| x.fds).max().unwrap_or(0),
                s.iter().map(|x| x.threads).max().unwrap_or(0),
            )
        })
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
