//! Which backends a model loads on, and why: the one decision behind the
//! element's `backend`, florenced's `backend` setting and `florenced run` /
//! `bench --backend`, so all of them report the same reason.

use std::time::Duration;

use super::backend::Backend;
use super::backend_choice::BackendChoice;
use super::config::ModelFiles;
use super::error::EngineError;
use super::hailo::{DEFAULT_IDLE_RELEASE_S, HailoBackend, HailoSettings};
use super::layout::Layout;
use super::model_error::ModelError;
use super::onnx::OnnxBackend;
use super::onnx::session::SessionOptions;

/// How to load a model: its ONNX Runtime sessions, the backend choice and
/// how the Hailo device is used.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub session: SessionOptions,
    pub backend: BackendChoice,
    /// The device's settings (ignored by ONNX Runtime).
    pub hailo: HailoSettings,
    /// Time without captions after which the device is released, so other
    /// processes (hailo-ollama) can take turns; `None` keeps it.
    pub idle_release: Option<Duration>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            session: SessionOptions::default(),
            backend: BackendChoice::Auto,
            hailo: HailoSettings::default(),
            idle_release: Some(Duration::from_secs(u64::from(DEFAULT_IDLE_RELEASE_S))),
        }
    }
}

/// ONNX Runtime alone, with these sessions.
impl From<SessionOptions> for LoadOptions {
    fn from(session: SessionOptions) -> Self {
        LoadOptions {
            session,
            backend: BackendChoice::Onnx,
            ..LoadOptions::default()
        }
    }
}

/// The backends a model runs on, the first that serves a task running it.
pub(crate) struct Chosen {
    pub backends: Vec<Box<dyn Backend>>,
    pub reason: String,
}

/// Opens the backends `options.backend` asks for.
///
/// `hailo`: the bridge, the HEFs and the device are checked now; a missing
/// bridge, driver or HEF, or a HEF for another chip, fails the load with the
/// cause; a busy device does not (the first caption tries again).
/// `auto`: Hailo when all of that works and the device answers now, else
/// ONNX Runtime, with the reason. hailo-florence's layout has only the
/// split: the device or nothing.
pub(crate) fn backends(
    files: &ModelFiles,
    layout: Layout,
    options: &LoadOptions,
) -> Result<Chosen, ModelError> {
    let dir = &files.dir;
    let hailo_only = !layout.has_text_graphs();
    if options.backend == BackendChoice::Onnx && hailo_only {
        return Err(ModelError::Backend {
            context: format!("backend=onnx cannot run {}", dir.display()),
            cause: "it has hailo-florence's layout (HEFs, no ONNX text graphs); use \
                    backend=hailo or auto, or a model in the onnx-community layout"
                .into(),
        });
    }
    // ONNX Runtime's graphs first, as before the device existed: loading a
    // graph briefly needs more memory than it keeps.
    let onnx: Option<Box<dyn Backend>> = if hailo_only {
        None
    } else {
        Some(Box::new(OnnxBackend::open(files, &options.session)?))
    };
    if options.backend == BackendChoice::Onnx {
        return Ok(Chosen {
            backends: onnx.into_iter().collect(),
            reason: "backend=onnx".into(),
        });
    }
    let choice = if hailo_only {
        BackendChoice::Hailo
    } else {
        options.backend
    };
    let opened = HailoBackend::open(
        dir,
        &options.session,
        options.hailo.clone(),
        options.idle_release,
    )
    .and_then(|hailo| match hailo.open_device() {
        Ok(()) => Ok((hailo, None)),
        Err(e) if e.is_busy() && choice == BackendChoice::Hailo => Ok((hailo, Some(e))),
        Err(e) => Err(EngineError::from(e)),
    });
    match (choice, opened) {
        (_, Ok((hailo, busy))) => {
            let reason = match busy {
                Some(e) => format!("backend=hailo; {e} (the first caption tries again)"),
                None => format!(
                    "{}: {}, the device answers and both HEFs fit",
                    if hailo_only {
                        "hailo-florence's layout runs on the Hailo device"
                    } else if choice == BackendChoice::Hailo {
                        "backend=hailo"
                    } else {
                        "backend=auto chose Hailo"
                    },
                    hailo.bridge_source()
                ),
            };
            let mut backends: Vec<Box<dyn Backend>> = vec![Box::new(hailo)];
            backends.extend(onnx);
            Ok(Chosen { backends, reason })
        }
        (BackendChoice::Hailo, Err(e)) => Err(ModelError::Backend {
            context: if hailo_only {
                "hailo-florence's layout (HEFs, no ONNX text graphs) needs a Hailo device".into()
            } else {
                "backend=hailo".into()
            },
            cause: e.to_string(),
        }),
        (_, Err(e)) => Ok(Chosen {
            backends: onnx.into_iter().collect(),
            reason: format!("backend=auto chose ONNX Runtime: {e}"),
        }),
    }
}
