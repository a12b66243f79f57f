//! ONNX Runtime execution providers: the one a caller asks the ONNX backend
//! for, which ones the loaded library offers, and registering it on a
//! session. CPU is the default and needs nothing; any other must be in the
//! loaded library (the pinned CPU wheel has CPU alone), else the load fails
//! naming what the library offers. Not a separate code path: the same
//! sessions, with one more provider in front of the CPU.

use std::ffi::{CStr, CString};
use std::fmt;
use std::str::FromStr;

use ort::AsPointer;

/// Short names users type, and ONNX Runtime's names for them.
const NAMES: [(&str, &str); 19] = [
    ("cpu", "CPUExecutionProvider"),
    ("cuda", "CUDAExecutionProvider"),
    ("tensorrt", "TensorrtExecutionProvider"),
    ("rocm", "ROCMExecutionProvider"),
    ("migraphx", "MIGraphXExecutionProvider"),
    ("openvino", "OpenVINOExecutionProvider"),
    ("dnnl", "DnnlExecutionProvider"),
    ("xnnpack", "XnnpackExecutionProvider"),
    ("coreml", "CoreMLExecutionProvider"),
    ("qnn", "QNNExecutionProvider"),
    ("acl", "ACLExecutionProvider"),
    ("armnn", "ArmNNExecutionProvider"),
    ("nnapi", "NnapiExecutionProvider"),
    ("webgpu", "WebGpuExecutionProvider"),
    ("vitisai", "VitisAIExecutionProvider"),
    ("azure", "AzureExecutionProvider"),
    ("rknpu", "RknpuExecutionProvider"),
    ("cann", "CANNExecutionProvider"),
    ("directml", "DmlExecutionProvider"),
];

/// An execution provider, by ONNX Runtime's name (`CPUExecutionProvider`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExecutionProvider(String);

impl Default for ExecutionProvider {
    fn default() -> Self {
        ExecutionProvider::cpu()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown execution provider {0:?}; expected one of {list} or ONNX Runtime's own name (…ExecutionProvider)",
    list = ExecutionProvider::short_names().join(", ")
)]
pub struct UnknownProvider(pub String);

impl ExecutionProvider {
    pub fn cpu() -> Self {
        ExecutionProvider(NAMES[0].1.to_owned())
    }

    /// ONNX Runtime's name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The short names users type (`cpu`, `cuda`, ...), for help texts.
    pub fn short_names() -> Vec<&'static str> {
        NAMES.iter().map(|(s, _)| *s).collect()
    }

    pub fn is_cpu(&self) -> bool {
        self.0 == NAMES[0].1
    }
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = NAMES.iter().find(|(_, long)| *long == self.0);
        f.write_str(short.map_or(self.0.as_str(), |(s, _)| s))
    }
}

impl FromStr for ExecutionProvider {
    type Err = UnknownProvider;

    /// A short name (`cuda`, any case) or ONNX Runtime's name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        if let Some((_, long)) = NAMES
            .iter()
            .find(|(short, long)| *short == lower || long.eq_ignore_ascii_case(s))
        {
            return Ok(ExecutionProvider((*long).to_owned()));
        }
        if s.ends_with("ExecutionProvider") && s.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(ExecutionProvider(s.to_owned()));
        }
        Err(UnknownProvider(s.to_owned()))
    }
}

/// The execution providers the loaded library offers, by ONNX Runtime's
/// names (the runtime must be initialised: [`super::runtime::runtime`]).
pub fn available() -> Result<Vec<String>, String> {
    let api = ort::api();
    let mut names: *mut *mut std::ffi::c_char = std::ptr::null_mut();
    let mut count: std::ffi::c_int = 0;
    // SAFETY: both out-pointers are valid for a write.
    check(api, unsafe {
        (api.GetAvailableProviders)(&mut names, &mut count)
    })?;
    if names.is_null() {
        return Ok(Vec::new());
    }
    let out = (0..count.max(0) as usize)
        // SAFETY: ONNX Runtime returned `count` NUL-terminated strings at `names`.
        .map(|i| {
            unsafe { CStr::from_ptr(*names.add(i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // SAFETY: released once, with the count it came with.
    check(api, unsafe {
        (api.ReleaseAvailableProviders)(names, count)
    })?;
    Ok(out)
}

/// Appends `provider` (not the CPU, which every session has) to a session
/// builder, with ONNX Runtime's defaults for its settings.
pub(crate) fn register(
    builder: &mut ort::session::builder::SessionBuilder,
    provider: &ExecutionProvider,
) -> Result<(), String> {
    let api = ort::api();
    let name = CString::new(provider.name()).map_err(|e| e.to_string())?;
    // SAFETY: the builder's options are live; no keys or values.
    let status = unsafe {
        (api.SessionOptionsAppendExecutionProvider)(
            builder.ptr_mut(),
            name.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            0,
        )
    };
    check(api, status)
}

/// `Ok` for a null status, else its message (the status is released).
fn check(api: &ort::sys::OrtApi, status: ort::sys::OrtStatusPtr) -> Result<(), String> {
    if status.0.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null status from an API call, read then released once.
    unsafe {
        let message = CStr::from_ptr((api.GetErrorMessage)(status.0))
            .to_string_lossy()
            .into_owned();
        (api.ReleaseStatus)(status.0);
        Err(message)
    }
}
