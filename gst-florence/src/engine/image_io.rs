//! Decoding encoded images (JPEG, PNG, WebP, BMP) into RGB, with the limits
//! checked from the header before any pixel is decoded, so a decompression
//! bomb is refused cheaply.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use super::preprocess::{PixelFormat, RgbImage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_width: u32,
    pub max_height: u32,
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_width: 8192,
            max_height: 8192,
            max_pixels: 40_000_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a supported image (JPEG, PNG, WebP or BMP)")]
    UnknownFormat,
    #[error("{format} image is corrupt or truncated: {reason}")]
    Corrupt {
        format: &'static str,
        reason: String,
    },
    #[error(
        "image is {width}x{height}; the limit is {max_width}x{max_height} and {max_pixels} pixels"
    )]
    TooLarge {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
        max_pixels: u64,
    },
    #[error("image has no pixels")]
    Empty,
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Bmp => "BMP",
        _ => "image",
    }
}

/// Decodes `bytes`, applies the EXIF orientation when `orient` is set, and converts
/// to RGB the way the reference does (alpha composited onto white, gray replicated).
pub fn decode(bytes: &[u8], limits: &ImageLimits, orient: bool) -> Result<RgbImage, DecodeError> {
    let format = image::guess_format(bytes).map_err(|_| DecodeError::UnknownFormat)?;
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Bmp
    ) {
        return Err(DecodeError::UnknownFormat);
    }
    let name = format_name(format);
    let corrupt = |e: image::ImageError| DecodeError::Corrupt {
        format: name,
        reason: e.to_string(),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut lim = image::Limits::default();
    // Dimensions are checked below from the header; this bounds any allocation.
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(lim);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(DecodeError::Empty);
    }
    if width > limits.max_width
        || height > limits.max_height
        || width as u64 * height as u64 > limits.max_pixels
    {
        return Err(DecodeError::TooLarge {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_pixels: limits.max_pixels,
        });
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        // The decoder pads a truncated scan with gray; the reference (Pillow) refuses it.
        return Err(DecodeError::Corrupt {
            format: name,
            reason: "the file is truncated (no end-of-image marker after the last scan)".into(),
        });
    }
    let orientation = if orient {
        decoder.orientation().ok()
    } else {
        None
    };
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => DecodeError::TooLarge {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_pixels: limits.max_pixels,
        },
        other => corrupt(other),
    })?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    to_rgb(img).ok_or(DecodeError::Empty)
}

/// True when the JPEG's own structure reaches its end-of-image marker: the walk
/// goes segment by segment from SOI (skipping each segment by its length, and
/// each scan's entropy-coded data up to the next marker that is not a stuffed
/// FF 00 or a restart marker), as libjpeg reads the file. Bytes after EOI (an
/// appended thumbnail, an MPO's second picture, padding) are not looked at, so
/// they cannot make a complete file look truncated; running out of bytes before
/// EOI is a truncation (the decoder would fill the rest of the picture with gray).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    const SOI: u8 = 0xD8;
    const EOI: u8 = 0xD9;
    const SOS: u8 = 0xDA;
    if bytes.get(..2) != Some(&[0xFF, SOI]) {
        return false;
    }
    let mut i = 2;
    loop {
        // libjpeg skips extraneous bytes before a marker (with a warning), and fill bytes FF FF.
        while i < bytes.len() && bytes[i] != 0xFF {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            EOI => return true,
            // Markers without a length: TEM, restart markers, a stray SOI.
            0x01 | 0xD0..=0xD7 | SOI => continue,
            _ => {}
        }
        let Some(len) = bytes
            .get(i..i + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return false;
        };
        if len < 2 {
            return false;
        }
        i += len;
        if i > bytes.len() {
            return false;
        }
        if marker == SOS {
            // Entropy-coded data: ends at the first FF followed by neither 00 nor RSTn.
            loop {
                let Some(ff) = bytes[i..].iter().position(|&b| b == 0xFF) else {
                    return false;
                };
                i += ff;
                match bytes.get(i + 1) {
                    None => return false,
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    Some(_) => break,
                }
            }
        }
    }
}

fn to_rgb(img: DynamicImage) -> Option<RgbImage> {
    let (w, h) = (img.width(), img.height());
    let has_alpha = img.color().has_alpha();
    let is_gray = !img.color().has_color();
    let out = if has_alpha {
        let rgba = img.into_rgba8();
        RgbImage::from_format(w, h, PixelFormat::Rgba, rgba.as_raw(), 0)
    } else if is_gray {
        let l = img.into_luma8();
        RgbImage::from_format(w, h, PixelFormat::Gray, l.as_raw(), 0)
    } else {
        RgbImage::from_rgb(w, h, img.into_rgb8().into_raw())
    };
    out.ok()
}

/// Reads and decodes a file.
pub fn read(path: &std::path::Path, limits: &ImageLimits) -> Result<RgbImage, DecodeError> {
    let bytes = std::fs::read(path).map_err(|e| DecodeError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    decode(&bytes, limits, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([1, 2, 3]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_and_refuses() {
        let ok = decode(&png(3, 2), &ImageLimits::default(), true).unwrap();
        assert_eq!((ok.width, ok.height), (3, 2));
        assert_eq!(&ok.data[..3], &[1, 2, 3]);
        assert!(matches!(
            decode(b"hello", &ImageLimits::default(), true),
            Err(DecodeError::UnknownFormat)
        ));
        let bytes = png(64, 64);
        assert!(matches!(
            decode(&bytes[..bytes.len() / 2], &ImageLimits::default(), true),
            Err(DecodeError::Corrupt { .. })
        ));
        let small = ImageLimits {
            max_width: 32,
            max_height: 32,
            max_pixels: 1000,
        };
        assert!(matches!(
            decode(&bytes, &small, true),
            Err(DecodeError::TooLarge { width: 64, .. })
        ));
    }

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn jpeg_truncation_is_read_from_its_structure() {
        let full = jpeg(40, 30);
        let ok = decode(&full, &ImageLimits::default(), true).unwrap();
        // Bytes after EOI that hold SOS and SOI markers (a trailer, a second picture).
        let mut trailing = full.clone();
        trailing.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 1, 2, 3, 0xFF, 0xD8, 0xFF, 0xDA]);
        let with_trailer = decode(&trailing, &ImageLimits::default(), true).unwrap();
        assert_eq!(with_trailer.data, ok.data);
        let mut twice = full.clone();
        twice.extend_from_slice(&full[..full.len() / 2]);
        assert!(decode(&twice, &ImageLimits::default(), true).is_ok());
        // Cut inside the scan, or just before EOI: truncated.
        for cut in [full.len() - 2, full.len() - 40, full.len() / 2] {
            assert!(
                matches!(
                    decode(&full[..cut], &ImageLimits::default(), true),
                    Err(DecodeError::Corrupt { .. })
                ),
                "cut at {cut} of {}",
                full.len()
            );
        }
    }

    #[test]
    fn header_claiming_a_huge_png_is_refused_before_decoding() {
        // A valid PNG header that claims 100000 x 100000 pixels, and nothing else.
        let mut bytes = png(1, 1);
        bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let err = decode(&bytes, &ImageLimits::default(), true).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::TooLarge { .. } | DecodeError::Corrupt { .. }
            ),
            "{err}"
        );
    }
}
