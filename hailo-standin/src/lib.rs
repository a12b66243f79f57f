//! A stand-in for a Hailo device behind the bridge's C ABI
//! (`gst-florence/hailo/florence_hailo_bridge.h`), and for libhailort itself
//! (its `hailo_get_library_version`, see [`hailort`]): the engine loads it
//! through its run-time loader as the HailoRT library
//! (`FLORENCE_HAILORT_LIBRARY`) and as the bridge for that HailoRT's major
//! (a link named `libflorence_hailo_hailort5.so` to it in
//! `FLORENCE_HAILO_BRIDGE_DIR`), so CI runs the engine's whole Hailo side
//! (loader, FFI, handles, buffer checks, status mapping, reopening, the
//! split's loop) without a chip.
//!
//! It runs the exporter's ONNX stand-ins of the two HEFs on ONNX Runtime (the
//! library the host process already loaded) and enforces HailoRT's contract
//! as the C++ bridge does: stream names, exact float32 frame sizes,
//! HAILO_INVALID_ARGUMENT (2) for a wrong size or an unbound stream,
//! HAILO_NOT_FOUND (61) for an unknown name, HAILO_OPEN_FILE_FAILURE (13) for
//! a missing HEF, HAILO_INVALID_HEF (26) for a file that is not one,
//! HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE (93) for a HEF of another chip; and
//! it answers with injected faults (see [`faults`]).

use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub mod faults;
pub mod hailort;
pub mod hef;
mod onnx;
pub mod trace;

use faults::Faults;
use hef::{HefError, StandInHef, StreamSpec};

const SUCCESS: i32 = 0;
const INVALID_ARGUMENT: i32 = 2;
const TIMEOUT: i32 = 4;
const INTERNAL_FAILURE: i32 = 8;
const OPEN_FILE_FAILURE: i32 = 13;
const INVALID_HEF: i32 = 26;
const NOT_FOUND: i32 = 61;
const OUT_OF_PHYSICAL_DEVICES: i32 = 74;
const HEF_NOT_COMPATIBLE_WITH_DEVICE: i32 = 93;
/// HAILO_SCHEDULER_PRIORITY_MAX.
const SCHEDULER_PRIORITY_MAX: u8 = 31;
/// HailoRT's default virtual-device group: the device is not shared.
const DEFAULT_GROUP: &str = "UNIQUE";

const ABI_VERSION: u32 = 2;
const NAME_MAX: usize = 128;

/// Successful runs since the faults file last changed (for `run=<status>@<n>`).
static RUNS: AtomicU64 = AtomicU64::new(0);

pub struct Device {
    chip: String,
}

pub struct Model {
    session: onnx::Graph,
    inputs: Vec<StreamSpec>,
    outputs: Vec<StreamSpec>,
}

#[repr(C)]
pub struct Stream {
    name: [c_char; NAME_MAX],
    height: u32,
    width: u32,
    features: u32,
    frame_bytes: u64,
}

#[repr(C)]
pub struct Buffer {
    name: *const c_char,
    data: *mut c_void,
    bytes: u64,
}

/// Runs `body`, turning a panic into HAILO_INTERNAL_FAILURE: nothing unwinds into C.
fn guarded(body: impl FnOnce() -> i32) -> i32 {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(INTERNAL_FAILURE)
}

/// The bridge ABI's version (`abi=<n>` in the faults file: another one).
#[unsafe(no_mangle)]
pub extern "C" fn florence_hailo_abi_version() -> u32 {
    Faults::current().abi.unwrap_or(ABI_VERSION)
}

/// The HailoRT major the "bridge" was built for: the major of the version the
/// stand-in libhailort reports, unless `bridge_for=<major>` says otherwise.
#[unsafe(no_mangle)]
pub extern "C" fn florence_hailo_hailort_major() -> u32 {
    let faults = Faults::current();
    faults
        .bridge_for
        .unwrap_or_else(|| hailort::version(&faults).major)
}

