//! Request counters and latencies, rendered two ways on /metrics: the
//! hailo-florence JSON and the Prometheus text format (0.0.4).
//!
//! The Prometheus series go through the `metrics` facade into a recorder that
//! this struct owns (not the process-wide one, so every daemon state and every
//! unit test has its own); `metrics-exporter-prometheus` renders them and
//! `metrics-process` adds the standard `process_*` series. The JSON needs what
//! the facade cannot give back (percentiles over a sliding window), so it keeps
//! its own counts, updated in the same call as the Prometheus ones.
//!
//! What counts as a request: JSON `requests_total` and Prometheus
//! `florenced_requests_total{endpoint,status}` both count the inference routes
//! (`/v1/...`) only, so `sum(florenced_requests_total) == requests_total`.
//! Every HTTP request, /health and /metrics included, is in
//! `florenced_http_requests_total{endpoint,status}` and
//! `florenced_request_duration_seconds{endpoint}`.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use gstflorence::engine::registry;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
    with_local_recorder,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const REQUESTS: &str = "florenced_requests_total";
const HTTP_REQUESTS: &str = "florenced_http_requests_total";
const REQUEST_DURATION: &str = "florenced_request_duration_seconds";
const INFERENCE_DURATION: &str = "florenced_inference_duration_seconds";
const MODEL_WAIT: &str = "florenced_model_queue_wait_seconds";
const MODEL_IN_FLIGHT: &str = "florenced_model_requests_in_flight";
const DECODE_STEPS: &str = "florenced_model_decode_steps_total";
const VISION: &str = "florenced_vision_features_total";
const QUEUE_DEPTH: &str = "florenced_queue_depth";
const RUNNING: &str = "florenced_inferences_running";
const BODY_BYTES: &str = "florenced_body_bytes_in_flight";
const UPTIME: &str = "florenced_uptime_seconds";
const RELOADS: &str = "florenced_config_reloads_total";
const LAST_RELOAD_OK: &str = "florenced_config_last_reload_successful";

