//! The stand-in's libhailort: HailoRT's C function `hailo_get_library_version`,
//! the one HailoRT symbol the engine itself calls (to pick the bridge). The
//! stand-in bridge needs nothing else from it; the C++ bridges' HailoRT
//! symbols are not stood in for (they run only against a real libhailort).

use crate::faults::Faults;

/// HailoRT's `hailo_version_t`.
#[repr(C)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub revision: u32,
}

/// The version reported when the faults file names none.
pub const DEFAULT_VERSION: (u32, u32, u32) = (5, 2, 0);

/// The version this stand-in reports (`hailort=` in the faults file).
pub fn version(faults: &Faults) -> Version {
    let (major, minor, revision) = faults.hailort.unwrap_or(DEFAULT_VERSION);
    Version {
        major,
        minor,
        revision,
    }
}

/// # Safety
/// `version` is valid for a write or null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hailo_get_library_version(version: *mut Version) -> i32 {
    if version.is_null() {
        return crate::INVALID_ARGUMENT;
    }
    // SAFETY: checked non-null; valid for a write per the contract.
    unsafe { *version = self::version(&Faults::current()) };
    crate::SUCCESS
}