/// # Safety
/// `group_id` is NUL-terminated or null; `device` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn florence_hailo_open_device(
    group_id: *const c_char,
    device: *mut *mut Device,
) -> i32 {
    guarded(|| {
        if device.is_null() {
            return INVALID_ARGUMENT;
        }
        // SAFETY: valid for a write per the contract.
        unsafe { *device = std::ptr::null_mut() };
        let group = if group_id.is_null() {
            DEFAULT_GROUP.to_owned()
        } else {
            // SAFETY: NUL-terminated per the contract.
            let group = unsafe { CStr::from_ptr(group_id) };
            if group.to_bytes().is_empty() {
                return INVALID_ARGUMENT;
            }
            group.to_string_lossy().into_owned()
        };
        trace::record(&format!("open group={group}"));
        let faults = Faults::current();
        if let Some(status) = faults.open {
            return status;
        }
        if let Some(holder) = &faults.held_by
            && (*holder != group || group == DEFAULT_GROUP)
        {
            return OUT_OF_PHYSICAL_DEVICES;
        }
        let chip = faults.chip.unwrap_or_else(|| "hailo10h".to_owned());
        // SAFETY: as above.
        unsafe { *device = Box::into_raw(Box::new(Device { chip })) };
        SUCCESS
    })
}

/// # Safety
/// `device` came from open_device and is live; `hef_path` is NUL-terminated;
/// `model` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn florence_hailo_load_model(
    device: *mut Device,
    hef_path: *const c_char,
    scheduler_priority: u8,
    model: *mut *mut Model,
) -> i32 {
    guarded(|| {
        if device.is_null() || hef_path.is_null() || model.is_null() {
            return INVALID_ARGUMENT;
        }
        // SAFETY: valid per the contract.
        let (device, path) = unsafe { (&*device, CStr::from_ptr(hef_path)) };
        unsafe { *model = std::ptr::null_mut() };
        let path = Path::new(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path.to_bytes()),
        );
        trace::record(&format!(
            "load {} priority={scheduler_priority}",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        if scheduler_priority > SCHEDULER_PRIORITY_MAX {
            return INVALID_ARGUMENT;
        }
        let (hef, onnx_path) = match StandInHef::read(path) {
            Ok(h) => h,
            Err(HefError::Open) => return OPEN_FILE_FAILURE,
            Err(HefError::Invalid) => return INVALID_HEF,
        };
        if hef.chip != device.chip {
            return HEF_NOT_COMPATIBLE_WITH_DEVICE;
        }
        if let Some(status) = Faults::current().load {
            return status;
        }
        let session = match onnx::Graph::open(&onnx_path) {
            Ok(s) => s,
            Err(_) => return INVALID_HEF,
        };
        let m = Model {
            session,
            inputs: hef.inputs,
            outputs: hef.outputs,
        };
        // SAFETY: valid for a write per the contract.
        unsafe { *model = Box::into_raw(Box::new(m)) };
        SUCCESS
    })
}

/// # Safety
/// `model` came from load_model and is live; `count` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn florence_hailo_stream_count(
    model: *const Model,
    is_output: u32,
    count: *mut u32,
) -> i32 {
    if model.is_null() || count.is_null() {
        return INVALID_ARGUMENT;
    }
    // SAFETY: valid per the contract.
    let model = unsafe { &*model };
    let n = if is_output != 0 {
        model.outputs.len()
    } else {
        model.inputs.len()
    };
    // SAFETY: valid for a write per the contract.
    unsafe { *count = n as u32 };
    SUCCESS
}

/// # Safety
/// `model` came from load_model and is live; `info` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn florence_hailo_describe_stream(
    model: *const Model,
    is_output: u32,
    index: u32,
    info: *mut Stream,
) -> i32 {
    if model.is_null() || info.is_null() {
        return INVALID_ARGUMENT;
    }
    // SAFETY: valid per the contract.
    let model = unsafe { &*model };
    let streams = if is_output != 0 {
        &model.outputs
    } else {
        &model.inputs
    };
    let Some(s) = streams.get(index as usize) else {
        return NOT_FOUND;
    };
    let mut name = [0 as c_char; NAME_MAX];
    for (d, b) in name.iter_mut().zip(s.name.bytes().take(NAME_MAX - 1)) {
        *d = b as c_char;
    }
    // SAFETY: valid for a write per the contract.
    unsafe {
        *info = Stream {
            name,
            height: s.shape[0],
            width: s.shape[1],
            features: s.shape[2],
            frame_bytes: s.frame_bytes(),
        }
    };
    SUCCESS
}

