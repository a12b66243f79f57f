//! What `florenced pull MODEL --variant V` means: which Hub repository, which
//! precision variant, and which of the repository's files the engine reads.

use std::path::Path;

use gstflorence::engine::model_error::VARIANTS;
use gstflorence::engine::onnx::session;
use gstflorence::engine::onnx::signature::Graph;

use super::error::PullError;
use super::naming::SHORT_NAMES;

/// Files next to the graphs that a Florence-2 model directory must have. The
/// engine reads the first four; tokenizer_config.json is what Python tools
/// (transformers' AutoTokenizer) need to open the same directory.
pub const CONFIG_FILES: [&str; 5] = [
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
];

/// Files the engine reads when they exist (post-processing settings, the VQA template).
pub const OPTIONAL_FILES: [&str; 2] = ["post_processor_config.json", "florence.json"];

/// The Hub repository id that `model` names: a short name (any case) or
/// `owner/name` as the Hub spells repository ids.
pub fn repo_id(model: &str) -> Result<String, PullError> {
    if let Some((_, id)) = SHORT_NAMES
        .iter()
        .find(|(short, _)| short.eq_ignore_ascii_case(model))
    {
        return Ok((*id).to_owned());
    }
    if is_repo_id(model) {
        Ok(model.to_owned())
    } else {
        Err(PullError::UnknownModel(model.to_owned()))
    }
}

/// `owner/name` with the characters the Hub allows (huggingface_hub's
/// `validate_repo_id`): letters, digits, `-`, `_`, `.`; no `--` or `..`, no
/// leading or trailing `-`/`.`, at most 96 characters.
pub fn is_repo_id(s: &str) -> bool {
    let Some((owner, name)) = s.split_once('/') else {
        return false;
    };
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
    };
    s.len() <= 96 && part_ok(owner) && part_ok(name) && !s.contains("--") && !s.contains("..")
}

/// The graph file suffix of a variant: `""`/`fp32` is fp32, `fp16` and `_fp16`
/// are the same; anything else must be one the engine runs.
pub fn variant_suffix(variant: &str) -> Result<String, PullError> {
    let v = variant.trim();
    let suffix = if v.is_empty() || v.eq_ignore_ascii_case("fp32") {
        String::new()
    } else if v.starts_with('_') {
        v.to_owned()
    } else {
        format!("_{v}")
    };
    if VARIANTS.contains(&suffix.as_str()) {
        Ok(suffix)
    } else {
        Err(PullError::BadVariant(variant.to_owned()))
    }
}

/// The four graphs of a variant, as paths inside the repository (`onnx/...`).
pub fn graph_files(suffix: &str) -> Vec<String> {
    Graph::ONNX_COMMUNITY
        .iter()
        .map(|g| {
            session::graph_path(Path::new(""), *g, suffix)
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// An ONNX graph above 2 GB keeps its weights in external data files beside it
/// (`decoder_model_merged.onnx_data`, `..._data_1`, or `.onnx.data`).
fn is_external_data_of(file: &str, graph: &str) -> bool {
    file.strip_prefix(graph)
        .is_some_and(|rest| rest.starts_with("_data") || rest == ".data")
}

/// The variants whose four graphs are all among `files`, in the engine's order.
pub fn variants_present<'a>(files: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
    VARIANTS
        .iter()
        .filter(|v| graph_files(v).iter().all(|g| files.clone().any(|f| f == g)))
        .map(|v| (*v).to_owned())
        .collect()
}

/// Exactly the files of `repo` the engine needs for `suffix`, from the
/// repository's file list: the graphs (and their external data), the config
/// and tokenizer files, and the optional files that exist.
pub fn select(repo: &str, files: &[String], suffix: &str) -> Result<Vec<String>, PullError> {
    let has = |f: &str| files.iter().any(|x| x == f);
    let graphs = graph_files(suffix);
    if graphs.iter().any(|g| !has(g)) {
        return Err(PullError::MissingVariant {
            repo: repo.to_owned(),
            variant: suffix.to_owned(),
            missing: graphs.iter().filter(|g| !has(g)).cloned().collect(),
            available: variants_present(files.iter().map(String::as_str)),
        });
    }
    let missing: Vec<String> = CONFIG_FILES
        .iter()
        .filter(|f| !has(f))
        .map(|f| (*f).to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(PullError::NotFlorenceLayout {
            repo: repo.to_owned(),
            missing,
        });
    }
    let mut out: Vec<String> = CONFIG_FILES.iter().map(|f| (*f).to_owned()).collect();
    out.extend(
        OPTIONAL_FILES
            .iter()
            .filter(|f| has(f))
            .map(|f| (*f).to_owned()),
    );
    for g in &graphs {
        out.push(g.clone());
        let mut data: Vec<&String> = files.iter().filter(|f| is_external_data_of(f, g)).collect();
        data.sort();
        out.extend(data.into_iter().cloned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = CONFIG_FILES.iter().map(|s| s.to_string()).collect();
        v.extend(graph_files(""));
        v.extend(graph_files("_fp16"));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    #[test]
    fn short_names_map_to_the_onnx_community_repositories() {
        assert_eq!(
            repo_id("florence-2-base-ft").unwrap(),
            "onnx-community/Florence-2-base-ft"
        );
        assert_eq!(
            repo_id("Florence-2-Large").unwrap(),
            "onnx-community/Florence-2-large"
        );
        assert_eq!(repo_id("me/my-florence").unwrap(), "me/my-florence");
        for bad in [
            "florence",
            "a/b/c",
            "/abs/path",
            "a--b/c",
            "-a/b",
            "a/b.",
            "",
        ] {
            assert!(repo_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn variants_are_the_engines_suffixes() {
        assert_eq!(variant_suffix("").unwrap(), "");
        assert_eq!(variant_suffix("fp32").unwrap(), "");
        assert_eq!(variant_suffix("fp16").unwrap(), "_fp16");
        assert_eq!(variant_suffix("_quantized").unwrap(), "_quantized");
        let err = variant_suffix("_fp8").unwrap_err().to_string();
        assert!(err.contains("_fp8") && err.contains("_q4f16"), "{err}");
    }

    #[test]
    fn selection_is_the_variants_graphs_and_the_config_files() {
        let files = listing(&[
            "README.md",
            "florence.json",
            "onnx/decoder_model.onnx",
            "onnx/decoder_model_merged_fp16.onnx_data",
            "onnx/embed_tokens_quantized.onnx",
        ]);
        let fp16 = select("r", &files, "_fp16").unwrap();
        assert!(fp16.contains(&"onnx/vision_encoder_fp16.onnx".to_string()));
        assert!(fp16.contains(&"onnx/decoder_model_merged_fp16.onnx_data".to_string()));
        assert!(fp16.contains(&"florence.json".to_string()));
        assert!(fp16.contains(&"tokenizer_config.json".to_string()));
        assert!(
            !fp16
                .iter()
                .any(|f| f == "README.md" || f == "onnx/vision_encoder.onnx")
        );
        assert_eq!(fp16.len(), 5 + 1 + 4 + 1);
        let fp32 = select("r", &files, "").unwrap();
        assert!(!fp32.iter().any(|f| f.contains("fp16")), "{fp32:?}");
    }

    #[test]
    fn a_missing_variant_lists_the_ones_there() {
        let err = select("r", &listing(&[]), "_q4").unwrap_err();
        let PullError::MissingVariant {
            available, missing, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(available, &["", "_fp16"]);
        assert_eq!(missing.len(), 4);
        let text = err.to_string();
        assert!(text.contains("fp32") && text.contains("_fp16"), "{text}");
    }
}
