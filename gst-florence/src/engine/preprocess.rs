//! Image preprocessing exactly as Florence-2's processor does it.
//!
//! The reference (transformers' PIL image-processor backend) converts to RGB
//! (compositing transparency onto white), resizes the 8-bit image straight to
//! the model size with Pillow's BICUBIC filter (a = -0.5, antialiased when
//! downscaling, two separable passes in 22-bit fixed point, each rounded to
//! 8 bits), then rescales by 1/255 and normalises with mean/std into NCHW f32.
//! The resampling below follows Pillow's `Resample.c` integer arithmetic, so the
//! resized pixels are bit-identical and the tensor matches to float rounding.

use super::config::PreprocessorConfig;

/// An 8-bit RGB image, rows packed without padding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("image has no pixels ({width}x{height})")]
    Empty { width: u32, height: u32 },
    #[error("image buffer holds {found} bytes, {width}x{height} {layout} needs {expected}")]
    BufferSize {
        width: u32,
        height: u32,
        layout: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("image of {width}x{height} exceeds the limit of {max} pixels per side")]
    TooLarge { width: u32, height: u32, max: u32 },
}

/// Largest side accepted: Pillow's own limit for resampling is far above, this
/// keeps the coefficient tables and temporaries bounded.
pub const MAX_SIDE: u32 = 65_535;

/// Pixel formats the helpers convert from (a frame's memory layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb,
    Bgr,
    /// Straight (not premultiplied) alpha, composited onto white like the reference.
    Rgba,
    Bgra,
    /// 4 bytes per pixel, the 4th ignored.
    Rgbx,
    Bgrx,
    Gray,
}

impl PixelFormat {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Gray => 1,
            PixelFormat::Rgb | PixelFormat::Bgr => 3,
            _ => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb => "RGB",
            PixelFormat::Bgr => "BGR",
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::Rgbx => "RGBx",
            PixelFormat::Bgrx => "BGRx",
            PixelFormat::Gray => "GRAY8",
        }
    }
}

/// Pillow's `alpha_composite` of a straight-alpha pixel over opaque white, per
/// channel, with its 7-bit fixed point and divide-by-255 shifts (AlphaComposite.c).
fn over_white(c: u8, a: u8) -> u8 {
    if a == 0 {
        return 255;
    }
    let (c, a) = (c as u32, a as u32);
    // outa255 = a*255 + 255*(255-a) = 255*255 for an opaque destination.
    let coef1 = a * 255 * 255 * 128 / (255 * 255);
    let coef2 = 255 * 128 - coef1;
    let tmp = c * coef1 + 255 * coef2 + (0x80 << 7);
    ((((tmp >> 8) + tmp) >> 8) >> 7) as u8
}

