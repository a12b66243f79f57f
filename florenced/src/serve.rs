//! The daemon's life: bind, load the model behind /health, tell systemd,
//! serve, and drain on SIGTERM.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};

use crate::api::{self, AppState};
use crate::config::Config;
use crate::worker::{Health, Workers};

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

pub fn serve(config: Config) -> anyhow::Result<()> {
    gst::init().context("cannot initialise GStreamer")?;
    gstflorence::plugin_register_static().context("cannot register the florence plugin")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("florenced-http")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run(config))
}

/// Pings the systemd watchdog while every worker loop keeps going round.
fn spawn_watchdog(st: Arc<AppState>) {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return;
    };
    tracing::info!(
        watchdog_ms = timeout.as_millis() as u64,
        "systemd watchdog enabled"
    );
    let spawned = std::thread::Builder::new()
        .name("florenced-watchdog".into())
        .spawn(move || {
            let mut warned = false;
            loop {
                std::thread::sleep(timeout / 4);
                let alive = match st.workers.get() {
                    None => true,
                    Some(w) => {
                        st.draining.load(Ordering::SeqCst)
                            || matches!(w.health(), Health::Failed(_))
                            || w.alive_within(timeout / 2)
                    }
                };
                if alive {
                    notify(&[NotifyState::Watchdog]);
                    warned = false;
                } else if !warned {
                    tracing::error!(
                        "an inference is stuck; no longer pinging the systemd watchdog"
                    );
                    warned = true;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the watchdog thread");
    }
}

/// SIGTERM (systemd) and SIGINT (a terminal) both stop the daemon.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<StopSignals> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    /// Waits for the next one and names it.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let st = AppState::new(config.clone());
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "listening on http://{local}");

    let mut signals = StopSignals::new()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = api::router(st.clone(), local);
    let http = config.http.clone();
    let mut server =
        tokio::spawn(async move { crate::connections::serve(listener, app, &http, stop_rx).await });
    spawn_watchdog(st.clone());

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
    let mut loading = tokio::task::spawn_blocking(move || Workers::start(&cfg));
    let (workers, loaded) = tokio::select! {
        r = &mut loading => r.context("the loading thread failed")?,
        name = signals.next() => {
            notify(&[NotifyState::Stopping]);
            tracing::info!("{name} while loading: stopped");
            return Ok(());
        }
    };
    let _ = st.workers.set(workers.clone());
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
            *st.load_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
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

    tokio::select! {
        name = signals.next() => tracing::info!("{name}: draining"),
        r = &mut server => {
            r.context("the HTTP server task failed")?
                .context("the HTTP server failed")?;
            return Ok(());
        }
    }
    // Refuse new work before telling systemd: whoever sees STOPPING=1 must
    // already get 503 for a new request.
    st.draining.store(true, Ordering::SeqCst);
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("draining requests"),
    ]);
    let deadline = Instant::now() + Duration::from_secs_f64(config.shutdown_timeout_s);
    while (st.active.load(Ordering::SeqCst) > 0 || workers.in_flight.load(Ordering::SeqCst) > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = st.active.load(Ordering::SeqCst);
    if left > 0 {
        tracing::warn!(
            requests = left,
            "drain timed out; closing with requests in flight"
        );
    }
    let _ = stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(5), &mut server)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 5 s; closing them");
        server.abort();
    }
    workers.set_health(Health::Stopping);
    let w = workers.clone();
    let _ = tokio::task::spawn_blocking(move || w.shutdown(Duration::from_secs(5))).await;
    tracing::info!("stopped");
    Ok(())
}
