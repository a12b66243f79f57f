//! The daemon's life once it listens: load the model, then react to signals
//! until it stops.
//!
//! - SIGHUP reloads the configuration (and the model when its settings or files
//!   changed, or it is not serving): requests already queued finish on the old
//!   pipelines, new ones go to the new; a reload that fails changes nothing and
//!   says why (log, /health `reload_error`, a metric).
//! - SIGUSR1 and SIGUSR2 are logged and ignored.
//! - SIGTERM and SIGINT drain: new requests get 503, admitted ones may finish
//!   until `shutdown_timeout_s`; then the queued ones get 503, the running
//!   inference is cancelled, connections close and the process exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use sd_notify::NotifyState;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::state::AppState;
use crate::notify::notify;
use crate::reload::{self, ModelFiles};
use crate::worker::{Health, Workers};

/// Reads the configuration again from where start-up read it.
pub type Loader = Arc<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// After the drain deadline: how long the 503s, the cancelled inference,
/// closing the connections and stopping the pipelines may take together.
const CLOSING_BOUND: Duration = Duration::from_secs(2);

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Stop(&'static str),
    Reload,
    Ignored(&'static str),
}

/// The signals the daemon handles; installed before it loads anything, so none
/// of them kills it with the default action.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

impl Signals {
    pub fn new() -> anyhow::Result<Signals> {
        let on = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("cannot handle {name}"))
        };
        Ok(Signals {
            term: on(SignalKind::terminate(), "SIGTERM")?,
            int: on(SignalKind::interrupt(), "SIGINT")?,
            hup: on(SignalKind::hangup(), "SIGHUP")?,
            usr1: on(SignalKind::user_defined1(), "SIGUSR1")?,
            usr2: on(SignalKind::user_defined2(), "SIGUSR2")?,
        })
    }

    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Stop("SIGTERM"),
            _ = self.int.recv() => Event::Stop("SIGINT"),
            _ = self.hup.recv() => Event::Reload,
            _ = self.usr1.recv() => Event::Ignored("SIGUSR1"),
            _ = self.usr2.recv() => Event::Ignored("SIGUSR2"),
        }
    }
}

fn log_ignored(name: &str) {
    tracing::info!(
        signal = name,
        "{name} ignored (SIGHUP reloads the configuration, SIGTERM stops)"
    );
}

/// Loads the model, serves until a stop signal or the server's end, then stops
/// within `shutdown_timeout_s` plus [`CLOSING_BOUND`].
pub async fn run<E>(
    st: Arc<AppState>,
    mut server: JoinHandle<Result<(), E>>,
    stop_server: tokio::sync::watch::Sender<bool>,
    mut signals: Signals,
    loader: Loader,
    local: SocketAddr,
) -> anyhow::Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let config = st.config();
    let model = config
        .model_dir
        .as_ref()
        .map_or_else(|| "(none)".into(), |d| d.display().to_string());
    notify(&[NotifyState::Status(&format!(
        "loading the model from {model}"
    ))]);
    tracing::info!(model_dir = %model, "loading the model");
    let started = Instant::now();
    let cfg = (*config).clone();
    let mut loading = tokio::task::spawn_blocking(move || {
        let files = reload::model_files(cfg.model_dir.as_deref());
        (Workers::start(&cfg), files)
    });
    let mut reload_pending = false;
    let ((workers, loaded), mut files) = loop {
        tokio::select! {
            r = &mut loading => break r.context("the loading thread failed")?,
            event = signals.next() => match event {
                Event::Stop(name) => {
                    notify(&[NotifyState::Stopping]);
                    tracing::info!("{name} while loading: stopped");
                    return Ok(());
                }
                Event::Reload => {
                    tracing::info!("SIGHUP while loading: reloading once the model is loaded");
                    reload_pending = true;
                }
                Event::Ignored(name) => log_ignored(name),
            }
        }
    };
    st.workers.replace(workers);
    match loaded {
        Ok(()) => {
            tracing::info!(
                load_ms = started.elapsed().as_millis() as u64,
                address = %local,
                "model loaded; serving"
            );
            notify(&[
                NotifyState::Ready,
                NotifyState::Status(&format!("serving on {local}")),
            ]);
        }
        Err(e) => {
            *st.load_error.lock() = Some(e.clone());
            notify(&[NotifyState::Status(&format!(
                "the model failed to load: {e}"
            ))]);
            if config.exit_on_load_failure {
                anyhow::bail!("cannot load the model from {model}: {e}");
            }
            tracing::error!(error = %e, "the model failed to load; /health reports it");
            notify(&[NotifyState::Ready]);
        }
    }

    let mut reloading: Option<JoinHandle<Result<Prepared, String>>> = None;
    loop {
        if reload_pending && reloading.is_none() {
            reload_pending = false;
            reloading = Some(start_reload(&st, &loader, &files));
        }
        tokio::select! {
            event = signals.next() => match event {
                Event::Stop(name) => {
                    tracing::info!("{name}: draining");
                    break;
                }
                Event::Reload if reloading.is_some() => {
                    tracing::info!("SIGHUP during a reload: reloading again after it");
                    reload_pending = true;
                }
                Event::Reload => reload_pending = true,
                Event::Ignored(name) => log_ignored(name),
            },
            r = async {
                match reloading.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            } => {
                reloading = None;
                let outcome = r.unwrap_or_else(|e| Err(format!("the reload thread failed: {e}")));
                if let Some(f) = finish_reload(&st, outcome, local) {
                    files = f;
                }
            }
            r = &mut server => {
                r.context("the HTTP server task failed")?
                    .context("the HTTP server failed")?;
                return Ok(());
            }
        }
    }
    shut_down(&st, server, stop_server).await;
    Ok(())
}

