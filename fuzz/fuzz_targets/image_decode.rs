//! Encoded image bytes (JPEG, PNG, WebP, BMP or anything else) through the
//! engine's decoder with florenced's default limits and EXIF orientation, as
//! a request image is decoded.
#![no_main]

use gstflorence::engine::image_io;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = florenced::config::Config::default().limits.image_limits();
    if let Ok(image) = image_io::decode(data, &limits, true) {
        assert_eq!(
            image.data.len(),
            image.width as usize * image.height as usize * 3
        );
    }
});
