//! Soak: the real daemon on loopback under a mix of valid, invalid, slow and
//! vanishing clients (see soak/clients.rs). Every valid request must be
//! answered with the answer that request got when sent alone at start, or with
//! a documented 503 (Retry-After); every invalid one with its documented 4xx;
//! slow clients must be cut by the timeouts; /health stays 200. The daemon's
//! RSS, open fds and threads are sampled from /proc; after a warm-up phase
//! they must come back within stated bounds once the load stops.
//!
//! `a_short_soak_loses_swaps_and_leaks_nothing` runs in the suite and ends
//! after a number of events of each kind; `scripts/soak.sh [MINUTES]` runs
//! `soak_for_minutes` (ignored otherwise) for a time and prints the figures.

#[path = "soak/cases.rs"]
mod cases;
#[path = "soak/clients.rs"]
mod clients;
mod common;
#[path = "soak/process_sampler.rs"]
mod process_sampler;
#[path = "soak/tally.rs"]
mod tally;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use clients::{Mix, Shared};
use common::{Daemon, Spawn};
use process_sampler::{Sample, Sampler, sample};
use tally::Tally;

/// Open descriptors allowed above the warm-up's figure once the load stopped
/// and the daemon is idle (a connection being closed as it is read).
const FD_SLACK: u64 = 4;
/// Threads likewise (a blocking-pool thread that has not yet retired).
const THREAD_SLACK: u64 = 4;
/// Resident memory allowed above the warm-up's figure: 32 MiB or 15 %, the
/// larger (allocator arenas and caches settle unevenly between runs).
const RSS_SLACK_KIB: u64 = 32 * 1024;
const RSS_SLACK_FRACTION: f64 = 0.15;
/// Hang guards: waiting for the daemon to go idle, for events, for figures to come back.
const GUARD: Duration = Duration::from_secs(60);
const EVENTS_GUARD: Duration = Duration::from_secs(900);

const MIX: Mix = Mix {
    valid: 4,
    invalid: 1,
    slow_heads: 1,
    slow_bodies: 1,
    vanishing: 1,
};

/// When a phase of load ends.
enum Until {
    /// At least this many outcomes of each kind (valid correct answers,
    /// invalid answered, slow heads cut, slow bodies cut, clients that left).
    Events([u64; 5]),
    Time(Duration),
}

impl Until {
    fn reached(&self, t: &Tally, started: Instant) -> bool {
        match self {
            Until::Time(d) => started.elapsed() >= *d,
            Until::Events(n) => {
                let got = [
                    t.total("valid: 200"),
                    t.total("invalid: "),
                    t.total("slow head: cut"),
                    t.total("slow body: "),
                    t.total("vanishing: "),
                ];
                got.iter().zip(n).all(|(g, n)| g >= n)
            }
        }
    }
}

struct Soak {
    daemon: Daemon,
    shared: Shared,
}

impl Soak {
    /// The daemon with two pipelines and a short queue (so that 503s happen),
    /// short header and body timeouts (so that slow clients are cut often),
    /// and the expected answers from one request each.
    fn start() -> Soak {
        let daemon = Spawn::new()
            .set("max_concurrent_requests=2")
            .set("queue_depth=2")
            .set("http.header_read_timeout_s=2")
            .set("http.body_read_timeout_s=3")
            .ready();
        let valid = cases::expected_answers(daemon.addr).unwrap();
        let shared = Shared {
            addr: daemon.addr,
            valid: Arc::new(valid),
            invalid: Arc::new(cases::invalid_requests()),
            tally: Arc::new(Tally::default()),
            stop: Arc::new(AtomicBool::new(false)),
        };
        Soak { daemon, shared }
    }

