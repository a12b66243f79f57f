//! Safe handles over the bridge: a bridge loaded for the installed HailoRT,
//! an open device, a loaded model with its stream descriptions, and a checked
//! synchronous run.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use super::bridge_search;
use super::ffi::{self, Api, RawBuffer, RawDevice, RawModel, RawStream};
use super::hailort_library::{self, HailoRtLibrary};
use super::status::{Call, HailoError, Status};

/// Where the bridge's functions come from, for logs and `/health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSource {
    /// The libhailort loaded, and its version.
    pub hailort: HailoRtLibrary,
    /// The bridge library for that version.
    pub bridge: PathBuf,
}

impl std::fmt::Display for BridgeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HailoRT {} ({}) through {}",
            self.hailort.version,
            self.hailort.path.display(),
            self.bridge.display()
        )
    }
}

/// A usable bridge (its library stays loaded as long as this lives).
pub struct Bridge {
    api: Api,
    source: BridgeSource,
    _library: libloading::Library,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("source", &self.source)
            .finish()
    }
}

impl Bridge {
    /// Finds libhailort (`hailort_library` alone when given), loads it, and
    /// then the bridge for its major version from the first folder of
    /// [`bridge_search::bridge_dirs`] that has one (`bridge_dir` alone when
    /// given). Each way this fails is its own [`HailoError`].
    pub fn load(
        hailort_library: Option<&Path>,
        bridge_dir: Option<&Path>,
    ) -> Result<Arc<Bridge>, HailoError> {
        let hailort = hailort_library::load(hailort_library)?;
        let dirs = bridge_search::bridge_dirs(bridge_dir);
        let file = bridge_search::bridge_file_name(hailort.version.major);
        let Some(path) = dirs.iter().map(|d| d.join(&file)).find(|p| p.is_file()) else {
            return Err(HailoError::NoBridge {
                version: hailort.version,
                hailort: hailort.path,
                file,
                dirs,
            });
        };
        Self::open(&path, hailort)
    }

    /// Loads the bridge at `path` for the loaded `hailort` and checks that it
    /// speaks this engine's ABI and was built for that HailoRT's major.
    fn open(path: &Path, hailort: HailoRtLibrary) -> Result<Arc<Bridge>, HailoError> {
        use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
        let failed = |reason: String| HailoError::Library {
            path: path.to_path_buf(),
            reason,
        };
        // RTLD_NOW: a HailoRT symbol the installed libhailort lacks is this
        // error now, not an abort at the first call that needs it.
        // SAFETY: loading runs the library's initialisers; a bridge is trusted
        // code installed with florence (or named by the operator).
        let library: libloading::Library =
            unsafe { Library::open(Some(path.as_os_str()), RTLD_NOW | RTLD_LOCAL) }
                .map_err(|e| failed(ffi::loader_error(&e)))?
                .into();
        let api = ffi::resolve(&library).map_err(failed)?;
        // SAFETY: functions of the bridge's ABI without arguments.
        let (abi, built_for) = unsafe { ((api.abi_version)(), (api.hailort_major)()) };
        if abi != ffi::ABI_VERSION {
            return Err(HailoError::BridgeAbi {
                bridge: path.to_path_buf(),
                found: abi,
                expected: ffi::ABI_VERSION,
            });
        }
        if built_for != hailort.version.major {
            return Err(HailoError::BridgeForOtherHailoRt {
                bridge: path.to_path_buf(),
                built_for,
                version: hailort.version,
            });
        }
        Ok(Arc::new(Bridge {
            api,
            source: BridgeSource {
                hailort,
                bridge: path.to_path_buf(),
            },
            _library: library,
        }))
    }

    pub fn source(&self) -> &BridgeSource {
        &self.source
    }

