//! The Hailo backend: `<CAPTION>` on a Hailo device through the split (other
//! tasks stay on ONNX Runtime: the HEFs have the caption prompt built in).
//!
//! The split's greedy 32-token window is its own loop ([`HailoSplit::caption_with`]),
//! not a [`crate::engine::generate::StepModel`]: the decoder HEF takes the
//! whole window and no cache, its answers are the recorded Hailo-split tokens
//! only with plain argmax up to the window's end (generate.rs' logits
//! processors, beams and sampling would change them).
//!
//! Users of a shared model take the split in fair turns ([`Turns`]), one
//! caption per turn, first come first served; a waiting caption leaves the
//! queue on its cancel or deadline rather than waiting for the device.
//!
//! The device is opened by the first caption (a service can start while
//! hailo-ollama holds the chip), reopened after it was lost, and released
//! after `idle_release` without captions so other processes can take turns.

use parking_lot::Mutex;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::networks::{self, HailoNetworks, HailoSettings};
use super::split::HailoSplit;
use super::{BridgeSource, HailoError};
use crate::engine::backend::{Backend, DeviceState, Generated, Job};
use crate::engine::backend_choice::BackendKind;
use crate::engine::error::EngineError;
use crate::engine::generate::Decoded;
use crate::engine::interrupt::{Interrupt, Wake};
use crate::engine::layout::{DECODER_HEF, ENCODER_HEF};
use crate::engine::onnx::session::SessionOptions;
use crate::engine::output::{Timings, ms};
use crate::engine::task::Task;
use crate::engine::turns::Turns;

struct Inner {
    split: Turns<HailoSplit<HailoNetworks>>,
    state: AtomicU8,
    last_used: Mutex<Instant>,
}

/// The Hailo split on its device, with the device's state.
pub struct HailoBackend {
    inner: Arc<Inner>,
    source: BridgeSource,
    /// Dropping it ends the idle-release thread.
    _reaper: Option<mpsc::Sender<()>>,
}

impl std::fmt::Debug for HailoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HailoBackend")
            .field("source", &self.source)
            .field("state", &self.current_state())
            .finish()
    }
}

/// Seconds without captions after which the device is released by default:
/// hailo-ollama's keep-alive, so the two take turns on the chip.
pub const DEFAULT_IDLE_RELEASE_S: u32 = 300;

impl HailoBackend {
    /// Loads the split of `dir` (its vision encoder, embeddings, the HEFs'
    /// paths) over the bridge for this machine's HailoRT; does not touch the
    /// device. The machine comes first (no HailoRT, no bridge for it), then
    /// the model's HEFs.
    pub fn open(
        dir: &Path,
        options: &SessionOptions,
        settings: HailoSettings,
        idle_release: Option<Duration>,
    ) -> Result<HailoBackend, EngineError> {
        let bridge = settings.bridge()?;
        for hef in [ENCODER_HEF, DECODER_HEF] {
            let path = networks::hef_path(dir, hef);
            if !path.is_file() {
                return Err(HailoError::HefMissing {
                    status: super::Status::OPEN_FILE_FAILURE,
                    hef: path,
                }
                .into());
            }
        }
        let split = HailoSplit::open_hailo(dir, options, bridge, settings)?;
        let source = split_source(&split);
        let inner = Arc::new(Inner {
            split: Turns::new(split),
            state: AtomicU8::new(0),
            last_used: Mutex::new(Instant::now()),
        });
        let reaper = idle_release.map(|idle| spawn_reaper(Arc::downgrade(&inner), idle));
        Ok(HailoBackend {
            inner,
            source,
            _reaper: reaper,
        })
    }

    /// Opens the device and loads both HEFs now (start-up checks, `auto`).
    pub fn open_device(&self) -> Result<(), HailoError> {
        let mut split = self.inner.split.take_uninterrupted();
        let r = split.networks_mut().open();
        self.set_state(match &r {
            Ok(()) => DeviceState::Connected,
            Err(e) if e.is_busy() => DeviceState::Busy,
            Err(_) => DeviceState::Disconnected,
        });
        *self.inner.last_used.lock() = Instant::now();
        r
    }

    /// Lets the chip go now; the next caption reopens it.
    pub fn release(&self) {
        let mut split = self.inner.split.take_uninterrupted();
        split.networks_mut().release();
        self.set_state(DeviceState::Released);
    }

    pub fn current_state(&self) -> DeviceState {
        DeviceState::from_u8(self.inner.state.load(Ordering::SeqCst))
    }

    /// The HailoRT library and the bridge in use.
    pub fn bridge_source(&self) -> &BridgeSource {
        &self.source
    }

    fn set_state(&self, s: DeviceState) {
        self.inner.state.store(s as u8, Ordering::SeqCst);
    }
}

impl Backend for HailoBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Hailo
    }

    /// `<CAPTION>`, the prompt the HEFs were exported with.
    fn serves(&self, task: Task) -> bool {
        task == Task::Caption
    }

    /// The caption of the job's image: greedy over the split's fixed
    /// 32-token window (beam and sampling settings do not apply).
    fn generate(&self, job: Job<'_>, interrupt: &Interrupt) -> Result<Generated, EngineError> {
        let t0 = Instant::now();
        // A cancel wakes this caption out of the queue (which watches the
        // deadline itself); the split's own runs replace the hook once it
        // has the turn.
        let gate = self.inner.split.waker();
        interrupt.on_cancel(Arc::new(move || gate.wake()));
        let mut split = self.inner.split.take(interrupt)?;
        let waited = split.waited;
        let generated = split.caption_with(job.image, interrupt);
        let start = split.start_token();
        let open = split.networks_mut().is_open();
        drop(split);
        *self.inner.last_used.lock() = Instant::now();
        self.set_state(match &generated {
            Ok(_) => DeviceState::Connected,
            Err(EngineError::Backend(f)) if f.is_busy() => DeviceState::Busy,
            Err(EngineError::Backend(_)) if !open => DeviceState::Disconnected,
            Err(_) if open => DeviceState::Connected,
            Err(_) => self.current_state(),
        });
        let tokens = generated?;
        let mut ids = Vec::with_capacity(tokens.len() + 1);
        ids.push(start);
        ids.extend_from_slice(&tokens);
        Ok(Generated {
            decoded: Decoded {
                ids,
                margins: Vec::new(),
                score: None,
            },
            timings: Timings {
                decode_ms: ms(t0.elapsed().saturating_sub(waited)),
                queue_wait_ms: ms(waited),
                ..Timings::default()
            },
        })
    }

    fn device_state(&self) -> Option<DeviceState> {
        Some(self.current_state())
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
                let since = inner.last_used.lock().elapsed();
                if since < idle {
                    wait = idle - since;
                    continue;
                }
                wait = idle;
                // A caption holding or waiting for the turn keeps the device:
                // try_take gives way to it.
                if let Some(mut split) = inner.split.try_take()
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
