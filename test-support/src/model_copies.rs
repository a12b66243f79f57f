//! Copies of a model directory for tests that need a damaged or altered one:
//! a plain recursive copy, and one that loads (every signature is right) but
//! fails at run time on some requests: its `embed_tokens.onnx` table stops
//! short of the last token ids, so ONNX Runtime's Gather refuses a prompt
//! containing one of them (`<loc_999>`: a region touching the image's right or
//! bottom edge) while captions run normally.
//!
//! And the Hailo split of a model in hailo-florence's flat layout.
//!
//! Shared by the gst-florence and florenced tests (`#[path]`-included by the latter).

use std::path::Path;

/// Copies the directory tree `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    tree_again(from, to, &|file, target| {
        std::fs::copy(file, target).unwrap();
    });
}

/// The tree `from` again at `to`, every file a symlink to its original.
pub fn link_tree(from: &Path, to: &Path) {
    tree_again(from, to, &|file, target| {
        std::os::unix::fs::symlink(file, target).unwrap();
    });
}

/// `from`'s folders made again under `to`, each file placed by `place(file, target)`.
fn tree_again(from: &Path, to: &Path, place: &dyn Fn(&Path, &Path)) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            tree_again(&entry.path(), &target, place);
        } else {
            place(&entry.path(), &target);
        }
    }
}

/// Arranges `model`'s Hailo split in hailo-florence's flat layout at `to`
/// (symlinks): `vision_encoder.onnx`, the two HEFs, `tokenizer.json`,
/// `caption_embedding.npy`, `word_embedding.npy` and `vqa_embedding.npy`,
/// no configuration files. The stand-in HEFs name the ONNX graphs the bridge
/// stand-in runs (`text_encoder.onnx`, `decoder.onnx`), which come along as
/// the device's side of the HEFs; `hailo_split.json` does not (the layout
/// has none).
pub fn hailo_florence_layout(model: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    let link = |from: std::path::PathBuf, name: &str| {
        std::os::unix::fs::symlink(from, to.join(name)).unwrap();
    };
    link(
        model.join("onnx/vision_encoder.onnx"),
        "vision_encoder.onnx",
    );
    link(model.join("tokenizer.json"), "tokenizer.json");
    for name in [
        "florence2_transformer_encoder.hef",
        "florence2_transformer_decoder.hef",
        "caption_embedding.npy",
        "word_embedding.npy",
        "vqa_embedding.npy",
        "text_encoder.onnx",
        "decoder.onnx",
    ] {
        link(model.join("hailo").join(name), name);
    }
}

/// Rows kept by default: ids 0..1604, i.e. everything below `<loc_999>` in the
/// tiny vocabulary.
pub const SHORT_TABLE_ROWS: u64 = 1604;

/// Copies `model` to `to` (graphs other than embed_tokens and the files are
/// symlinked) with the embedding table cut to [`SHORT_TABLE_ROWS`] rows.
pub fn model_with_short_embedding_table(model: &Path, to: &Path) {
    model_with_embedding_rows(model, to, SHORT_TABLE_ROWS);
}

/// The same with the table cut to `rows` rows (few rows: every prompt fails).
pub fn model_with_embedding_rows(model: &Path, to: &Path, rows: u64) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to.join("onnx")).unwrap();
    for entry in std::fs::read_dir(model).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "onnx" {
            std::os::unix::fs::symlink(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    for entry in std::fs::read_dir(model.join("onnx")).unwrap() {
        let entry = entry.unwrap();
        let target = to.join("onnx").join(entry.file_name());
        if entry.file_name() == "embed_tokens.onnx" {
            let bytes = std::fs::read(entry.path()).unwrap();
            std::fs::write(target, shorten_table(&bytes, rows)).unwrap();
        } else {
            std::os::unix::fs::symlink(entry.path(), target).unwrap();
        }
    }
}

/// A protobuf field: number, wire type, payload (varint bytes, fixed bytes, or
/// the content of a length-delimited field).
struct Field {
    num: u64,
    wire: u8,
    payload: Vec<u8>,
}

fn read_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn parse(buf: &[u8]) -> Vec<Field> {
    let mut pos = 0;
    let mut fields = Vec::new();
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos);
        let wire = (key & 7) as u8;
        let start = pos;
        let payload = match wire {
            0 => {
                read_varint(buf, &mut pos);
                buf[start..pos].to_vec()
            }
            1 => {
                pos += 8;
                buf[start..pos].to_vec()
            }
            2 => {
                let len = read_varint(buf, &mut pos) as usize;
                pos += len;
                buf[pos - len..pos].to_vec()
            }
            5 => {
                pos += 4;
                buf[start..pos].to_vec()
            }
            w => panic!("unexpected protobuf wire type {w}"),
        };
        fields.push(Field {
            num: key >> 3,
            wire,
            payload,
        });
    }
    fields
}

fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        write_varint(&mut out, (f.num << 3) | u64::from(f.wire));
        if f.wire == 2 {
            write_varint(&mut out, f.payload.len() as u64);
        }
        out.extend_from_slice(&f.payload);
    }
    out
}

fn varint_value(payload: &[u8]) -> u64 {
    read_varint(payload, &mut 0)
}

/// ModelProto.graph (7) -> GraphProto.initializer (5) -> the 2-D float
/// TensorProto: dims (1) [rows, cols] -> [keep, cols], raw_data (9) cut to match.
fn shorten_table(model: &[u8], keep: u64) -> Vec<u8> {
    let mut top = parse(model);
    let mut patched = false;
    for g in top.iter_mut().filter(|f| f.num == 7 && f.wire == 2) {
        let mut graph = parse(&g.payload);
        for init in graph.iter_mut().filter(|f| f.num == 5 && f.wire == 2) {
            let mut tensor = parse(&init.payload);
            let dims: Vec<u64> = tensor
                .iter()
                .filter(|f| f.num == 1 && f.wire == 0)
                .map(|f| varint_value(&f.payload))
                .collect();
            let [rows, cols] = dims[..] else { continue };
            assert!(keep < rows, "the table has only {rows} rows");
            for f in tensor.iter_mut() {
                if f.num == 1 && f.wire == 0 && varint_value(&f.payload) == rows {
                    f.payload.clear();
                    write_varint(&mut f.payload, keep);
                } else if f.num == 9 && f.wire == 2 {
                    assert_eq!(f.payload.len() as u64, rows * cols * 4, "float32 raw data");
                    f.payload.truncate((keep * cols * 4) as usize);
                }
            }
            init.payload = encode(&tensor);
            patched = true;
            break;
        }
        g.payload = encode(&graph);
    }
    assert!(patched, "no 2-D initializer in embed_tokens.onnx");
    encode(&top)
}