impl RgbImage {
    /// Converts a packed buffer with `stride` bytes per row (0 = tightly packed).
    pub fn from_format(
        width: u32,
        height: u32,
        layout: PixelFormat,
        data: &[u8],
        stride: usize,
    ) -> Result<Self, ImageError> {
        if width == 0 || height == 0 {
            return Err(ImageError::Empty { width, height });
        }
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(ImageError::TooLarge {
                width,
                height,
                max: MAX_SIDE,
            });
        }
        let bpp = layout.bytes_per_pixel();
        let row = width as usize * bpp;
        let stride = if stride == 0 { row } else { stride };
        let expected = stride * (height as usize - 1) + row;
        if stride < row || data.len() < expected {
            return Err(ImageError::BufferSize {
                width,
                height,
                layout: layout.name(),
                expected,
                found: data.len(),
            });
        }
        let mut out = Vec::with_capacity(width as usize * height as usize * 3);
        for y in 0..height as usize {
            let line = &data[y * stride..y * stride + row];
            for px in line.chunks_exact(bpp) {
                let rgb = match layout {
                    PixelFormat::Rgb | PixelFormat::Rgbx => [px[0], px[1], px[2]],
                    PixelFormat::Bgr | PixelFormat::Bgrx => [px[2], px[1], px[0]],
                    PixelFormat::Rgba => [
                        over_white(px[0], px[3]),
                        over_white(px[1], px[3]),
                        over_white(px[2], px[3]),
                    ],
                    PixelFormat::Bgra => [
                        over_white(px[2], px[3]),
                        over_white(px[1], px[3]),
                        over_white(px[0], px[3]),
                    ],
                    PixelFormat::Gray => [px[0], px[0], px[0]],
                };
                out.extend_from_slice(&rgb);
            }
        }
        Ok(RgbImage {
            width,
            height,
            data: out,
        })
    }

    pub fn from_rgb(width: u32, height: u32, data: Vec<u8>) -> Result<Self, ImageError> {
        if width == 0 || height == 0 {
            return Err(ImageError::Empty { width, height });
        }
        let expected = width as usize * height as usize * 3;
        if data.len() != expected {
            return Err(ImageError::BufferSize {
                width,
                height,
                layout: "RGB",
                expected,
                found: data.len(),
            });
        }
        Ok(RgbImage {
            width,
            height,
            data,
        })
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output pixel: first input index, tap count and fixed-point weights
/// (Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`).
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) truncates toward zero; both values are >= -0.5 + small here.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = bicubic((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        let row = &mut weights[xx * ksize..xx * ksize + ksize];
        for (x, kx) in k.iter().enumerate().take(n) {
            let w = if ww != 0.0 { kx / ww } else { *kx };
            let scaled = w * (1u64 << PRECISION_BITS) as f64;
            row[x] = if w < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs {
        ksize,
        bounds,
        weights,
    }
}

fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

fn weighted_sum(k: &[i32], px: impl Fn(usize) -> [u8; 3]) -> [u8; 3] {
    let mut ss = [1i32 << (PRECISION_BITS - 1); 3];
    for (i, &w) in k.iter().enumerate() {
        let p = px(i);
        ss[0] += p[0] as i32 * w;
        ss[1] += p[1] as i32 * w;
        ss[2] += p[2] as i32 * w;
    }
    [clip8(ss[0]), clip8(ss[1]), clip8(ss[2])]
}

/// One horizontal pass: every row resampled to `c.bounds.len()` columns.
fn pass_horizontal(src: &[u8], w: usize, h: usize, c: &Coeffs) -> Vec<u8> {
    let ow = c.bounds.len();
    let mut out = vec![0u8; ow * h * 3];
    for y in 0..h {
        let row = &src[y * w * 3..(y + 1) * w * 3];
        for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
            let k = &c.weights[xx * c.ksize..xx * c.ksize + n];
            let px = weighted_sum(k, |i| {
                let o = (xmin + i) * 3;
                [row[o], row[o + 1], row[o + 2]]
            });
            out[(y * ow + xx) * 3..(y * ow + xx) * 3 + 3].copy_from_slice(&px);
        }
    }
    out
}

/// One vertical pass: every column resampled to `c.bounds.len()` rows.
fn pass_vertical(src: &[u8], w: usize, c: &Coeffs) -> Vec<u8> {
    let oh = c.bounds.len();
    let mut out = vec![0u8; w * oh * 3];
    for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
        let k = &c.weights[yy * c.ksize..yy * c.ksize + n];
        for x in 0..w {
            let px = weighted_sum(k, |i| {
                let o = ((ymin + i) * w + x) * 3;
                [src[o], src[o + 1], src[o + 2]]
            });
            out[(yy * w + x) * 3..(yy * w + x) * 3 + 3].copy_from_slice(&px);
        }
    }
    out
}

/// Pillow's `Image.resize(size, Image.BICUBIC)` of an RGB image, bit for bit.
///
/// Each pass rounds to 8 bits, so the order matters. Pillow 13 (its PR 9549,
/// "if height is scaled down significantly more than width, resize vertically
/// first") runs the vertical pass first when the height shrinks by more than
/// twice as many pixels as the width does; the horizontal pass first otherwise.
/// Checked against Pillow 13.0 on 541 random size pairs where the orders differ.
pub fn resize_bicubic(img: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    let (in_w, in_h) = (img.width as usize, img.height as usize);
    let (ow, oh) = (out_w as usize, out_h as usize);
    let need_h = in_w != ow;
    let need_v = in_h != oh;
    let data = match (need_h, need_v) {
        (false, false) => img.data.clone(),
        (true, false) => pass_horizontal(&img.data, in_w, in_h, &coeffs(in_w, ow)),
        (false, true) => pass_vertical(&img.data, in_w, &coeffs(in_h, oh)),
        (true, true) => {
            let (hc, vc) = (coeffs(in_w, ow), coeffs(in_h, oh));
            let shrink_h = in_h as i64 - oh as i64;
            let shrink_w = in_w as i64 - ow as i64;
            if shrink_h > 0 && shrink_h > 2 * shrink_w {
                let tmp = pass_vertical(&img.data, in_w, &vc);
                pass_horizontal(&tmp, in_w, oh, &hc)
            } else {
                let tmp = pass_horizontal(&img.data, in_w, in_h, &hc);
                pass_vertical(&tmp, ow, &vc)
            }
        }
    };
    RgbImage {
        width: out_w,
        height: out_h,
        data,
    }
}

