//! `florenced pull MODEL`: downloads exactly the files the engine needs for one
//! variant of a Florence-2 model from the Hugging Face Hub into the Hub's
//! cache (the one Python's huggingface_hub uses, so a model pulled by either is
//! found by both), optionally lays it out as a standalone directory, and checks
//! that the engine loads it. Also resolves a Hub repository id given as a
//! model directory (`--model-dir onnx-community/Florence-2-base-ft`).

mod cache;
mod disk;
mod download;
mod error;
mod hub;
mod names;
mod naming;
mod progress;
mod settings;

use std::path::{Path, PathBuf};

use clap::Args;
use gstflorence::engine::Florence;
use gstflorence::engine::SessionOptions;

use cache::{RepoCache, is_safe_relative};
use download::{Digest, Expected};
pub use error::PullError;
use hub::{Hub, Sibling};
use progress::Reporter;
use settings::HubSettings;

#[derive(Args)]
pub struct PullArgs {
    /// florence-2-base-ft, florence-2-large-ft, florence-2-base, florence-2-large, or
    /// a Hub repository id (owner/name) in the onnx-community layout.
    pub model: String,
    /// Graph variant: fp32 (default), fp16, quantized, int8, uint8, q4, q4f16, bnb4
    /// (the file suffix, with or without its leading `_`).
    #[arg(long, default_value = "")]
    pub variant: String,
    /// Also lay the model out in DIR as a standalone model directory (hard links
    /// into the cache where the file system allows, else copies).
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// Branch, tag or commit of the repository.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Use only the cache, as HF_HUB_OFFLINE=1 does.
    #[arg(long)]
    pub offline: bool,
    /// libonnxruntime.so for the final check (else ORT_DYLIB_PATH, the project folder, the system).
    #[arg(long, env = "FLORENCED_ORT_LIBRARY")]
    pub ort_library: Option<PathBuf>,
}

/// Pulls the model and returns the directory to serve it from.
pub fn run(args: &PullArgs) -> Result<PathBuf, PullError> {
    let repo = names::repo_id(&args.model)?;
    let suffix = names::variant_suffix(&args.variant)?;
    let settings = HubSettings::from_env();
    let cache = RepoCache::new(&settings.cache_dir, &repo);
    let reporter = Reporter::new();
    let (snapshot, files) = if args.offline || settings.offline {
        reporter.info(&format!(
            "offline: looking for {repo} in the cache {}",
            settings.cache_dir.display()
        ));
        from_cache(&cache, &repo, &args.revision, &suffix)?
    } else {
        let hub = Hub::new(&settings);
        match download(&hub, &cache, &repo, &args.revision, &suffix, &reporter) {
            // As huggingface_hub does: without a network, a complete cached copy serves.
            Err(e @ PullError::Unreachable { .. }) => {
                match from_cache(&cache, &repo, &args.revision, &suffix) {
                    Ok(found) => {
                        reporter.info(&format!("{e}; using the copy in the cache"));
                        found
                    }
                    Err(_) => return Err(e),
                }
            }
            other => other?,
        }
    };
    let dir = match &args.model_dir {
        Some(dir) => {
            lay_out(&snapshot, &files, dir)?;
            dir.clone()
        }
        None => snapshot,
    };
    validate(&dir, &suffix, args.ort_library.clone())?;
    reporter.info(&format!(
        "{repo} ({}) is ready in {}: serve it with --model-dir {}",
        naming::variant_name(&suffix),
        dir.display(),
        if args.model_dir.is_some() {
            dir.display().to_string()
        } else {
            repo.clone()
        },
    ));
    Ok(dir)
}

/// What the Hub publishes for a file: its size and digest.
fn expected(repo: &str, sibling: &Sibling) -> Result<Expected, PullError> {
    match (&sibling.lfs, &sibling.blob_id, sibling.size) {
        (Some(lfs), _, _) => Ok(Expected {
            size: lfs.size,
            digest: Digest::Sha256(lfs.sha256.to_ascii_lowercase()),
        }),
        (None, Some(id), Some(size)) => Ok(Expected {
            size,
            digest: Digest::GitSha1(id.to_ascii_lowercase()),
        }),
        _ => Err(PullError::Protocol {
            url: repo.to_owned(),
            message: format!(
                "no size or digest for {} in the repository info",
                sibling.rfilename
            ),
        }),
    }
}