    /// Runs the clients until `until`; returns what they saw.
    fn phase(&self, until: &Until) -> Arc<Tally> {
        let shared = Shared {
            tally: Arc::new(Tally::default()),
            stop: Arc::new(AtomicBool::new(false)),
            ..self.shared.clone()
        };
        let threads = clients::spawn(&shared, &MIX);
        let started = Instant::now();
        while !until.reached(&shared.tally, started) {
            // A test stops at its first failure; a timed soak counts them all.
            if matches!(until, Until::Events(_)) && shared.tally.failures().0 > 0 {
                break;
            }
            if matches!(until, Until::Events(_)) && started.elapsed() > EVENTS_GUARD {
                shared
                    .tally
                    .fail("events", format!("not reached in {EVENTS_GUARD:?}"));
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        shared.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in threads {
            t.join().unwrap();
        }
        shared.tally
    }

    /// Waits until nothing is queued, running or being received, then reads /proc.
    fn idle_sample(&self, since: Instant) -> Sample {
        let start = Instant::now();
        loop {
            let m = self.daemon.get("/metrics").json();
            let busy = ["inferences_running", "queue_depth", "body_bytes_in_flight"]
                .iter()
                .any(|k| m[*k].as_u64() != Some(0));
            if !busy {
                break;
            }
            assert!(start.elapsed() < GUARD, "the daemon never went idle: {m}");
            std::thread::sleep(Duration::from_millis(50));
        }
        sample(self.daemon.child.id(), since).expect("the daemon is gone")
    }

    /// Once idle again: waits for fds and threads to come back within their
    /// slack of `start` (connections closing, idle threads retiring), then
    /// reads the figures; the hang guard ends the wait if they never do.
    fn end_sample(&self, start: &Sample, since: Instant) -> Sample {
        let waited = Instant::now();
        loop {
            let s = self.idle_sample(since);
            let back = s.fds <= start.fds + FD_SLACK && s.threads <= start.threads + THREAD_SLACK;
            if back || waited.elapsed() > GUARD {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Warm-up, then the measured phase; returns the report and its failures.
    fn run(mut self, warm_up: Until, measured: Until) -> (String, Vec<String>) {
        let since = Instant::now();
        let sampler = Sampler::start(self.daemon.child.id(), Duration::from_secs(2));
        let warm = self.phase(&warm_up);
        let start = self.idle_sample(since);
        let load_started = Instant::now();
        let tally = self.phase(&measured);
        let load_s = load_started.elapsed().as_secs_f64();
        let end = self.end_sample(&start, since);
        let peaks = sampler.peaks();
        let trail = sampler.trail(10);
        drop(sampler);

        let mut failures = Vec::new();
        for (phase, t) in [("warm-up", &warm), ("soak", &tally)] {
            let (n, kept) = t.failures();
            if n > 0 {
                failures.push(format!("{phase}: {n} failures, first ones: {kept:#?}"));
            }
        }
        if end.fds > start.fds + FD_SLACK {
            failures.push(format!(
                "open fds grew from {} to {} (bound +{FD_SLACK})",
                start.fds, end.fds
            ));
        }
        if end.threads > start.threads + THREAD_SLACK {
            failures.push(format!(
                "threads grew from {} to {} (bound +{THREAD_SLACK})",
                start.threads, end.threads
            ));
        }
        let rss_bound =
            start.rss_kib + RSS_SLACK_KIB.max((start.rss_kib as f64 * RSS_SLACK_FRACTION) as u64);
        if end.rss_kib > rss_bound {
            failures.push(format!(
                "RSS grew from {} to {} KiB (bound {rss_bound} KiB)",
                start.rss_kib, end.rss_kib
            ));
        }
        let errors: Vec<_> = self
            .daemon
            .log_lines()
            .into_iter()
            .filter(|l| l["level"] == "ERROR")
            .take(10)
            .collect();
        if !errors.is_empty() {
            failures.push(format!("ERROR lines in the daemon's log: {errors:#?}"));
        }
        if let Ok(Some(status)) = self.daemon.child.try_wait() {
            failures.push(format!("the daemon exited: {status:?}"));
        }

        let mut report = format!("soak: {load_s:.0} s of load after the warm-up\n");
        let mib = |kib: u64| kib as f64 / 1024.0;
        report += &format!(
            "daemon after warm-up (idle): RSS {:.1} MiB, {} fds, {} threads\n",
            mib(start.rss_kib),
            start.fds,
            start.threads
        );
        report += &format!(
            "daemon at the end (idle):    RSS {:.1} MiB, {} fds, {} threads (bounds: RSS {:.1} MiB, fds +{FD_SLACK}, threads +{THREAD_SLACK})\n",
            mib(end.rss_kib),
            end.fds,
            end.threads,
            mib(rss_bound)
        );
        if let Some((rss, fds, threads)) = peaks {
            report += &format!(
                "peaks under load (every 2 s): RSS {:.1} MiB, {fds} fds, {threads} threads\n",
                mib(rss)
            );
        }
        report += "samples (s: RSS MiB / fds / threads):";
        for s in &trail {
            report += &format!(
                " {:.0}: {:.1}/{}/{}",
                s.at_s,
                mib(s.rss_kib),
                s.fds,
                s.threads
            );
        }
        report += "\n";
        if let Some((median, p99)) = tally.latency_median_p99() {
            report +=
                &format!("latency of correct answers: median {median:.0} ms, p99 {p99:.0} ms\n");
        }
        for (outcome, n) in tally.counts() {
            report += &format!("{n:>8}  {outcome}\n");
        }
        (report, failures)
    }
}

fn finish(report: &str, failures: &[String]) {
    println!("{report}");
    if let Ok(path) = std::env::var("SOAK_REPORT") {
        std::fs::write(&path, report).unwrap();
    }
    assert!(failures.is_empty(), "{report}\n{}", failures.join("\n"));
}

#[test]
fn a_short_soak_loses_swaps_and_leaks_nothing() {
    let soak = Soak::start();
    let each_case_twice = 2 * soak.shared.valid.len() as u64;
    let (report, failures) = soak.run(
        Until::Events([each_case_twice, 9, 1, 1, 2]),
        Until::Events([each_case_twice, 27, 2, 2, 6]),
    );
    finish(&report, &failures);
}

/// `scripts/soak.sh [MINUTES]`: SOAK_MINUTES of load (default 10), the first
/// tenth of it a warm-up.
#[test]
#[ignore = "minutes long; run by scripts/soak.sh"]
fn soak_for_minutes() {
    let minutes: f64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10.0);
    let total = Duration::from_secs_f64(minutes * 60.0);
    let soak = Soak::start();
    let (report, failures) = soak.run(Until::Time(total / 10), Until::Time(total * 9 / 10));
    finish(&report, &failures);
}
