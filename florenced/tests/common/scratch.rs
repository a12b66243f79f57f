//! A scratch directory for one test (model directories, a configuration file,
//! a graph cache), removed when dropped.

use std::path::{Path, PathBuf};

use super::model_dir;

pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("florenced-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A model directory named `name` whose files link to the tiny model's.
    pub fn model(&self, name: &str) -> PathBuf {
        let dir = self.0.join(name);
        link_tree(&model_dir(), &dir);
        dir
    }

    /// A model directory named `name` holding copies of the tiny model's
    /// files, to damage in place.
    pub fn model_copy(&self, name: &str) -> PathBuf {
        let dir = self.0.join(name);
        super::model_copies::copy_dir(&model_dir(), &dir);
        dir
    }

    pub fn config(&self, text: &str) -> PathBuf {
        let path = self.0.join("florenced.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn link_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            link_tree(&entry.path(), &target);
        } else {
            std::os::unix::fs::symlink(entry.path(), target).unwrap();
        }
    }
}
