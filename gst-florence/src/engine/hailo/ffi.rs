//! The bridge's C ABI (`gst-florence/hailo/florence_hailo_bridge.h`) as Rust
//! declarations, and the two ways of getting an implementation: the C++
//! bridge linked in with the cargo feature `hailo`, or a shared library with
//! the same symbols (the CI stand-in, or a bridge built on its own).
//!
//! Deliberately not `hailort-sys`: it declares functions that no HailoRT has
//! and lacks InferModel, the only API that runs models on a Hailo-10H.

use std::ffi::{c_char, c_void};
use std::path::Path;

/// `FLORENCE_HAILO_BRIDGE_ABI_VERSION` this engine speaks.
pub const ABI_VERSION: u32 = 1;

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
    pub library_version: unsafe extern "C" fn(*mut u32, *mut u32, *mut u32) -> i32,
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

#[cfg(feature = "hailo")]
mod linked {
    use super::*;

    // Compiled from florence_hailo_bridge.cpp by build.rs and linked with libhailort.
    unsafe extern "C" {
        fn florence_hailo_abi_version() -> u32;
        fn florence_hailo_library_version(major: *mut u32, minor: *mut u32, rev: *mut u32) -> i32;
        fn florence_hailo_open_device(group_id: *const c_char, device: *mut *mut RawDevice) -> i32;
        fn florence_hailo_load_model(
            device: *mut RawDevice,
            hef_path: *const c_char,
            priority: u8,
            model: *mut *mut RawModel,
        ) -> i32;
        fn florence_hailo_stream_count(
            model: *const RawModel,
            is_output: u32,
            count: *mut u32,
        ) -> i32;
        fn florence_hailo_describe_stream(
            model: *const RawModel,
            is_output: u32,
            index: u32,
            info: *mut RawStream,
        ) -> i32;
        fn florence_hailo_run(
            model: *mut RawModel,
            inputs: *const RawBuffer,
            input_count: u32,
            outputs: *const RawBuffer,
            output_count: u32,
            timeout_ms: u32,
        ) -> i32;
        fn florence_hailo_release_model(model: *mut RawModel);
        fn florence_hailo_release_device(device: *mut RawDevice);
    }

    pub const API: Api = Api {
        abi_version: florence_hailo_abi_version,
        library_version: florence_hailo_library_version,
        open_device: florence_hailo_open_device,
        load_model: florence_hailo_load_model,
        stream_count: florence_hailo_stream_count,
        describe_stream: florence_hailo_describe_stream,
        run: florence_hailo_run,
        release_model: florence_hailo_release_model,
        release_device: florence_hailo_release_device,
    };
}

/// The C++ bridge built into this binary (cargo feature `hailo`).
pub fn linked() -> Option<Api> {
    #[cfg(feature = "hailo")]
    {
        Some(linked::API)
    }
    #[cfg(not(feature = "hailo"))]
    {
        None
    }
}

/// Resolves the bridge's symbols in a shared library. The library must stay
/// loaded while the returned functions are used.
pub fn from_library(path: &Path) -> Result<(libloading::Library, Api), String> {
    // SAFETY: loading runs the library's initialisers; a bridge library is
    // trusted code named explicitly by the operator.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    macro_rules! sym {
        ($name:literal) => {
            // SAFETY: the symbol's type is the header's declaration of it.
            *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                .map_err(|e| format!("missing {}: {e}", $name))?
        };
    }
    let api = Api {
        abi_version: sym!("florence_hailo_abi_version"),
        library_version: sym!("florence_hailo_library_version"),
        open_device: sym!("florence_hailo_open_device"),
        load_model: sym!("florence_hailo_load_model"),
        stream_count: sym!("florence_hailo_stream_count"),
        describe_stream: sym!("florence_hailo_describe_stream"),
        run: sym!("florence_hailo_run"),
        release_model: sym!("florence_hailo_release_model"),
        release_device: sym!("florence_hailo_release_device"),
    };
    Ok((lib, api))
}
