//! What every request handler shares: the configuration (replaced by a
//! reload), the pipelines, the drain flag, the metrics, the body budget and
//! the rate limiter; and the answers for a service that cannot take a job.

use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::Config;
use crate::http::body::{BodyIntake, BodyLimits};
use crate::http::body_budget::BodyBudget;
use crate::http::error::ApiError;
use crate::http::rate_limit::RateLimiter;
use crate::metrics::{Gauges, Metrics};
use crate::pool::Pool;
use crate::worker::{Health, Job, SubmitError, Workers};

/// The state behind every route (an `Arc` of it is axum's state).
pub struct AppState {
    /// Replaced by a reload; a request reads it once, at its start.
    config: RwLock<Arc<Config>>,
    pub workers: Pool,
    pub load_error: Mutex<Option<String>>,
    /// Why the last reload failed (the service goes on as it was).
    pub reload_error: Mutex<Option<String>>,
    pub draining: AtomicBool,
    pub metrics: Metrics,
    /// Inference requests inside handlers (the drain waits for them).
    pub active: AtomicUsize,
    /// Request body bytes in flight (`http.body_bytes_in_flight`).
    pub body_budget: BodyBudget,
    limiter: RwLock<Option<Arc<RateLimiter>>>,
    next_id: AtomicU64,
    /// Makes request ids differ between daemon runs.
    id_prefix: String,
}

impl AppState {
    pub fn new(config: Arc<Config>) -> Arc<AppState> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Arc::new(AppState {
            limiter: RwLock::new(RateLimiter::new(&config)),
            metrics: Metrics::new(
                Duration::from_secs(config.metrics.retention_seconds),
                config.request_timeout_s,
            ),
            body_budget: BodyBudget::new(config.http.body_bytes_in_flight),
            config: RwLock::new(config),
            workers: Pool::default(),
            load_error: Mutex::new(None),
            reload_error: Mutex::new(None),
            draining: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            id_prefix: format!(
                "{:08x}",
                (nanos as u64 ^ u64::from(std::process::id())) as u32
            ),
        })
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().clone()
    }

    /// A reload's new configuration (rate-limit buckets are kept unless the limit changed).
    pub fn set_config(&self, config: Arc<Config>) {
        let mut current = self.config.write();
        if current.rate_limit != config.rate_limit {
            *self.limiter.write() = RateLimiter::new(&config);
        }
        *current = config;
    }

    pub fn limiter(&self) -> Option<Arc<RateLimiter>> {
        self.limiter.read().clone()
    }

    /// Queues a job on the current pipelines; returns the ones that took it.
    pub fn submit(&self, mut job: Job) -> Result<Arc<Workers>, ApiError> {
        loop {
            let w = self.ready_workers()?;
            match w.submit(job) {
                Ok(()) => return Ok(w),
                // A reload replaced the pipelines since `ready_workers`: the new ones take it.
                Err(SubmitError::Retired(j)) => job = *j,
                Err(e) => return Err(submit_error(e, self, &w)),
            }
        }
    }

    pub fn ready_workers(&self) -> Result<Arc<Workers>, ApiError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(ApiError::not_ready("the service is shutting down"));
        }
        let Some(w) = self.workers.get() else {
            return Err(ApiError::not_ready("the model is still loading"));
        };
        match w.health() {
            Health::Ready => Ok(w),
            Health::Loading => Err(ApiError::not_ready("the model is still loading")),
            Health::Stopping => Err(ApiError::not_ready("the service is shutting down")),
            Health::Failed(_) if w.kind().has_device() => Err(ApiError::device_error()),
            Health::Failed(_) => Err(ApiError::not_ready("the model is not available")),
        }
    }

    /// A new request id (when the client sent none that is usable).
    pub fn next_request_id(&self) -> String {
        format!(
            "{}-{}",
            self.id_prefix,
            self.next_id.fetch_add(1, Ordering::SeqCst)
        )
    }

    /// How this request's body may be read.
    pub fn intake(&self) -> BodyIntake<'_> {
        BodyIntake {
            limits: BodyLimits::new(self.config().max_image_bytes),
            budget: &self.body_budget,
            timeout: Duration::from_secs_f64(self.config().http.body_read_timeout_s),
        }
    }

    pub fn gauges(&self) -> Gauges {
        Gauges {
            queue_depth: self.workers.queued(),
            running: self.workers.running(),
            body_bytes: self.body_budget.in_use(),
        }
    }
}

/// Why the pipelines did not take a job, as the client's answer (a full queue's
/// Retry-After from the average inference time and the queue ahead).
fn submit_error(e: SubmitError, st: &AppState, workers: &Workers) -> ApiError {
    match e {
        SubmitError::Overloaded => {
            let avg = st.metrics.average_inference_ms().max(100.0);
            let waiting = workers.queued() as f64 + 1.0;
            let per = st.config().max_concurrent_requests as f64;
            ApiError::overloaded((avg * waiting / per / 1e3).ceil() as u64)
        }
        SubmitError::NotReady | SubmitError::Retired(_) if st.draining.load(Ordering::SeqCst) => {
            ApiError::not_ready("the service is shutting down")
        }
        SubmitError::NotReady | SubmitError::Retired(_) => {
            ApiError::not_ready("the model is not available")
        }
    }
}
