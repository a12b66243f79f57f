//! GStreamer's analytics relation meta (`GstAnalyticsRelationMeta`, GStreamer
//! 1.24 and newer), reached at run time.
//!
//! The plugin is built and must load on GStreamer 1.22 (Debian 12), which has
//! no `libgstanalytics-1.0`: linking it (the gstreamer-analytics crate) would
//! make the plugin fail to load there. So the few functions used are looked up
//! in `libgstanalytics-1.0.so.0` when the running GStreamer is 1.24 or newer,
//! with the C signatures of gstreamer-analytics-sys. Object-detection entries
//! (`od` mtds) are what `objectdetectionoverlay` and other analytics
//! consumers read; the reading half serves tests and Rust applications.

use std::ffi::{c_float, c_int, c_uint, c_void};
use std::sync::OnceLock;

use gst::glib;
use gst::glib::translate::{FromGlib, IntoGlib};

/// The library's soname (gst-plugins-bad's libgstanalytics).
pub const LIBRARY: &str = "libgstanalytics-1.0.so.0";
/// The first GStreamer release with the analytics relation meta.
pub const SINCE: (u32, u32) = (1, 24);

/// `GstAnalyticsMtd` / `GstAnalyticsODMtd`: a handle on one entry of a meta.
#[repr(C)]
#[derive(Clone, Copy)]
struct Mtd {
    id: c_uint,
    meta: *mut c_void,
}

impl Mtd {
    const EMPTY: Mtd = Mtd {
        id: 0,
        meta: std::ptr::null_mut(),
    };
}

type AddMeta = unsafe extern "C" fn(*mut gst::ffi::GstBuffer) -> *mut c_void;
type AddOd = unsafe extern "C" fn(
    *mut c_void,
    glib::ffi::GQuark,
    c_int,
    c_int,
    c_int,
    c_int,
    c_float,
    *mut Mtd,
) -> glib::ffi::gboolean;
type Iterate =
    unsafe extern "C" fn(*mut c_void, *mut *mut c_void, usize, *mut Mtd) -> glib::ffi::gboolean;
type OdType = unsafe extern "C" fn() -> usize;
type OdLocation = unsafe extern "C" fn(
    *const Mtd,
    *mut c_int,
    *mut c_int,
    *mut c_int,
    *mut c_int,
    *mut c_float,
) -> glib::ffi::gboolean;
type OdObjType = unsafe extern "C" fn(*const Mtd) -> glib::ffi::GQuark;

/// One object-detection entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The object's type (its quark's string).
    pub label: String,
    /// x, y, w, h in the buffer's pixels.
    pub rect: (i32, i32, i32, i32),
    pub confidence: f32,
}

/// The functions of the analytics library this crate uses.
pub struct Analytics {
    add_meta: AddMeta,
    get_meta: AddMeta,
    add_od: AddOd,
    iterate: Iterate,
    od_type: OdType,
    od_location: OdLocation,
    od_obj_type: OdObjType,
    /// Keeps the functions above mapped.
    _library: libloading::Library,
}

/// The analytics library, or why it cannot be used here (looked up once per
/// process; GStreamer must be initialised).
pub fn analytics() -> Result<&'static Analytics, &'static str> {
    static LOADED: OnceLock<Result<Analytics, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let (major, minor, micro, _) = gst::version();
            if (major, minor) < SINCE {
                return Err(format!(
                    "GStreamer {major}.{minor}.{micro} is older than {}.{}, which brought the analytics relation meta",
                    SINCE.0, SINCE.1
                ));
            }
            Analytics::open().map_err(|e| format!("cannot use {LIBRARY}: {e}"))
        })
        .as_ref()
        .map_err(String::as_str)
}

impl Analytics {
    fn open() -> Result<Analytics, libloading::Error> {
        // SAFETY: the library is GStreamer's own, an initialiser-free C
        // library; each symbol gets the signature gstreamer-analytics-sys
        // declares for it.
        unsafe {
            let library = libloading::Library::new(LIBRARY)?;
            Ok(Analytics {
                add_meta: *library.get(b"gst_buffer_add_analytics_relation_meta\0")?,
                get_meta: *library.get(b"gst_buffer_get_analytics_relation_meta\0")?,
                add_od: *library.get(b"gst_analytics_relation_meta_add_od_mtd\0")?,
                iterate: *library.get(b"gst_analytics_relation_meta_iterate\0")?,
                od_type: *library.get(b"gst_analytics_od_mtd_get_mtd_type\0")?,
                od_location: *library.get(b"gst_analytics_od_mtd_get_location\0")?,
                od_obj_type: *library.get(b"gst_analytics_od_mtd_get_obj_type\0")?,
                _library: library,
            })
        }
    }

    /// Adds `detections` to the buffer's relation meta (made if it has none);
    /// false when the library refused one.
    pub fn add_detections(&self, buf: &mut gst::BufferRef, detections: &[Detection]) -> bool {
        if detections.is_empty() {
            return true;
        }
        // SAFETY: `buf` is writable (a &mut BufferRef); the meta pointer
        // comes from the library for this buffer and lives as long as it.
        unsafe {
            let ptr = buf.as_mut_ptr();
            let mut meta = (self.get_meta)(ptr);
            if meta.is_null() {
                meta = (self.add_meta)(ptr);
            }
            if meta.is_null() {
                return false;
            }
            detections.iter().all(|d| {
                let mut mtd = Mtd::EMPTY;
                let (x, y, w, h) = d.rect;
                (self.add_od)(
                    meta,
                    glib::Quark::from_str(&d.label).into_glib(),
                    x,
                    y,
                    w,
                    h,
                    d.confidence,
                    &mut mtd,
                ) != glib::ffi::GFALSE
            })
        }
    }

    /// The buffer's object-detection entries, in the order they were added.
    pub fn detections(&self, buf: &gst::BufferRef) -> Vec<Detection> {
        let mut out = Vec::new();
        // SAFETY: the getter and the iteration only read the buffer's meta;
        // each handle is filled by the library before it is read.
        unsafe {
            let meta = (self.get_meta)(buf.as_ptr() as *mut gst::ffi::GstBuffer);
            if meta.is_null() {
                return out;
            }
            let od_type = (self.od_type)();
            let mut state: *mut c_void = std::ptr::null_mut();
            let mut mtd = Mtd::EMPTY;
            while (self.iterate)(meta, &mut state, od_type, &mut mtd) != glib::ffi::GFALSE {
                let (mut x, mut y, mut w, mut h, mut confidence) = (0, 0, 0, 0, 0.0);
                if (self.od_location)(&mtd, &mut x, &mut y, &mut w, &mut h, &mut confidence)
                    == glib::ffi::GFALSE
                {
                    continue;
                }
                let quark = (self.od_obj_type)(&mtd);
                let label = if quark == 0 {
                    String::new()
                } else {
                    glib::Quark::from_glib(quark).as_str().to_string()
                };
                out.push(Detection {
                    label,
                    rect: (x, y, w, h),
                    confidence,
                });
            }
        }
        out
    }
}
