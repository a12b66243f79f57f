//! `<CAPTION>` on a Hailo device: what [`Florence::run_with`] answers a
//! caption request with once a [`HailoCaptioner`] is attached (other tasks
//! stay on ONNX Runtime: the HEFs have the caption prompt built in).
//!
//! The device is opened by the first caption (a service can start while
//! hailo-ollama holds the chip), reopened after it was lost, and released
//! after `idle_release` without captions so other processes can take turns.

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::hailo::networks::{self, HailoNetworks, HailoSettings};
use super::hailo::{BridgeSource, HailoError};
use super::hailo_split::HailoSplit;
use super::model_dir::SessionOptions;
use super::pipeline::{EngineError, Florence, Interrupt, Output, Request, Timings};
use super::preprocess::RgbImage;
use super::task::Task;

/// What the service knows about the device, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DeviceState {
    /// Not held: not used yet, or released after the idle time.
    Released = 0,
    /// Held, and the last run succeeded.
    Connected = 1,
    /// Another process holds the chip; the next caption tries again.
    Busy = 2,
    /// The device failed or went away; the next caption reopens it.
    Disconnected = 3,
}

impl DeviceState {
    fn from_u8(v: u8) -> DeviceState {
        match v {
            1 => DeviceState::Connected,
            2 => DeviceState::Busy,
            3 => DeviceState::Disconnected,
            _ => DeviceState::Released,
        }
    }
}

struct Inner {
    split: Mutex<HailoSplit<HailoNetworks>>,
    state: AtomicU8,
    last_used: Mutex<Instant>,
}

/// The Hailo split attached to a [`Florence`].
pub struct HailoCaptioner {
    inner: Arc<Inner>,
    source: BridgeSource,
    /// Dropping it ends the idle-release thread.
    _reaper: Option<mpsc::Sender<()>>,
}

impl std::fmt::Debug for HailoCaptioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HailoCaptioner")
            .field("source", &self.source)
            .field("state", &self.device_state())
            .finish()
    }
}

/// Seconds without captions after which the device is released by default:
/// hailo-ollama's keep-alive, so the two take turns on the chip.
pub const DEFAULT_IDLE_RELEASE_S: u32 = 300;

impl HailoCaptioner {
    /// Loads the split of `dir` (its vision encoder, embeddings, the HEFs'
    /// paths) over the bridge `settings` name; does not touch the device.
    pub fn open(
        dir: &Path,
        options: &SessionOptions,
        settings: HailoSettings,
        idle_release: Option<Duration>,
    ) -> Result<HailoCaptioner, EngineError> {
        for hef in [networks::ENCODER_HEF, networks::DECODER_HEF] {
            let path = networks::hef_path(dir, hef);
            if !path.is_file() {
                return Err(HailoError::HefMissing {
                    status: super::hailo::Status::OPEN_FILE_FAILURE,
                    hef: path,
                }
                .into());
            }
        }
        let split = HailoSplit::open_hailo(dir, options, settings)?;
        let source = split_source(&split);
        let inner = Arc::new(Inner {
            split: Mutex::new(split),
            state: AtomicU8::new(0),
            last_used: Mutex::new(Instant::now()),
        });
        let reaper = idle_release.map(|idle| spawn_reaper(Arc::downgrade(&inner), idle));
        Ok(HailoCaptioner {
            inner,
            source,
            _reaper: reaper,
        })
    }

    /// Opens the device and loads both HEFs now (start-up checks, `auto`).
    pub fn open_device(&self) -> Result<(), HailoError> {
        let mut split = self.inner.split.lock().unwrap_or_else(|e| e.into_inner());
        let r = split.networks_mut().open();
        self.set_state(match &r {
            Ok(()) => DeviceState::Connected,
            Err(e) if e.is_busy() => DeviceState::Busy,
            Err(_) => DeviceState::Disconnected,
        });
        *self
            .inner
            .last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        r
    }

