//! Request counters, latency percentiles over a sliding window, and the two
//! renderings of /metrics: the hailo-florence JSON and Prometheus text.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Histogram bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (c, bound) in self.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (c, bound) in self.counts.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (endpoint, status) -> count
    requests: BTreeMap<(String, u16), u64>,
    request_duration: BTreeMap<String, Histogram>,
    inference_duration: Histogram,
    /// (when, inference ms) over the retention window, for percentiles.
    window: VecDeque<(Instant, f64)>,
}

pub struct Metrics {
    inner: Mutex<Inner>,
    retention: Duration,
    started: Instant,
}

/// What the JSON rendering needs from the rest of the daemon.
pub struct Gauges {
    pub queue_depth: usize,
    pub running: usize,
}

fn mean(values: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = values.len();
    if n == 0 {
        0.0
    } else {
        values.sum::<f64>() / n as f64
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Resident memory of this process in bytes (Linux /proc), 0 when unknown.
pub fn resident_bytes() -> u64 {
    status_kb("VmRSS").map_or(0, |kb| kb * 1024)
}

/// A kB field of /proc/self/status (`VmRSS`, `VmHWM` = peak resident memory).
pub fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Metrics {
    pub fn new(retention: Duration) -> Metrics {
        Metrics {
            inner: Mutex::new(Inner::default()),
            retention,
            started: Instant::now(),
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records one finished request; `inference_ms` for those that ran the model.
    pub fn record(
        &self,
        endpoint: &str,
        status: u16,
        duration: Duration,
        inference_ms: Option<f64>,
    ) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.requests.entry((endpoint.to_owned(), status)).or_default() += 1;
        m.request_duration
            .entry(endpoint.to_owned())
            .or_default()
            .observe(duration.as_secs_f64());
        if let Some(ms) = inference_ms {
            m.inference_duration.observe(ms / 1e3);
            m.window.push_back((Instant::now(), ms));
            self.prune(&mut m);
        }
    }

    /// Mean inference time over the window (0 before the first request).
    pub fn average_inference_ms(&self) -> f64 {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.prune(&mut m);
        mean(m.window.iter().map(|(_, ms)| *ms))
    }

    /// Drops inference times older than the retention window.
    fn prune(&self, m: &mut Inner) {
        let now = Instant::now();
        while m
            .window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > self.retention)
        {
            m.window.pop_front();
        }
    }

    /// The hailo-florence compatible JSON. Only inference endpoints count as requests.
    pub fn json(&self, g: &Gauges) -> serde_json::Value {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (mut total, mut ok) = (0u64, 0u64);
        for ((endpoint, status), n) in &m.requests {
            if endpoint.starts_with("/v1/") {
                total += n;
                if *status < 400 {
                    ok += n;
                }
            }
        }
        self.prune(&mut m);
        let mut sorted: Vec<f64> = m.window.iter().map(|(_, ms)| *ms).collect();
        sorted.sort_by(f64::total_cmp);
        let avg = mean(sorted.iter().copied());
        let round = |v: f64| (v * 10.0).round() / 10.0;
        serde_json::json!({
            "requests_total": total,
            "requests_succeeded": ok,
            "requests_failed": total - ok,
            "average_inference_time_ms": round(avg),
            "p50_inference_time_ms": round(percentile(&sorted, 50.0)),
            "p95_inference_time_ms": round(percentile(&sorted, 95.0)),
            "p99_inference_time_ms": round(percentile(&sorted, 99.0)),
            "memory_usage_mb": resident_bytes() / (1024 * 1024),
            "model_cache_hit_rate": 1.0,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "queue_depth": g.queue_depth,
            "inferences_running": g.running,
            "percentile_window_seconds": self.retention.as_secs(),
        })
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn prometheus(&self, g: &Gauges) -> String {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str("# HELP florenced_requests_total HTTP requests by endpoint and status.\n");
        out.push_str("# TYPE florenced_requests_total counter\n");
        for ((endpoint, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "florenced_requests_total{{endpoint=\"{}\",status=\"{status}\"}} {n}",
                escape(endpoint)
            );
        }
        out.push_str("# HELP florenced_request_duration_seconds Time from request to response.\n");
        out.push_str("# TYPE florenced_request_duration_seconds histogram\n");
        for (endpoint, h) in &m.request_duration {
            h.render(
                &mut out,
                "florenced_request_duration_seconds",
                &format!("endpoint=\"{}\"", escape(endpoint)),
            );
        }
        out.push_str("# HELP florenced_inference_duration_seconds Model time per request.\n");
        out.push_str("# TYPE florenced_inference_duration_seconds histogram\n");
        m.inference_duration
            .render(&mut out, "florenced_inference_duration_seconds", "");
        out.push_str("# HELP florenced_queue_depth Requests waiting for the model.\n");
        out.push_str("# TYPE florenced_queue_depth gauge\n");
        let _ = writeln!(out, "florenced_queue_depth {}", g.queue_depth);
        out.push_str("# HELP florenced_inferences_running Requests being run by the model.\n");
        out.push_str("# TYPE florenced_inferences_running gauge\n");
        let _ = writeln!(out, "florenced_inferences_running {}", g.running);
        out.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n");
        out.push_str("# TYPE process_resident_memory_bytes gauge\n");
        let _ = writeln!(out, "process_resident_memory_bytes {}", resident_bytes());
        out.push_str("# HELP florenced_uptime_seconds Seconds since the daemon started.\n");
        out.push_str("# TYPE florenced_uptime_seconds gauge\n");
        let _ = writeln!(
            out,
            "florenced_uptime_seconds {}",
            self.started.elapsed().as_secs_f64()
        );
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn counts_and_window() {
        let m = Metrics::new(Duration::from_secs(3600));
        m.record("/v1/caption", 200, Duration::from_millis(30), Some(20.0));
        m.record("/v1/caption", 200, Duration::from_millis(50), Some(40.0));
        m.record("/v1/vqa", 422, Duration::from_millis(1), None);
        m.record("/health", 200, Duration::from_millis(1), None);
        let g = Gauges {
            queue_depth: 0,
            running: 0,
        };
        let j = m.json(&g);
        assert_eq!(j["requests_total"], 3);
        assert_eq!(j["requests_succeeded"], 2);
        assert_eq!(j["requests_failed"], 1);
        assert_eq!(j["average_inference_time_ms"], 30.0);
        assert_eq!(j["p50_inference_time_ms"], 20.0);
        let p = m.prometheus(&g);
        assert!(p.contains("florenced_requests_total{endpoint=\"/v1/caption\",status=\"200\"} 2"));
        assert!(p.contains("florenced_inference_duration_seconds_count 2"));
        assert!(p.contains("florenced_inference_duration_seconds_bucket{le=\"0.025\"} 1"));
    }
}
