//! The bridge's C ABI (`gst-florence/hailo/florence_hailo_bridge.h`) as Rust
//! declarations, resolved in a bridge library (a C++ bridge built by
//! scripts/build-hailo-bridges.sh, or the CI stand-in).
//!
//! Deliberately not `hailort-sys`: it declares functions that no HailoRT has
//! and lacks InferModel, the only API that runs models on a Hailo-10H.

use std::ffi::{c_char, c_void};
use std::fmt;

/// HailoRT's `hailo_version_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HailoRtVersion {
    pub major: u32,
    pub minor: u32,
    pub revision: u32,
}

impl fmt::Display for HailoRtVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.revision)
    }
}

/// `FLORENCE_HAILO_BRIDGE_ABI_VERSION` this engine speaks.
pub const ABI_VERSION: u32 = 2;

/// `FLORENCE_HAILO_NAME_MAX`.
pub const NAME_MAX: usize = 128;

/// `florence_hailo_device` (opaque).
#[repr(C)]
pub struct RawDevice {
    _private: [u8; 0],
}

/// `florence_hailo_model` (opaque).
#[repr(C)]
pub struct RawModel {
    _private: [u8; 0],
}

/// `florence_hailo_stream`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RawStream {
    pub name: [c_char; NAME_MAX],
    pub height: u32,
    pub width: u32,
    pub features: u32,
    pub frame_bytes: u64,
}

impl Default for RawStream {
    fn default() -> Self {
        RawStream {
            name: [0; NAME_MAX],
            height: 0,
            width: 0,
            features: 0,
            frame_bytes: 0,
        }
    }
}

/// `florence_hailo_buffer`.
#[repr(C)]
pub struct RawBuffer {
    pub name: *const c_char,
    pub data: *mut c_void,
    pub bytes: u64,
}

/// The bridge's functions, from wherever they came.
#[derive(Clone, Copy)]
pub struct Api {
    pub abi_version: unsafe extern "C" fn() -> u32,
    pub hailort_major: unsafe extern "C" fn() -> u32,
    pub open_device: unsafe extern "C" fn(*const c_char, *mut *mut RawDevice) -> i32,
    pub load_model:
        unsafe extern "C" fn(*mut RawDevice, *const c_char, u8, *mut *mut RawModel) -> i32,
    pub stream_count: unsafe extern "C" fn(*const RawModel, u32, *mut u32) -> i32,
    pub describe_stream: unsafe extern "C" fn(*const RawModel, u32, u32, *mut RawStream) -> i32,
    pub run: unsafe extern "C" fn(
        *mut RawModel,
        *const RawBuffer,
        u32,
        *const RawBuffer,
        u32,
        u32,
    ) -> i32,
    pub release_model: unsafe extern "C" fn(*mut RawModel),
    pub release_device: unsafe extern "C" fn(*mut RawDevice),
}

/// A loader error with the dynamic loader's own message (libloading keeps it
/// as the error's source: "dlopen failed" alone does not say what failed).
pub fn loader_error(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Resolves the bridge's symbols in a loaded library; the library must stay
/// loaded while the returned functions are used.
pub fn resolve(lib: &libloading::Library) -> Result<Api, String> {
    macro_rules! sym {
        ($name:literal) => {
            // SAFETY: the symbol's type is the header's declaration of it.
            *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                .map_err(|e| format!("missing {}: {}", $name, loader_error(&e)))?
        };
    }
    Ok(Api {
        abi_version: sym!("florence_hailo_abi_version"),
        hailort_major: sym!("florence_hailo_hailort_major"),
        open_device: sym!("florence_hailo_open_device"),
        load_model: sym!("florence_hailo_load_model"),
        stream_count: sym!("florence_hailo_stream_count"),
        describe_stream: sym!("florence_hailo_describe_stream"),
        run: sym!("florence_hailo_run"),
        release_model: sym!("florence_hailo_release_model"),
        release_device: sym!("florence_hailo_release_device"),
    })
}
