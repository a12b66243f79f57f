//! What the soak's clients saw: a count per outcome, the latencies of correct
//! answers, and every failure (a lost or wrong answer, an undocumented status,
//! a slow client not cut).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Failures kept word for word; beyond that only counted.
const FAILURES_KEPT: usize = 20;

#[derive(Default)]
pub struct Tally {
    counts: Mutex<BTreeMap<String, u64>>,
    latencies_ms: Mutex<Vec<f64>>,
    failures: Mutex<(u64, Vec<String>)>,
}

impl Tally {
    pub fn count(&self, outcome: &str) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry(outcome.to_owned())
            .or_default() += 1;
    }

    /// A correct answer and the time it took, request sent to answer read.
    pub fn answered(&self, latency: Duration) {
        self.count("valid: 200 correct");
        self.latencies_ms
            .lock()
            .unwrap()
            .push(latency.as_secs_f64() * 1e3);
    }

    pub fn fail(&self, outcome: &str, detail: String) {
        self.count(&format!("FAILED {outcome}"));
        let mut f = self.failures.lock().unwrap();
        f.0 += 1;
        if f.1.len() < FAILURES_KEPT {
            f.1.push(format!("{outcome}: {detail}"));
        }
    }

    /// How many outcomes start with `prefix`.
    pub fn total(&self, prefix: &str) -> u64 {
        self.counts
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    pub fn failures(&self) -> (u64, Vec<String>) {
        self.failures.lock().unwrap().clone()
    }

    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap().clone()
    }

    /// Median and 99th percentile (nearest rank) of the correct answers' latency, ms.
    pub fn latency_median_p99(&self) -> Option<(f64, f64)> {
        let mut v = self.latencies_ms.lock().unwrap().clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some((rank(0.5), rank(0.99)))
    }
}
