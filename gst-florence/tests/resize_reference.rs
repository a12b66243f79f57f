//! Bicubic resizing against Pillow on 120 size pairs (tests/fixtures/resize_cases.json,
//! written by tools/export/florence_export/resize_cases.py).

use std::path::Path;

use gstflorence::engine::preprocess::{RgbImage, resize_bicubic};
use sha2::{Digest, Sha256};

/// Same formula as resize_cases.pattern().
fn pattern(w: u32, h: u32) -> RgbImage {
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            data.push(((x * 37 + y * 11) % 256) as u8);
            data.push(if ((x / 3) + (y / 5)) % 2 == 0 { 250 } else { 5 });
            data.push(((x * y * 7 + x * 3) % 256) as u8);
        }
    }
    RgbImage::from_rgb(w, h, data).unwrap()
}

#[test]
fn resizes_are_bit_identical_to_pillow() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/resize_cases.json");
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = data["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let dim = |k: &str, i: usize| case[k][i].as_u64().unwrap() as u32;
        let (iw, ih, ow, oh) = (dim("in", 0), dim("in", 1), dim("out", 0), dim("out", 1));
        let out = resize_bicubic(&pattern(iw, ih), ow, oh);
        let digest = format!("{:x}", Sha256::digest(&out.data));
        if digest != case["sha256"].as_str().unwrap() {
            let sum: i64 = out.data.iter().map(|&v| v as i64).sum();
            failures.push(format!(
                "{iw}x{ih} -> {ow}x{oh}: sum {sum} vs {}",
                case["sum"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} resizes differ from Pillow {}:\n{}",
        failures.len(),
        cases.len(),
        data["pillow"],
        failures.join("\n")
    );
}