    /// The raw functions, for tests of the bridge's own contract.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Opens a virtual device of `group_id`.
    pub fn open_device(self: &Arc<Self>, group_id: &str) -> Result<Device, HailoError> {
        let call = || Call::OpenDevice {
            group_id: group_id.to_owned(),
        };
        let group = CString::new(group_id).map_err(|_| HailoError::Contract {
            status: Status::INVALID_ARGUMENT,
            call: call(),
        })?;
        let mut raw: *mut RawDevice = std::ptr::null_mut();
        // SAFETY: a NUL-terminated string and a valid out-pointer.
        let s = unsafe { (self.api.open_device)(group.as_ptr(), &mut raw) };
        check(s, call)?;
        let raw = NonNull::new(raw).ok_or_else(|| HailoError::Contract {
            status: Status::INTERNAL_FAILURE,
            call: call(),
        })?;
        Ok(Device {
            bridge: Arc::clone(self),
            raw,
        })
    }
}

fn check(status: i32, call: impl FnOnce() -> Call) -> Result<(), HailoError> {
    if status == Status::SUCCESS.0 {
        Ok(())
    } else {
        Err(HailoError::from_status(Status(status), call()))
    }
}

/// An open virtual device; released when dropped.
pub struct Device {
    bridge: Arc<Bridge>,
    raw: NonNull<RawDevice>,
}

// SAFETY: the handle is an owned pointer to a HailoRT VDevice, which HailoRT
// allows to be used and released from any thread.
unsafe impl Send for Device {}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: the handle came from open_device and is released once.
        unsafe { (self.bridge.api.release_device)(self.raw.as_ptr()) }
    }
}

/// One input or output of a loaded model, in float32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub name: String,
    /// HailoRT's (height, width, features).
    pub shape: [u32; 3],
    pub frame_bytes: u64,
}

impl StreamInfo {
    /// Number of float32 values in one frame.
    pub fn frame_len(&self) -> usize {
        (self.frame_bytes / 4) as usize
    }
}

impl Device {
    /// Loads a HEF with float32 user formats and the given scheduler priority.
    pub fn load_model(&self, hef: &Path, priority: u8) -> Result<Model, HailoError> {
        let call = || Call::LoadModel {
            hef: hef.to_path_buf(),
        };
        let path = CString::new(hef.as_os_str().as_encoded_bytes()).map_err(|_| {
            HailoError::HefMissing {
                status: Status::OPEN_FILE_FAILURE,
                hef: hef.to_path_buf(),
            }
        })?;
        let api = &self.bridge.api;
        let mut raw: *mut RawModel = std::ptr::null_mut();
        // SAFETY: a live device, a NUL-terminated path and a valid out-pointer.
        let s = unsafe { (api.load_model)(self.raw.as_ptr(), path.as_ptr(), priority, &mut raw) };
        check(s, call)?;
        let raw = NonNull::new(raw).ok_or_else(|| HailoError::Contract {
            status: Status::INTERNAL_FAILURE,
            call: call(),
        })?;
        let mut model = Model {
            bridge: Arc::clone(&self.bridge),
            raw,
            hef: hef.to_path_buf(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        model.inputs = model.streams(false)?;
        model.outputs = model.streams(true)?;
        Ok(model)
    }
}

/// A model loaded on a device; released when dropped (it keeps the device alive).
pub struct Model {
    bridge: Arc<Bridge>,
    raw: NonNull<RawModel>,
    hef: PathBuf,
    inputs: Vec<StreamInfo>,
    outputs: Vec<StreamInfo>,
}

// SAFETY: an owned ConfiguredInferModel handle; `run` takes `&mut self`, so
// calls on one model never overlap, as the bridge requires.
unsafe impl Send for Model {}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the handle came from load_model and is released once.
        unsafe { (self.bridge.api.release_model)(self.raw.as_ptr()) }
    }
}

impl Model {
    pub fn hef(&self) -> &Path {
        &self.hef
    }

    /// The raw handle, for tests of the bridge's own contract through [`Bridge::api`].
    pub fn raw(&self) -> *mut RawModel {
        self.raw.as_ptr()
    }

    pub fn inputs(&self) -> &[StreamInfo] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[StreamInfo] {
        &self.outputs
    }

