//! The Hugging Face cache layout, shared with Python's huggingface_hub:
//! `<cache>/models--owner--name/{blobs/<etag>, snapshots/<commit>/<file> ->
//! ../../blobs/<etag>, refs/<revision>}` and `<cache>/.locks/models--owner--name/<etag>.lock`.
//! The layout is three path rules, written here rather than taken from the
//! hf-hub crate, which brought its own HTTP client and API for them.

use std::path::{Component, Path, PathBuf};

use super::error::PullError;

pub struct RepoCache {
    root: PathBuf,
    /// `models--owner--name`, as huggingface_hub names a model repository's folder.
    folder_name: String,
}

/// A 40-hex-digit revision is a commit: it needs no ref.
pub fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A path inside a repository: relative, no `..`, nothing that escapes the snapshot.
pub fn is_safe_relative(file: &str) -> bool {
    !file.is_empty()
        && !file.contains('\\')
        && Path::new(file)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Writes `bytes` to `path` through a temporary file renamed over it, so a
/// reader sees the old content or the new, never a mix.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PullError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| PullError::io(dir, e))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).map_err(|e| PullError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| PullError::io(path, e))
}

impl RepoCache {
    pub fn new(cache_dir: &Path, repo_id: &str) -> RepoCache {
        RepoCache {
            root: cache_dir.to_path_buf(),
            folder_name: format!("models--{}", repo_id.replace('/', "--")),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn folder(&self) -> PathBuf {
        self.root.join(&self.folder_name)
    }

    pub fn blob(&self, etag: &str) -> PathBuf {
        self.folder().join("blobs").join(etag)
    }

    /// Where a download in progress lives: next to its blob, so the final
    /// rename is atomic (same directory, same file system).
    pub fn incomplete(&self, etag: &str) -> PathBuf {
        let mut p = self.blob(etag).into_os_string();
        p.push(".incomplete");
        p.into()
    }

    /// The lock huggingface_hub takes for the same blob (a `flock` on this file).
    pub fn lock_path(&self, etag: &str) -> PathBuf {
        self.root
            .join(".locks")
            .join(&self.folder_name)
            .join(format!("{etag}.lock"))
    }

    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.folder().join("snapshots").join(commit)
    }

    /// The commit a revision points to in the cache (a commit names itself).
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        if is_commit(revision) {
            return Some(revision.to_owned());
        }
        let text = std::fs::read_to_string(self.folder().join("refs").join(revision)).ok()?;
        let commit = text.trim();
        is_commit(commit).then(|| commit.to_owned())
    }

    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), PullError> {
        if revision == commit {
            return Ok(());
        }
        write_atomic(
            &self.folder().join("refs").join(revision),
            commit.as_bytes(),
        )
    }

    /// The file of a cached snapshot, if its pointer leads to a blob.
    pub fn cached(&self, commit: &str, file: &str) -> Option<PathBuf> {
        let p = self.snapshot(commit).join(file);
        p.is_file().then_some(p)
    }

    /// Points `snapshots/<commit>/<file>` at `blobs/<etag>` with a relative
    /// symlink (as huggingface_hub does), replacing any older pointer atomically.
    pub fn link(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf, PullError> {
        let pointer = self.snapshot(commit).join(file);
        let dir = pointer.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| PullError::io(dir, e))?;
        // From the pointer's directory up to the repository folder: snapshots/<commit>/ plus
        // one level per directory in `file`.
        let depth = 2 + Path::new(file).components().count() - 1;
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(etag);
        if std::fs::read_link(&pointer).is_ok_and(|t| t == target) {
            return Ok(pointer);
        }
        let tmp = dir.join(format!(
            ".{}.{}.link",
            pointer.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp).map_err(|e| PullError::io(&tmp, e))?;
        std::fs::rename(&tmp, &pointer).map_err(|e| PullError::io(&pointer, e))?;
        Ok(pointer)
    }

    /// Marks the cache as one for backup tools to skip, as huggingface_hub does.
    pub fn tag_cache_dir(&self) {
        let tag = self.root.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = std::fs::write(
                tag,
                "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by florenced (Hugging Face hub cache).\n",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_hugging_face_layout() {
        let c = RepoCache::new(Path::new("/c"), "onnx-community/Florence-2-base");
        assert_eq!(
            c.blob("abc"),
            PathBuf::from("/c/models--onnx-community--Florence-2-base/blobs/abc")
        );
        assert_eq!(
            c.incomplete("abc"),
            PathBuf::from("/c/models--onnx-community--Florence-2-base/blobs/abc.incomplete")
        );
        assert_eq!(
            c.lock_path("abc"),
            PathBuf::from("/c/.locks/models--onnx-community--Florence-2-base/abc.lock")
        );
        assert_eq!(
            c.snapshot("0123"),
            PathBuf::from("/c/models--onnx-community--Florence-2-base/snapshots/0123")
        );
    }

    #[test]
    fn pointers_are_relative_symlinks_to_blobs() {
        let scratch = florence_test_support::scratch::Scratch::new("cache");
        let c = RepoCache::new(scratch.path(), "a/b");
        let commit = "0".repeat(40);
        std::fs::create_dir_all(c.blob("e").parent().unwrap()).unwrap();
        std::fs::write(c.blob("e"), b"x").unwrap();
        let p = c.link(&commit, "onnx/m.onnx", "e").unwrap();
        assert_eq!(
            std::fs::read_link(&p).unwrap(),
            PathBuf::from("../../../blobs/e")
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
        let p = c.link(&commit, "config.json", "e").unwrap();
        assert_eq!(
            std::fs::read_link(&p).unwrap(),
            PathBuf::from("../../blobs/e")
        );
        c.write_ref("main", &commit).unwrap();
        assert_eq!(c.commit_of("main").as_deref(), Some(commit.as_str()));
        assert_eq!(c.commit_of("other"), None);
    }

    #[test]
    fn repository_paths_cannot_escape() {
        assert!(is_safe_relative("onnx/a.onnx"));
        for bad in ["", "../x", "onnx/../../x", "/etc/passwd", "a\\b", "./a"] {
            assert!(!is_safe_relative(bad), "{bad:?}");
        }
    }
}
