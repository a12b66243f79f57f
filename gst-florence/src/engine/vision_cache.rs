//! The last image's vision features, kept for the next request on the same
//! image: several tasks on one image (or consecutive requests on one frame)
//! run the vision encoder once, whichever backend encodes it.

use parking_lot::Mutex;
use std::sync::Arc;

use super::preprocess::RgbImage;

/// Image features: `tokens` rows of `dim` values.
#[derive(Debug)]
pub struct Features {
    pub data: Vec<f32>,
    pub tokens: usize,
    pub dim: usize,
}

/// Identifies an image's content: a 128-bit hash of its size and pixels.
pub fn image_key(image: &RgbImage) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&image.width.to_le_bytes());
    h.update(&image.height.to_le_bytes());
    h.update(&image.data);
    h.digest128()
}

/// One image's features at most; off, it keeps nothing (a benchmark needs
/// every run to encode its image).
#[derive(Debug)]
pub struct VisionCache {
    enabled: bool,
    last: Mutex<Option<(u128, Arc<Features>)>>,
}

impl VisionCache {
    pub fn new(enabled: bool) -> Self {
        VisionCache {
            enabled,
            last: Mutex::new(None),
        }
    }

    /// Whether features are reused at all (off for benchmarks, which need
    /// every run to encode its image).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The features of the image with `key`, if they are the kept ones.
    pub fn get(&self, key: u128) -> Option<Arc<Features>> {
        let last = self.last.lock();
        last.as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, f)| f.clone())
    }

    /// Keeps `features` as the last image's (when enabled).
    pub fn put(&self, key: u128, features: Arc<Features>) {
        if self.enabled {
            *self.last.lock() = Some((key, features));
        }
    }

    /// Forgets the kept features: the next run encodes its image again.
    pub fn clear(&self) {
        *self.last.lock() = None;
    }
}
