//! Float32 `.npy` files (the Hailo split's embedding tables).

use std::path::Path;

use super::model_error::ModelError;

/// A float32 array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads a little-endian float32, C-order `.npy` file (format versions 1-3).
pub fn read_npy(path: &Path) -> Result<NpyArray, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| npy_error(path, format!("cannot read: {e}")))?;
    let (shape, start) = npy_header(path, &bytes)?;
    let count: usize = shape.iter().product();
    let body = &bytes[start..];
    if body.len() != count * 4 {
        return Err(npy_error(
            path,
            format!(
                "shape {shape:?} needs {} bytes of data, file has {}",
                count * 4,
                body.len()
            ),
        ));
    }
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(NpyArray { shape, data })
}

/// The shape of a float32 `.npy` file, from its header only.
pub fn npy_shape(path: &Path) -> Result<Vec<usize>, ModelError> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(65_536 + 12).read_to_end(&mut head))
        .map_err(|e| npy_error(path, format!("cannot read: {e}")))?;
    npy_header(path, &head).map(|(shape, _)| shape)
}

fn npy_error(path: &Path, reason: String) -> ModelError {
    ModelError::File {
        path: path.to_path_buf(),
        reason,
    }
}

/// The shape and the data offset of a float32 little-endian C-order `.npy`.
fn npy_header(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, usize), ModelError> {
    let bad = |reason: String| npy_error(path, reason);
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    let header = start
        .checked_add(header_len)
        .and_then(|end| bytes.get(start..end))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header".into()))?;
    if !header.contains("'descr': '<f4'") {
        return Err(bad(format!(
            "expected float32 little-endian data, header {header}"
        )));
    }
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran-order arrays are not supported".into()));
    }
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .map(|s| s.trim().trim_start_matches('('))
        .ok_or_else(|| bad(format!("no shape in header {header}")))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("bad shape {shape_text:?}: {e}")))?;
    if shape
        .iter()
        .try_fold(4usize, |n, d| n.checked_mul(*d))
        .is_none()
    {
        return Err(bad(format!("shape {shape:?} is too large")));
    }
    Ok((shape, start + header_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_errors() {
        let scratch = florence_test_support::scratch::Scratch::new("npy");
        let dir = scratch.path();
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
        bytes.extend_from_slice(h.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let ok = dir.join("ok.npy");
        std::fs::write(&ok, &bytes).unwrap();
        let a = read_npy(&ok).unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.data[5], 6.5);
        let short = dir.join("short.npy");
        std::fs::write(&short, &bytes[..bytes.len() - 4]).unwrap();
        assert!(
            read_npy(&short)
                .unwrap_err()
                .to_string()
                .contains("needs 24 bytes")
        );
        std::fs::write(&short, b"hello").unwrap();
        assert!(read_npy(&short).is_err());
    }
}
