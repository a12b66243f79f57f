//! A scratch directory for one test (model directories, a configuration file,
//! a graph cache), removed when dropped: a `tempfile` directory, so names
//! never collide between tests or runs.

use std::path::{Path, PathBuf};

/// The directory's path, and the directory itself (removed when dropped).
pub struct Scratch(pub PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Scratch {
    /// A new empty directory whose name starts with `florence-NAME-`.
    pub fn new(name: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("florence-{name}-"))
            .tempdir()
            .expect("a scratch directory in the temporary directory");
        Scratch(dir.path().to_path_buf(), dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A model directory named `name` whose files link to the tiny model's.
    pub fn model(&self, name: &str) -> PathBuf {
        let dir = self.path().join(name);
        super::model_copies::link_tree(&super::tiny_model_dir(), &dir);
        dir
    }

    /// A model directory named `name` holding copies of the tiny model's
    /// files, to damage in place.
    pub fn model_copy(&self, name: &str) -> PathBuf {
        let dir = self.path().join(name);
        super::model_copies::copy_dir(&super::tiny_model_dir(), &dir);
        dir
    }

    /// `florenced.yaml` in the directory, holding `text`.
    pub fn config(&self, text: &str) -> PathBuf {
        let path = self.path().join("florenced.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }
}