/// A reload prepared off the async threads, ready to be switched to.
struct Prepared {
    plan: reload::Plan,
    /// New pipelines, already loaded (and warmed up), with the files they loaded.
    pipelines: Option<(Arc<Workers>, ModelFiles)>,
    /// Why the model is loaded again (for the log).
    model_reason: Option<&'static str>,
}

fn start_reload(
    st: &Arc<AppState>,
    loader: &Loader,
    files: &ModelFiles,
) -> JoinHandle<Result<Prepared, String>> {
    tracing::info!("SIGHUP: reloading the configuration");
    // systemd's reload protocol: RELOADING=1 with the time, READY=1 when done.
    let mut states = vec![
        NotifyState::Reloading,
        NotifyState::Status("reloading the configuration"),
    ];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    notify(&states);
    let old = st.config();
    let serving = st
        .workers
        .get()
        .is_some_and(|w| w.health() == Health::Ready);
    let (loader, files) = (loader.clone(), files.clone());
    tokio::task::spawn_blocking(move || prepare(&old, &loader, &files, serving))
}

fn prepare(
    old: &Config,
    loader: &Loader,
    files: &ModelFiles,
    serving: bool,
) -> Result<Prepared, String> {
    let new = loader().map_err(|e| format!("the configuration is invalid: {e}"))?;
    let plan = reload::plan(old, new)?;
    let now = reload::model_files(plan.config.model_dir.as_deref());
    let model_reason = if !serving {
        Some("the model was not serving")
    } else if plan.pipelines_changed {
        Some("model settings changed")
    } else if now != *files {
        Some("the model files changed")
    } else {
        None
    };
    let Some(reason) = model_reason else {
        return Ok(Prepared {
            plan,
            pipelines: None,
            model_reason,
        });
    };
    let model = plan
        .config
        .model_dir
        .as_ref()
        .map_or_else(|| "(none)".into(), |d| d.display().to_string());
    tracing::info!(model_dir = %model, reason, "loading the model into new pipelines");
    let (workers, loaded) = Workers::start(&plan.config);
    if let Err(e) = loaded {
        // Nothing runs on them yet: stopping them releases the model at once.
        workers.shutdown(Duration::ZERO);
        return Err(format!("the model failed to load from {model}: {e}"));
    }
    Ok(Prepared {
        plan,
        pipelines: Some((workers, now)),
        model_reason,
    })
}

