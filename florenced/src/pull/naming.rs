//! How models and variants are named, for lookups and for messages alike:
//! the short names of the public Florence-2 exports, and a variant's name.

/// Short names of the public Florence-2 exports (transformers.js layout).
pub const SHORT_NAMES: [(&str, &str); 4] = [
    ("florence-2-base-ft", "onnx-community/Florence-2-base-ft"),
    ("florence-2-large-ft", "onnx-community/Florence-2-large-ft"),
    ("florence-2-base", "onnx-community/Florence-2-base"),
    ("florence-2-large", "onnx-community/Florence-2-large"),
];

/// How a variant is named in messages.
pub fn variant_name(suffix: &str) -> String {
    if suffix.is_empty() {
        "fp32".to_owned()
    } else {
        suffix.to_owned()
    }
}
