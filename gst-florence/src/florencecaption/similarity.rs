//! Skip-similar: a 32x32 grayscale thumbnail and its distance to the last one.

use crate::engine::preprocess::RgbImage;

/// 32x32 grayscale thumbnail (box average) for the skip-similar comparison.
pub(super) fn thumbnail(img: &RgbImage) -> Vec<u8> {
    const N: usize = 32;
    let (w, h) = (img.width as usize, img.height as usize);
    let mut out = vec![0u8; N * N];
    for ty in 0..N {
        for tx in 0..N {
            let (x0, x1) = (tx * w / N, ((tx + 1) * w / N).max(tx * w / N + 1).min(w));
            let (y0, y1) = (ty * h / N, ((ty + 1) * h / N).max(ty * h / N + 1).min(h));
            let (mut sum, mut n) = (0u64, 0u64);
            for y in y0..y1 {
                for x in x0..x1 {
                    let p = &img.data[(y * w + x) * 3..(y * w + x) * 3 + 3];
                    sum += (p[0] as u64 * 299 + p[1] as u64 * 587 + p[2] as u64 * 114) / 1000;
                    n += 1;
                }
            }
            out[ty * N + tx] = (sum / n.max(1)) as u8;
        }
    }
    out
}

pub(super) fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    let total: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    total as f64 / a.len().max(1) as f64
}