/// Switches to a prepared reload, or records why it failed. Returns the model
/// files the new pipelines loaded, if there are new pipelines.
fn finish_reload(
    st: &AppState,
    outcome: Result<Prepared, String>,
    local: SocketAddr,
) -> Option<ModelFiles> {
    st.metrics.record_reload(outcome.is_ok());
    let clear = |m: &parking_lot::Mutex<Option<String>>| {
        m.lock().take();
    };
    match outcome {
        Ok(p) => {
            if !p.plan.need_restart.is_empty() {
                tracing::warn!(
                    keys = ?p.plan.need_restart,
                    "these keys changed but take effect only after a restart; keeping their old values"
                );
            }
            st.set_config(Arc::new(p.plan.config));
            let files = p.pipelines.map(|(workers, files)| {
                st.workers.replace(workers);
                clear(&st.load_error);
                files
            });
            clear(&st.reload_error);
            tracing::info!(
                changed = ?p.plan.changed,
                model_reloaded = files.is_some(),
                model_reason = p.model_reason,
                "configuration reloaded"
            );
            notify(&[
                NotifyState::Ready,
                NotifyState::Status(&format!("serving on {local}")),
            ]);
            files
        }
        Err(e) => {
            // /health says it before the log does: whoever reads the log line
            // (an operator, a test) then finds the reason there.
            *st.reload_error.lock() = Some(e.clone());
            // Nothing serves: /health's error says the latest reason.
            {
                let mut load_error = st.load_error.lock();
                if load_error.is_some() {
                    *load_error = Some(e.clone());
                }
            }
            tracing::error!(error = %e, "reload failed; going on with the previous configuration");
            notify(&[
                NotifyState::Ready,
                NotifyState::Status(&format!("reload failed: {e}")),
            ]);
            None
        }
    }
}

/// Drains, then at the deadline refuses what is queued, cancels what runs,
/// closes the connections and stops the pipelines, each step bounded.
async fn shut_down<E>(
    st: &Arc<AppState>,
    mut server: JoinHandle<Result<(), E>>,
    stop_server: tokio::sync::watch::Sender<bool>,
) {
    // Refuse new work before telling systemd: whoever sees STOPPING=1 must
    // already get 503 for a new request.
    st.draining.store(true, Ordering::SeqCst);
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("draining requests"),
    ]);
    let bound = Duration::from_secs_f64(st.config().shutdown_timeout_s);
    let busy = || st.active.load(Ordering::SeqCst) > 0 || st.workers.in_flight() > 0;
    let deadline = Instant::now() + bound;
    while busy() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closing = Instant::now() + CLOSING_BOUND;
    if busy() {
        let requests = st.active.load(Ordering::SeqCst);
        // Takes the queue's lock, which a worker holds for up to a poll interval.
        let pool = st.clone();
        let (refused, running) = tokio::task::spawn_blocking(move || pool.workers.abort())
            .await
            .unwrap_or((0, 0));
        tracing::warn!(
            requests,
            refused,
            running,
            timeout_s = bound.as_secs_f64(),
            "drain timed out; answering queued requests with 503 and cancelling the running inference"
        );
        // The handlers write those answers now.
        while busy() && Instant::now() < closing {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Stops accepting; idle keep-alive connections close, open ones after their answer.
    let _ = stop_server.send(true);
    let left = closing.saturating_duration_since(Instant::now());
    if tokio::time::timeout(left, &mut server).await.is_err() {
        tracing::warn!(
            requests = st.active.load(Ordering::SeqCst),
            "connections still open at the shutdown bound; closing them"
        );
        server.abort();
    }
    if let Some(w) = st.workers.get() {
        w.set_health(Health::Stopping);
    }
    let pool = st.clone();
    let end = closing.max(Instant::now() + Duration::from_millis(500));
    let stopped = tokio::task::spawn_blocking(move || pool.workers.shutdown(end))
        .await
        .unwrap_or(false);
    if !stopped {
        tracing::error!("a pipeline did not stop in time; exiting anyway");
    }
    tracing::info!("stopped");
}
