//! The daemon's HTTP side: bind, serve, tell systemd; the model's loading,
//! reloads and the drain on SIGTERM are in `lifecycle`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use sd_notify::NotifyState;

use crate::config::Config;
use crate::http::routes;
use crate::http::state::AppState;
use crate::lifecycle::{self, Loader, Signals};
use crate::notify::notify;
use crate::worker::Health;

pub fn serve(config: Config, loader: Loader) -> anyhow::Result<()> {
    gst::init().context("cannot initialise GStreamer")?;
    gstflorence::plugin_register_static().context("cannot register the florence plugin")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("florenced-http")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(run(config, loader));
    // A reload still loading a model must not hold the exit up.
    rt.shutdown_timeout(Duration::from_millis(500));
    result
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

async fn run(config: Config, loader: Loader) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let st = AppState::new(config.clone());
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "listening on http://{local}");

    let signals = Signals::new()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = routes::router(st.clone(), local);
    let http = config.http.clone();
    let server = tokio::spawn(async move {
        crate::http::connections::serve(listener, app, &http, stop_rx).await
    });
    spawn_watchdog(st.clone());
    lifecycle::run(st, server, stop_tx, signals, loader, local).await
}
