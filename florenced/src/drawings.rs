//! `florenced run --draw DIR`: each input written again as a PNG with its
//! result drawn on it (gst-florence's `draw`), one file per input even when
//! two inputs share a name.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use gstflorence::engine::postprocess::TaskResult;
use gstflorence::engine::preprocess::RgbImage;

pub struct Drawings {
    dir: PathBuf,
    written: HashSet<PathBuf>,
}

impl Drawings {
    /// Writes into `dir`, made if missing.
    pub fn new(dir: PathBuf) -> anyhow::Result<Drawings> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot make the drawing folder {}", dir.display()))?;
        Ok(Drawings {
            dir,
            written: HashSet::new(),
        })
    }

    /// DIR/<stem>.png, or <stem>-2.png, -3, ... when this run already wrote
    /// that name (a/x.jpg and b/x.jpg): no drawing replaces another.
    fn file_for(&mut self, input: &Path) -> PathBuf {
        let stem = input
            .file_stem()
            .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
        let mut file = self.dir.join(format!("{stem}.png"));
        let mut n = 1;
        while self.written.contains(&file) {
            n += 1;
            file = self.dir.join(format!("{stem}-{n}.png"));
        }
        self.written.insert(file.clone());
        file
    }

    /// Draws `result` on `image` (read from `input`) and writes it; returns the file.
    pub fn write(
        &mut self,
        input: &Path,
        image: &RgbImage,
        result: &TaskResult,
    ) -> anyhow::Result<PathBuf> {
        let file = self.file_for(input);
        gstflorence::draw::annotate(image, result)
            .save_with_format(&file, image::ImageFormat::Png)
            .with_context(|| format!("cannot write {}", file.display()))?;
        Ok(file)
    }
}