/// Matches buffers to streams as the C++ bridge does: each stream bound once,
/// by a known name, with exactly its frame size.
fn bind<'a>(streams: &'a [StreamSpec], buffers: &[Buffer]) -> Result<Vec<&'a StreamSpec>, i32> {
    if buffers.len() != streams.len() {
        return Err(INVALID_ARGUMENT);
    }
    let mut bound: Vec<&StreamSpec> = Vec::with_capacity(buffers.len());
    for b in buffers {
        if b.name.is_null() || b.data.is_null() {
            return Err(INVALID_ARGUMENT);
        }
        // SAFETY: NUL-terminated per the contract.
        let name = unsafe { CStr::from_ptr(b.name) }.to_bytes();
        let Some(s) = streams.iter().find(|s| s.name.as_bytes() == name) else {
            return Err(NOT_FOUND);
        };
        if b.bytes != s.frame_bytes() || bound.iter().any(|o| o.name == s.name) {
            return Err(INVALID_ARGUMENT);
        }
        bound.push(s);
    }
    Ok(bound)
}

/// # Safety
/// `model` came from load_model and is live and not used concurrently; the
/// buffer arrays hold `*_count` entries whose data pointers are valid for
/// `bytes` bytes (reads for inputs, writes for outputs).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn florence_hailo_run(
    model: *mut Model,
    inputs: *const Buffer,
    input_count: u32,
    outputs: *const Buffer,
    output_count: u32,
    timeout_ms: u32,
) -> i32 {
    guarded(|| {
        if model.is_null()
            || (input_count > 0 && inputs.is_null())
            || (output_count > 0 && outputs.is_null())
        {
            return INVALID_ARGUMENT;
        }
        // SAFETY: valid per the contract.
        let (model, inputs, outputs) = unsafe {
            (
                &mut *model,
                slice(inputs, input_count),
                slice(outputs, output_count),
            )
        };
        let bound_in = match bind(&model.inputs, inputs) {
            Ok(b) => b,
            Err(s) => return s,
        };
        let bound_out = match bind(&model.outputs, outputs) {
            Ok(b) => b,
            Err(s) => return s,
        };
        trace::record(&format!("run timeout_ms={timeout_ms}"));
        let faults = Faults::current_counting(&RUNS);
        if let Some((status, after)) = faults.run
            && RUNS.load(Ordering::SeqCst) >= after
        {
            return status;
        }
        if let Some(run_ms) = faults.run_ms {
            // A device slower than the timeout: HailoRT waits the timeout, then gives up.
            let waited = run_ms.min(timeout_ms);
            std::thread::sleep(std::time::Duration::from_millis(u64::from(waited)));
            if run_ms > timeout_ms {
                return TIMEOUT;
            }
        }
        let feeds: Vec<(&StreamSpec, &[f32])> = bound_in
            .iter()
            .zip(inputs)
            .map(|(s, b)| {
                // SAFETY: `bytes` (checked to be the frame size) readable bytes,
                // float32 data from the engine.
                let data = unsafe {
                    std::slice::from_raw_parts(b.data.cast::<f32>(), (b.bytes / 4) as usize)
                };
                (*s, data)
            })
            .collect();
        let results = match model.session.run(&feeds, &bound_out) {
            Ok(r) => r,
            Err(_) => return INTERNAL_FAILURE,
        };
        for (values, b) in results.iter().zip(outputs) {
            if values.len() as u64 * 4 != b.bytes {
                return INTERNAL_FAILURE;
            }
            // SAFETY: `bytes` writable bytes per the contract, checked above.
            unsafe {
                std::ptr::copy_nonoverlapping(values.as_ptr(), b.data.cast::<f32>(), values.len())
            };
        }
        RUNS.fetch_add(1, Ordering::SeqCst);
        SUCCESS
    })
}

/// # Safety
/// `ptr` points at `count` entries, or `count` is 0.
unsafe fn slice<'a>(ptr: *const Buffer, count: u32) -> &'a [Buffer] {
    if count == 0 {
        &[]
    } else {
        // SAFETY: per the function's contract.
        unsafe { std::slice::from_raw_parts(ptr, count as usize) }
    }
}

/// # Safety
/// `model` came from load_model and is released once, or is null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn florence_hailo_release_model(model: *mut Model) {
    if !model.is_null() {
        // SAFETY: created by Box::into_raw in load_model.
        drop(unsafe { Box::from_raw(model) });
    }
}

/// # Safety
/// `device` came from open_device and is released once, or is null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn florence_hailo_release_device(device: *mut Device) {
    if !device.is_null() {
        // SAFETY: created by Box::into_raw in open_device.
        drop(unsafe { Box::from_raw(device) });
    }
}