/// The pixel tensor [1, 3, H, W] the vision encoder takes, in row-major order.
pub fn pixel_values(img: &RgbImage, cfg: &PreprocessorConfig) -> (Vec<f32>, [usize; 4]) {
    pixel_values_at(img, cfg, cfg.size.width, cfg.size.height)
}

/// Same, at an explicit size (the Hailo split runs the vision encoder at 384).
pub fn pixel_values_at(
    img: &RgbImage,
    cfg: &PreprocessorConfig,
    width: u32,
    height: u32,
) -> (Vec<f32>, [usize; 4]) {
    let resized = if cfg.do_resize {
        resize_bicubic(img, width, height)
    } else {
        img.clone()
    };
    let (w, h) = (resized.width as usize, resized.height as usize);
    let plane = w * h;
    let mut out = vec![0f32; 3 * plane];
    let scale = if cfg.do_rescale {
        cfg.rescale_factor
    } else {
        1.0
    };
    for c in 0..3 {
        // As numpy does it: rescale in float64 then store f32; normalise in f32.
        let (mean, std) = if cfg.do_normalize {
            (cfg.image_mean[c], cfg.image_std[c])
        } else {
            (0.0, 1.0)
        };
        let dst = &mut out[c * plane..(c + 1) * plane];
        for (i, v) in dst.iter_mut().enumerate() {
            let x = (resized.data[i * 3 + c] as f64 * scale) as f32;
            *v = (x - mean) / std;
        }
    }
    (out, [1, 3, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_of_each_output_pixel_sum_to_one() {
        for (i, o) in [(1, 384), (37, 384), (1000, 384), (384, 384), (640, 768)] {
            let c = coeffs(i, o);
            for (xx, &(_, n)) in c.bounds.iter().enumerate() {
                let s: i64 = c.weights[xx * c.ksize..xx * c.ksize + n]
                    .iter()
                    .map(|&w| w as i64)
                    .sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= n as i64,
                    "{i}->{o} px {xx}: {s}"
                );
            }
        }
    }

    #[test]
    fn flat_images_stay_flat_at_any_scale() {
        let img = RgbImage::from_rgb(7, 3, [10u8, 200, 77].repeat(21)).unwrap();
        for (w, h) in [(384, 384), (2, 1), (7, 3), (1000, 37)] {
            let r = resize_bicubic(&img, w, h);
            assert!(r.data.chunks(3).all(|p| p == [10, 200, 77]), "{w}x{h}");
        }
    }

    #[test]
    fn layouts_convert_like_pillow() {
        let bgra = [30u8, 20, 10, 255, 30, 20, 10, 0, 0, 0, 200, 128];
        let img = RgbImage::from_format(3, 1, PixelFormat::Bgra, &bgra, 0).unwrap();
        // Opaque keeps the colour, transparent becomes white, half alpha blends toward white.
        assert_eq!(&img.data[..6], &[10, 20, 30, 255, 255, 255]);
        assert_eq!(&img.data[6..], &[227, 127, 127]);
        let gray = RgbImage::from_format(2, 2, PixelFormat::Gray, &[1, 2, 0, 3, 4], 3).unwrap();
        assert_eq!(gray.data, [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
    }

    #[test]
    fn compositing_matches_pillow_for_every_value() {
        // Checksums of Pillow 13's alpha_composite over white for all (c, a).
        let (mut sum, mut weighted) = (0i64, 0i64);
        for c in 0..=255u8 {
            for a in 0..=255u8 {
                let r = over_white(c, a) as i64;
                sum += r;
                weighted += r * a as i64 + r * c as i64 * 7;
            }
        }
        assert_eq!((sum, weighted), (12_533_760, 13_858_160_640));
    }

    #[test]
    fn bad_buffers_are_errors() {
        assert!(matches!(
            RgbImage::from_format(0, 5, PixelFormat::Rgb, &[], 0),
            Err(ImageError::Empty { .. })
        ));
        assert!(matches!(
            RgbImage::from_format(4, 4, PixelFormat::Rgba, &[0; 63], 0),
            Err(ImageError::BufferSize { expected: 64, .. })
        ));
        assert!(matches!(
            RgbImage::from_rgb(2, 2, vec![0; 11]),
            Err(ImageError::BufferSize { .. })
        ));
    }
}