/// `model_id` and `model_dir` of one loaded model.
type ModelLabels = Vec<(&'static str, String)>;

/// Prometheus' default buckets (seconds).
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The same 1-2.5-5 steps on, up to more than the largest allowed timeout (one day).
const LONG_BUCKETS: [f64; 12] = [
    25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10_000.0, 25_000.0, 50_000.0,
    100_000.0,
];

/// Histogram bounds for latencies of requests that may last up to `timeout_s`:
/// the default buckets, then on until one bound lies above the timeout, plus the
/// timeout itself, so requests that ran into it are told apart from the others.
pub fn buckets(timeout_s: f64) -> Vec<f64> {
    let mut out = DEFAULT_BUCKETS.to_vec();
    for b in LONG_BUCKETS {
        if out.last().is_some_and(|&top| top > timeout_s) {
            break;
        }
        out.push(b);
    }
    if timeout_s.is_finite() && timeout_s > 0.0 && !out.contains(&timeout_s) {
        out.push(timeout_s);
        out.sort_by(f64::total_cmp);
    }
    out
}

/// Whether a route is one the JSON counts as a request (the inference routes).
fn is_inference_endpoint(endpoint: &str) -> bool {
    endpoint.starts_with("/v1/")
}

#[derive(Debug, Default)]
struct Counts {
    total: u64,
    succeeded: u64,
    /// (when, inference ms) over the retention window, for percentiles.
    window: VecDeque<(Instant, f64)>,
}

pub struct Metrics {
    recorder: PrometheusRecorder,
    prometheus: PrometheusHandle,
    process: metrics_process::Collector,
    counts: Mutex<Counts>,
    /// The label sets of MODEL_IN_FLIGHT reported so far.
    models_seen: Mutex<Vec<ModelLabels>>,
    retention: Duration,
    started: Instant,
}

/// What the renderings need from the rest of the daemon.
pub struct Gauges {
    pub queue_depth: usize,
    pub running: usize,
    /// Request body bytes reserved in the body budget.
    pub body_bytes: usize,
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

impl Metrics {
    /// `timeout_s` is the request timeout: the latency histograms reach past it.
    pub fn new(retention: Duration, timeout_s: f64) -> Metrics {
        let bounds = buckets(timeout_s);
        let recorder = [REQUEST_DURATION, INFERENCE_DURATION, MODEL_WAIT]
            .into_iter()
            .fold(PrometheusBuilder::new(), |b, name| {
                b.set_buckets_for_metric(Matcher::Full(name.into()), &bounds)
                    .unwrap_or_else(|_| unreachable!("the bucket list is never empty"))
            })
            .build_recorder();
        let process = metrics_process::Collector::default();
        with_local_recorder(&recorder, || {
            describe_counter!(
                REQUESTS,
                "Inference requests (/v1 routes) by endpoint and status."
            );
            describe_counter!(
                HTTP_REQUESTS,
                "HTTP requests on every route by endpoint and status."
            );
            describe_histogram!(
                REQUEST_DURATION,
                Unit::Seconds,
                "Time from request to response, by endpoint."
            );
            describe_histogram!(
                INFERENCE_DURATION,
                Unit::Seconds,
                "Model time per served inference request."
            );
            describe_histogram!(
                MODEL_WAIT,
                Unit::Seconds,
                "Of the model time per served inference request, the time it queued for turns on a model shared with other requests."
            );
            describe_gauge!(
                MODEL_IN_FLIGHT,
                "Requests running on each loaded model (by model_id, with its model_dir), queued for its graphs included."
            );
            describe_counter!(
                DECODE_STEPS,
                "Decoder runs on each loaded model (by model_id, with its model_dir) by how many requests they advanced together (requests: 1 alone, more in a decode batch)."
            );
            describe_counter!(
                VISION,
                "Image features of served tasks by source: encoded (a vision encoder pass) or reused (the same image's features, kept from an earlier task or shared by another request on the model)."
            );
            describe_gauge!(QUEUE_DEPTH, "Requests waiting for the model.");
            describe_gauge!(RUNNING, "Requests being run by the model.");
            describe_gauge!(
                BODY_BYTES,
                Unit::Bytes,
                "Request body bytes being received and parsed (http.body_bytes_in_flight)."
            );
            describe_gauge!(UPTIME, Unit::Seconds, "Seconds since the daemon started.");
            describe_counter!(RELOADS, "Reloads (SIGHUP) by result: success or failure.");
            describe_gauge!(
                LAST_RELOAD_OK,
                "1 unless the last reload (SIGHUP) failed; /health's reload_error says why."
            );
            gauge!(LAST_RELOAD_OK).set(1.0);
            process.describe();
        });
        Metrics {
            prometheus: recorder.handle(),
            recorder,
            process,
            counts: Mutex::new(Counts::default()),
            models_seen: Mutex::new(Vec::new()),
            retention,
            started: Instant::now(),
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records one finished request; `inference_ms` (and of it
    /// `model_wait_ms`, queued for turns on the shared model) for those that
    /// ran the model.
    pub fn record(
        &self,
        endpoint: &str,
        status: u16,
        duration: Duration,
        inference_ms: Option<f64>,
        model_wait_ms: Option<f64>,
    ) {
        let inference_request = is_inference_endpoint(endpoint);
        with_local_recorder(&self.recorder, || {
            let labels = [
                ("endpoint", endpoint.to_owned()),
                ("status", status.to_string()),
            ];
            counter!(HTTP_REQUESTS, &labels).increment(1);
            if inference_request {
                counter!(REQUESTS, &labels).increment(1);
            }
            histogram!(REQUEST_DURATION, "endpoint" => endpoint.to_owned())
                .record(duration.as_secs_f64());
            if let Some(ms) = inference_ms {
                histogram!(INFERENCE_DURATION).record(ms / 1e3);
            }
            if let Some(ms) = model_wait_ms {
                histogram!(MODEL_WAIT).record(ms / 1e3);
            }
        });
        // Folds the samples into the buckets now: unscraped, they would pile up.
        self.prometheus.run_upkeep();

        let mut c = self.counts.lock();
        if inference_request {
            c.total += 1;
            if status < 400 {
                c.succeeded += 1;
            }
        }
        if let Some(ms) = inference_ms {
            c.window.push_back((Instant::now(), ms));
            self.prune(&mut c);
        }
    }

    /// The served tasks of one request: how many encoded their image and
    /// how many reused features.
    pub fn record_vision(&self, encoded: u64, reused: u64) {
        if encoded + reused == 0 {
            return;
        }
        with_local_recorder(&self.recorder, || {
            counter!(VISION, "source" => "encoded").increment(encoded);
            counter!(VISION, "source" => "reused").increment(reused);
        });
    }

    /// One reload (SIGHUP) finished.
    pub fn record_reload(&self, ok: bool) {
        with_local_recorder(&self.recorder, || {
            let result = if ok { "success" } else { "failure" };
            counter!(RELOADS, "result" => result).increment(1);
            gauge!(LAST_RELOAD_OK).set(if ok { 1.0 } else { 0.0 });
        });
    }

    /// Mean inference time over the window (0 before the first request).
    pub fn average_inference_ms(&self) -> f64 {
        let mut c = self.counts.lock();
        self.prune(&mut c);
        mean(c.window.iter().map(|(_, ms)| *ms))
    }

    /// Drops inference times older than the retention window.
    fn prune(&self, c: &mut Counts) {
        let now = Instant::now();
        while c
            .window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > self.retention)
        {
            c.window.pop_front();
        }
    }

    /// The hailo-florence compatible JSON.
    pub fn json(&self, g: &Gauges) -> serde_json::Value {
        let mut c = self.counts.lock();
        self.prune(&mut c);
        let mut sorted: Vec<f64> = c.window.iter().map(|(_, ms)| *ms).collect();
        sorted.sort_by(f64::total_cmp);
        let avg = mean(sorted.iter().copied());
        let round = |v: f64| (v * 10.0).round() / 10.0;
        let resident = metrics_process::collector::collect()
            .resident_memory_bytes
            .unwrap_or(0);
        serde_json::json!({
            "requests_total": c.total,
            "requests_succeeded": c.succeeded,
            "requests_failed": c.total - c.succeeded,
            "average_inference_time_ms": round(avg),
            "p50_inference_time_ms": round(percentile(&sorted, 50.0)),
            "p95_inference_time_ms": round(percentile(&sorted, 95.0)),
            "p99_inference_time_ms": round(percentile(&sorted, 99.0)),
            "memory_usage_mb": resident / (1024 * 1024),
            "model_cache_hit_rate": 1.0,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "queue_depth": g.queue_depth,
            "inferences_running": g.running,
            "body_bytes_in_flight": g.body_bytes,
            "percentile_window_seconds": self.retention.as_secs(),
        })
    }

    /// Requests in flight and decoder runs by batch size per loaded model,
    /// from the engine's registry (the models every pipeline shares). A
    /// model gone since the last scrape reads 0 requests in flight rather
    /// than its last value.
    fn model_gauges(&self) {
        let mut seen = self.models_seen.lock();
        for labels in seen.iter() {
            gauge!(MODEL_IN_FLIGHT, labels.as_slice()).set(0.0);
        }
        for m in registry::loaded() {
            let labels = vec![
                ("model_id", m.id.to_string()),
                ("model_dir", m.dir.display().to_string()),
            ];
            gauge!(MODEL_IN_FLIGHT, labels.as_slice()).set(m.in_flight as f64);
            // The engine counts since the model loaded; a reloaded model is
            // a new model_id, so each series only grows.
            for (i, &steps) in m.decode_steps.iter().enumerate() {
                let mut by_size = labels.clone();
                by_size.push(("requests", (i + 1).to_string()));
                counter!(DECODE_STEPS, by_size.as_slice()).absolute(steps);
            }
            if !seen.contains(&labels) {
                seen.push(labels);
            }
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn prometheus(&self, g: &Gauges) -> String {
        with_local_recorder(&self.recorder, || {
            gauge!(QUEUE_DEPTH).set(g.queue_depth as f64);
            gauge!(RUNNING).set(g.running as f64);
            gauge!(BODY_BYTES).set(g.body_bytes as f64);
            gauge!(UPTIME).set(self.started.elapsed().as_secs_f64());
            self.model_gauges();
            self.process.collect();
        });
        self.prometheus.render()
    }
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
    fn buckets_reach_past_the_timeout() {
        for timeout in [0.5, 10.0, 30.0, 60.0, 61.5, 600.0, 86_400.0] {
            let b = buckets(timeout);
            assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
            assert!(*b.last().unwrap() > timeout, "{timeout}: {b:?}");
            assert!(b.contains(&timeout), "{timeout}: {b:?}");
        }
        assert_eq!(&buckets(60.0)[10..], [10.0, 25.0, 50.0, 60.0, 100.0]);
    }

    fn gauges() -> Gauges {
        Gauges {
            queue_depth: 0,
            running: 0,
            body_bytes: 0,
        }
    }

    #[test]
    fn counts_and_window() {
        let m = Metrics::new(Duration::from_secs(3600), 60.0);
        m.record(
            "/v1/caption",
            200,
            Duration::from_millis(30),
            Some(20.0),
            Some(0.0),
        );
        m.record(
            "/v1/caption",
            200,
            Duration::from_millis(50),
            Some(40.0),
            Some(20.0),
        );
        m.record("/v1/vqa", 422, Duration::from_millis(1), None, None);
        m.record("/health", 200, Duration::from_millis(1), None, None);
        let j = m.json(&gauges());
        assert_eq!(j["requests_total"], 3);
        assert_eq!(j["requests_succeeded"], 2);
        assert_eq!(j["requests_failed"], 1);
        assert_eq!(j["average_inference_time_ms"], 30.0);
        assert_eq!(j["p50_inference_time_ms"], 20.0);
        let p = m.prometheus(&gauges());
        assert!(p.contains("florenced_requests_total{endpoint=\"/v1/caption\",status=\"200\"} 2"));
        assert!(!p.contains("florenced_requests_total{endpoint=\"/health\""));
        assert!(p.contains("florenced_http_requests_total{endpoint=\"/health\",status=\"200\"} 1"));
        assert!(p.contains("florenced_inference_duration_seconds_count 2"));
        assert!(p.contains("florenced_inference_duration_seconds_bucket{le=\"0.025\"} 1"));
        assert!(p.contains("florenced_model_queue_wait_seconds_count 2"));
        assert!(p.contains("florenced_model_queue_wait_seconds_bucket{le=\"0.005\"} 1"));
        assert!(p.contains("process_start_time_seconds "));
        assert!(
            p.contains("florenced_config_last_reload_successful 1"),
            "{p}"
        );
        m.record_reload(false);
        let p = m.prometheus(&gauges());
        assert!(
            p.contains("florenced_config_last_reload_successful 0"),
            "{p}"
        );
        assert!(p.contains("florenced_config_reloads_total{result=\"failure\"} 1"));
    }

    #[test]
    fn a_request_slower_than_30_s_gets_a_finite_bucket() {
        let m = Metrics::new(Duration::from_secs(3600), 60.0);
        m.record("/v1/caption", 504, Duration::from_secs(45), None, None);
        let p = m.prometheus(&gauges());
        let bucket = |le: &str| {
            p.lines()
                .find(|l| {
                    l.starts_with("florenced_request_duration_seconds_bucket{")
                        && l.contains(&format!("le=\"{le}\""))
                })
                .unwrap_or_else(|| panic!("no le={le} bucket in {p}"))
                .rsplit_once(' ')
                .unwrap()
                .1
                .to_owned()
        };
        assert_eq!(bucket("25"), "0");
        assert_eq!(bucket("50"), "1");
        assert_eq!(bucket("60"), "1");
        assert_eq!(bucket("100"), "1");
    }
}