    fn streams(&self, outputs: bool) -> Result<Vec<StreamInfo>, HailoError> {
        let api = &self.bridge.api;
        let call = || Call::DescribeStreams {
            hef: self.hef.clone(),
        };
        let mut count = 0u32;
        // SAFETY: a live model and a valid out-pointer.
        check(
            unsafe { (api.stream_count)(self.raw.as_ptr(), outputs.into(), &mut count) },
            call,
        )?;
        let mut out = Vec::with_capacity(count as usize);
        for index in 0..count {
            let mut raw = RawStream::default();
            // SAFETY: a live model, an index below the count, a valid out-pointer.
            check(
                unsafe {
                    (api.describe_stream)(self.raw.as_ptr(), outputs.into(), index, &mut raw)
                },
                call,
            )?;
            // The bridge NUL-terminates; a name that fills the field is cut at its end.
            raw.name[ffi::NAME_MAX - 1] = 0;
            // SAFETY: NUL-terminated just above at the latest.
            let name = unsafe { CStr::from_ptr(raw.name.as_ptr()) };
            out.push(StreamInfo {
                name: name.to_string_lossy().into_owned(),
                shape: [raw.height, raw.width, raw.features],
                frame_bytes: raw.frame_bytes,
            });
        }
        Ok(out)
    }

    /// Runs one frame: every input and output by name, each exactly one frame
    /// of float32. A buffer of the wrong length never reaches the device.
    pub fn run(
        &mut self,
        network: &str,
        inputs: &[(&str, &[f32])],
        outputs: &mut [(&str, &mut [f32])],
        timeout: Duration,
    ) -> Result<(), HailoError> {
        let call = || Call::Run {
            network: network.to_owned(),
            timeout,
        };
        let contract = |problem: String| HailoError::Streams {
            hef: self.hef.clone(),
            problem,
        };
        let mut names = Vec::with_capacity(inputs.len() + outputs.len());
        let mut raw_inputs = Vec::with_capacity(inputs.len());
        for (name, data) in inputs {
            let info = self.inputs.iter().find(|s| s.name == *name);
            if let Some(info) = info
                && info.frame_len() != data.len()
            {
                return Err(contract(format!(
                    "input {name} takes {} float32 values, the engine has {}",
                    info.frame_len(),
                    data.len()
                )));
            }
            let c = CString::new(*name).map_err(|_| contract(format!("bad name {name:?}")))?;
            raw_inputs.push(RawBuffer {
                name: c.as_ptr(),
                // The bridge only reads inputs; the C struct has one pointer type.
                data: data.as_ptr().cast_mut().cast(),
                bytes: std::mem::size_of_val(*data) as u64,
            });
            names.push(c);
        }
        let mut raw_outputs = Vec::with_capacity(outputs.len());
        for (name, data) in outputs.iter_mut() {
            let info = self.outputs.iter().find(|s| s.name == *name);
            if let Some(info) = info
                && info.frame_len() != data.len()
            {
                return Err(contract(format!(
                    "output {name} gives {} float32 values, the engine expects {}",
                    info.frame_len(),
                    data.len()
                )));
            }
            let c = CString::new(*name).map_err(|_| contract(format!("bad name {name:?}")))?;
            raw_outputs.push(RawBuffer {
                name: c.as_ptr(),
                data: data.as_mut_ptr().cast(),
                bytes: std::mem::size_of_val(*data) as u64,
            });
            names.push(c);
        }
        let timeout_ms = u32::try_from(timeout.as_millis())
            .unwrap_or(u32::MAX)
            .max(1);
        // SAFETY: a live model; every buffer points at memory of `bytes` bytes that
        // outlives the call (inputs read, outputs written), names NUL-terminated
        // and kept alive in `names`.
        let s = unsafe {
            (self.bridge.api.run)(
                self.raw.as_ptr(),
                raw_inputs.as_ptr(),
                raw_inputs.len() as u32,
                raw_outputs.as_ptr(),
                raw_outputs.len() as u32,
                timeout_ms,
            )
        };
        drop(names);
        check(s, call)
    }
}