/// Fetches what is missing from the cache; returns the snapshot and the files.
fn download(
    hub: &Hub,
    cache: &RepoCache,
    repo: &str,
    revision: &str,
    suffix: &str,
    reporter: &Reporter,
) -> Result<(PathBuf, Vec<String>), PullError> {
    let info = hub.repo_info(repo, revision)?;
    let commit = info
        .sha
        .filter(|c| cache::is_commit(c))
        .ok_or_else(|| PullError::Protocol {
            url: format!("{}/api/models/{repo}", hub.endpoint),
            message: "no commit sha in the repository info".into(),
        })?;
    let listed: Vec<String> = info
        .siblings
        .iter()
        .map(|s| s.rfilename.clone())
        .filter(|f| is_safe_relative(f))
        .collect();
    let wanted = names::select(repo, &listed, suffix)?;
    let mut plan = Vec::new();
    for f in &wanted {
        let sibling = info
            .siblings
            .iter()
            .find(|s| &s.rfilename == f)
            .ok_or_else(|| PullError::Protocol {
                url: repo.to_owned(),
                message: format!("{f} vanished from the listing"),
            })?;
        plan.push((f.clone(), expected(repo, sibling)?));
    }
    let total: u64 = plan.iter().map(|(_, e)| e.size).sum();
    reporter.info(&format!(
        "{repo}@{}: {} files, {} for the {} variant",
        &commit[..12],
        plan.len(),
        indicatif::HumanBytes(total),
        naming::variant_name(suffix)
    ));
    cache.tag_cache_dir();
    cache.write_ref(revision, &commit)?;
    let (mut fetched, mut fetched_bytes, mut reused) = (0, 0, 0);
    for (file, expected) in &plan {
        if cache
            .cached(&commit, file)
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| m.len() == expected.size)
        {
            reused += 1;
            continue;
        }
        // A blob is named by its ETag, which for the Hub is the LFS sha256 or the
        // git blob id: when that blob is there, only the pointer is missing.
        let known = match &expected.digest {
            Digest::Sha256(h) | Digest::GitSha1(h) => h.clone(),
        };
        if std::fs::metadata(cache.blob(&known)).is_ok_and(|m| m.len() == expected.size) {
            cache.link(&commit, file, &known)?;
            reused += 1;
            continue;
        }
        let meta = hub.file_meta(repo, &commit, file)?;
        if let Some(c) = meta.commit.as_ref().filter(|c| **c != commit) {
            return Err(PullError::Protocol {
                url: meta.location.clone(),
                message: format!("{file} resolved to commit {c}, not {commit}"),
            });
        }
        if let Some(size) = meta.size
            && size != expected.size
        {
            return Err(PullError::SizeMismatch {
                file: file.clone(),
                expected: expected.size,
                actual: size,
            });
        }
        download::fetch(hub, cache, file, &meta, expected, reporter)?;
        cache.link(&commit, file, &meta.etag)?;
        fetched += 1;
        fetched_bytes += expected.size;
    }
    reporter.info(&format!(
        "{fetched} files downloaded ({}), {reused} already in the cache {}",
        indicatif::HumanBytes(fetched_bytes),
        cache.root().display()
    ));
    Ok((cache.snapshot(&commit), wanted))
}

/// Every file under `dir`, as relative paths with `/`.
fn list_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file()
                && let Ok(rel) = path.strip_prefix(dir)
            {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// The model from the cache alone (offline, or the Hub unreachable).
fn from_cache(
    cache: &RepoCache,
    repo: &str,
    revision: &str,
    suffix: &str,
) -> Result<(PathBuf, Vec<String>), PullError> {
    let not_cached = |missing: Vec<String>| PullError::NotCached {
        repo: repo.to_owned(),
        revision: revision.to_owned(),
        cache: cache.root().to_path_buf(),
        missing,
    };
    let commit = cache
        .commit_of(revision)
        .ok_or_else(|| not_cached(vec![]))?;
    let snapshot = cache.snapshot(&commit);
    let present = list_files(&snapshot);
    match names::select(repo, &present, suffix) {
        Ok(files) => Ok((snapshot, files)),
        Err(PullError::MissingVariant { missing, .. })
        | Err(PullError::NotFlorenceLayout { missing, .. }) => Err(not_cached(missing)),
        Err(e) => Err(e),
    }
}

/// Makes `dir` a model directory holding `files` of `snapshot`: hard links to
/// the cache's blobs where possible (no second copy), else copies; each file
/// placed by a rename, so a reader never sees a partial one.
fn lay_out(snapshot: &Path, files: &[String], dir: &Path) -> Result<(), PullError> {
    use std::os::unix::fs::MetadataExt;
    for f in files {
        let src = std::fs::canonicalize(snapshot.join(f))
            .map_err(|e| PullError::io(snapshot.join(f), e))?;
        let dst = dir.join(f);
        let src_meta = std::fs::metadata(&src).map_err(|e| PullError::io(&src, e))?;
        if std::fs::symlink_metadata(&dst)
            .is_ok_and(|m| m.dev() == src_meta.dev() && m.ino() == src_meta.ino())
        {
            continue;
        }
        let parent = dst.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent).map_err(|e| PullError::io(parent, e))?;
        let tmp = parent.join(format!(
            ".{}.{}.tmp",
            dst.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        if std::fs::hard_link(&src, &tmp).is_err() {
            std::fs::copy(&src, &tmp).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                PullError::io(&tmp, e)
            })?;
        }
        std::fs::rename(&tmp, &dst).map_err(|e| PullError::io(&dst, e))?;
    }
    Ok(())
}

/// Opens the directory exactly as the engine does (config files, tokenizer,
/// the four graphs with their signatures) without running it.
fn validate(dir: &Path, suffix: &str, ort_library: Option<PathBuf>) -> Result<(), PullError> {
    let options = SessionOptions {
        variant: suffix.to_owned(),
        intra_threads: 1,
        ort_library,
        vision_cache: false,
        ..SessionOptions::default()
    };
    Florence::load(dir, options).map_err(|source| PullError::Invalid {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// A model directory as configured: an existing path as it is; otherwise a
/// short name or Hub repository id, found in the Hub cache (its `main`).
pub fn resolve_model_dir(spec: &Path) -> Result<PathBuf, PullError> {
    if spec.exists() {
        return Ok(spec.to_path_buf());
    }
    let Some(text) = spec.to_str() else {
        return Ok(spec.to_path_buf());
    };
    let Ok(repo) = names::repo_id(text) else {
        return Ok(spec.to_path_buf());
    };
    let settings = HubSettings::from_env();
    let cache = RepoCache::new(&settings.cache_dir, &repo);
    match cache.commit_of("main").map(|c| cache.snapshot(&c)) {
        Some(snapshot) if snapshot.is_dir() => Ok(snapshot),
        _ => Err(PullError::NoModel {
            spec: text.to_owned(),
            repo,
            cache: settings.cache_dir,
        }),
    }
}
