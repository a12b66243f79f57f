//! `FlorenceCaptionMeta` through transforming elements.
//!
//! The meta is registered with the tags `video` and `size`, so video filters
//! handle it as a size-dependent video meta: a scaler (`videoscale`,
//! `videoconvertscale`, `videoconvert`, which shares its code in GStreamer
//! 1.22) calls the transform below, which scales `image-width`,
//! `image-height` and every coordinate of the result (its boxes, quad boxes
//! and polygons, read as the protocol's typed result) to the output size; plain copies keep
//! it as it is. What other elements do is theirs to decide (GStreamer 1.22):
//! `videocrop` drops it; `videoflip` copies it unchanged, so its coordinates
//! stay those of the analysed, unrotated frame (`image-width`/`image-height`
//! say which); elements that pass buffers on (`queue`, `tee`, `videorate`,
//! `textoverlay`) keep it. The `florence-caption` bus message always has the
//! analysed frame's coordinates.
//!
//! A scale also gives the region metas back the params GStreamer's own
//! transform drops (`regions::restore_params`).
//!
//! gstreamer-rs' `CustomMeta::register_with_transform` does not pass the
//! transform's data (the in and out video info of a scale), hence the FFI.

use gst::glib;
use gst::glib::translate::{FromGlib, IntoGlib, ToGlibPtr};

use super::META_NAME;
use super::regions::restore_params;
use crate::protocol::{ResultField, task_result};

/// Registers the result meta (once per process).
pub(super) fn register() {
    if gst::meta::CustomMeta::is_registered(META_NAME) {
        return;
    }
    let tags: [&str; 2] = ["video", "size"];
    // SAFETY: the name and tags are copied by GStreamer; the transform is a
    // plain function without user data.
    unsafe {
        gst::ffi::gst_meta_register_custom(
            META_NAME.to_glib_none().0,
            tags[..].to_glib_none().0,
            Some(transform),
            std::ptr::null_mut(),
            None,
        );
    }
}

/// The meta's transform function: a copy, or a scale to the output size.
unsafe extern "C" fn transform(
    dest: *mut gst::ffi::GstBuffer,
    meta: *mut gst::ffi::GstCustomMeta,
    src: *mut gst::ffi::GstBuffer,
    type_: glib::ffi::GQuark,
    data: glib::ffi::gpointer,
    _user_data: glib::ffi::gpointer,
) -> glib::ffi::gboolean {
    // SAFETY: GStreamer calls this with a valid meta of this API, a writable
    // destination buffer and, for a scale, a GstVideoMetaTransform as data.
    let (mut fields, dest) = unsafe {
        let s = gst::ffi::gst_custom_meta_get_structure(meta);
        if s.is_null() {
            return glib::ffi::GFALSE;
        }
        (
            gst::StructureRef::from_glib_borrow(s).to_owned(),
            gst::BufferRef::from_mut_ptr(dest),
        )
    };
    let kind = unsafe { glib::Quark::from_glib(type_) };
    if kind
        == unsafe {
            glib::Quark::from_glib(gst_video::ffi::gst_video_meta_transform_scale_get_quark())
        }
    {
        if data.is_null() {
            return glib::ffi::GFALSE;
        }
        // SAFETY: a scale's data is a GstVideoMetaTransform with valid infos.
        let (in_w, in_h, out_w, out_h) = unsafe {
            let t = &*(data as *const gst_video::ffi::GstVideoMetaTransform);
            (
                (*t.in_info).width,
                (*t.in_info).height,
                (*t.out_info).width,
                (*t.out_info).height,
            )
        };
        if in_w <= 0 || in_h <= 0 || out_w <= 0 || out_h <= 0 {
            return glib::ffi::GFALSE;
        }
        scale(
            &mut fields,
            f64::from(out_w) / f64::from(in_w),
            f64::from(out_h) / f64::from(in_h),
        );
        // SAFETY: the source buffer is valid for the transform's duration.
        restore_params(dest, unsafe { gst::BufferRef::from_ptr(src) });
    } else if kind != glib::Quark::from_str("gst-copy") {
        return glib::ffi::GFALSE;
    }
    match gst::meta::CustomMeta::add(dest, META_NAME) {
        Ok(mut m) => {
            let s = m.mut_structure();
            for (name, value) in fields.iter() {
                s.set_value(name, value.clone());
            }
            true.into_glib()
        }
        Err(_) => glib::ffi::GFALSE,
    }
}

/// Scales a result's image size and coordinates by (sx, sy), and those of
/// every instance's result in `results`.
pub(super) fn scale(s: &mut gst::Structure, sx: f64, sy: f64) {
    if let Ok(mut results) = s.get::<gst::Structure>(ResultField::Results.name()) {
        let names: Vec<glib::GString> = results.fields().map(|f| f.to_owned()).collect();
        for name in names {
            if let Ok(mut one) = results.get::<gst::Structure>(name.as_str()) {
                scale(&mut one, sx, sy);
                results.set(name.as_str(), one);
            }
        }
        s.set(ResultField::Results.name(), results);
    }
    for (field, factor) in [
        (ResultField::ImageWidth, sx),
        (ResultField::ImageHeight, sy),
    ] {
        if let Ok(v) = s.get::<u32>(field.name()) {
            s.set(field.name(), (f64::from(v) * factor).round() as u32);
        }
    }
    // A result the protocol cannot read (an application's own meta) is left as it is.
    let Some(mut result) = s
        .get::<String>(ResultField::Result.name())
        .ok()
        .and_then(|json| task_result::decode(&json).ok())
    else {
        return;
    };
    result.scale(sx, sy);
    s.set(ResultField::Result.name(), task_result::encode(&result));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_and_size_follow_the_scale() {
        gst::init().unwrap();
        let mut s = gst::Structure::builder("m")
            .field("image-width", 320u32)
            .field("image-height", 240u32)
            .field(
                "result",
                r#"{"bboxes":[[10.0,20.0,30.0,40.0]],"bboxes_labels":["a"],"polygons":[[[1.0,2.0,3.0,4.0]]],"polygons_labels":["b"]}"#,
            )
            .build();
        scale(&mut s, 2.0, 0.5);
        assert_eq!(s.get::<u32>("image-width").unwrap(), 640);
        assert_eq!(s.get::<u32>("image-height").unwrap(), 120);
        let r: serde_json::Value =
            serde_json::from_str(&s.get::<String>("result").unwrap()).unwrap();
        assert_eq!(r["bboxes"], serde_json::json!([[20.0, 10.0, 60.0, 20.0]]));
        assert_eq!(r["polygons"], serde_json::json!([[[2.0, 1.0, 6.0, 2.0]]]));
        assert_eq!(r["bboxes_labels"], serde_json::json!(["a"]));
        assert_eq!(r["polygons_labels"], serde_json::json!(["b"]));
    }
}