    /// Lets the chip go now; the next caption reopens it.
    pub fn release(&self) {
        let mut split = self.inner.split.lock().unwrap_or_else(|e| e.into_inner());
        split.networks_mut().release();
        self.set_state(DeviceState::Released);
    }

    pub fn device_state(&self) -> DeviceState {
        DeviceState::from_u8(self.inner.state.load(Ordering::SeqCst))
    }

    /// Where the bridge comes from (built in, or a library).
    pub fn bridge_source(&self) -> &BridgeSource {
        &self.source
    }

    fn set_state(&self, s: DeviceState) {
        self.inner.state.store(s as u8, Ordering::SeqCst);
    }

    /// Whether this request runs on the device: `<CAPTION>`, the prompt the
    /// HEFs were exported with.
    pub fn serves(&self, req: &Request) -> bool {
        req.task == Task::Caption
    }

    /// The caption of `image`, shaped as ONNX Runtime's [`Output`] (greedy,
    /// the split's fixed 32-token window; beam and sampling settings do not apply).
    pub(crate) fn run(
        &self,
        florence: &Florence,
        image: &RgbImage,
        req: &Request,
        interrupt: &Interrupt,
    ) -> Result<Output, EngineError> {
        let t0 = Instant::now();
        let mut split = self.inner.split.lock().unwrap_or_else(|e| e.into_inner());
        let generated = split.caption_with(image, interrupt);
        let open = split.networks_mut().is_open();
        drop(split);
        *self
            .inner
            .last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.set_state(match &generated {
            Ok(_) => DeviceState::Connected,
            Err(EngineError::Device(e)) if e.is_busy() => DeviceState::Busy,
            Err(EngineError::Device(_)) if !open => DeviceState::Disconnected,
            Err(_) if open => DeviceState::Connected,
            Err(_) => self.device_state(),
        });
        let tokens = generated?;
        let decode_ms = t0.elapsed().as_secs_f64() * 1e3;
        let start = florence.files().model.text_config.decoder_start_token_id;
        let mut ids = Vec::with_capacity(tokens.len() + 1);
        ids.push(start);
        ids.extend_from_slice(&tokens);
        let t = Instant::now();
        let raw_text = florence.decode_ids(&ids)?;
        let result = florence.post_process(req.task, &raw_text, image.width, image.height);
        Ok(Output {
            task: req.task.token().to_owned(),
            raw_text,
            result,
            token_count: tokens.len(),
            ids,
            margins: Vec::new(),
            image_size: [image.width, image.height],
            timings: Timings {
                decode_ms,
                postprocess_ms: t.elapsed().as_secs_f64() * 1e3,
                total_ms: t0.elapsed().as_secs_f64() * 1e3,
                ..Timings::default()
            },
        })
    }
}

fn split_source(split: &HailoSplit<HailoNetworks>) -> BridgeSource {
    split.networks().bridge().source().clone()
}

/// Releases the device once `idle` has passed since the last caption; ends
/// when the captioner is dropped (its sender goes away).
fn spawn_reaper(inner: Weak<Inner>, idle: Duration) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let _ = std::thread::Builder::new()
        .name("florence-hailo-idle".into())
        .spawn(move || {
            let mut wait = idle;
            loop {
                match rx.recv_timeout(wait) {
                    Err(RecvTimeoutError::Disconnected) => return,
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                }
                let Some(inner) = inner.upgrade() else { return };
                let since = inner
                    .last_used
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .elapsed();
                if since < idle {
                    wait = idle - since;
                    continue;
                }
                wait = idle;
                // A caption in progress holds the lock; it refreshes last_used.
                if let Ok(mut split) = inner.split.try_lock()
                    && split.networks_mut().is_open()
                {
                    split.networks_mut().release();
                    inner
                        .state
                        .store(DeviceState::Released as u8, Ordering::SeqCst);
                    tracing::info!(
                        "released the Hailo device after {} s without captions",
                        idle.as_secs()
                    );
                }
            }
        });
    tx
}
