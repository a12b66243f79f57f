//! The optimised-graph cache: saved once, used afterwards, rebuilt when damaged,
//! never in the way when it cannot be written, and emptied of dead models.

mod common;

use std::path::{Path, PathBuf};

use gstflorence::engine::SessionOptions;
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::onnx::graph_cache::GraphSource;
use gstflorence::engine::task::Task;
use gstflorence::engine::{Florence, Request};

use common::model_copies::copy_dir;
use common::{fixtures, tiny_model_dir};

/// The graphs the tiny model loads: the vision encoder, the embedding, the text
/// encoder and the batchable decoder's two (which replace the merged decoder).
const GRAPHS: usize = 5;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("graph-cache-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load(model: &Path, cache: Option<PathBuf>) -> Florence {
    Florence::load(
        model,
        SessionOptions {
            intra_threads: 1,
            graph_cache: cache,
            ..SessionOptions::default()
        },
    )
    .unwrap()
}

fn sources(f: &Florence) -> Vec<GraphSource> {
    f.graph_sources().iter().map(|(_, s)| *s).collect()
}

/// Ids of a detailed caption on two fixture images.
fn ids(f: &Florence) -> Vec<Vec<u32>> {
    ["scene_640x480", "text_512x256"]
        .iter()
        .map(|name| {
            let img = image_io::read(
                &fixtures().join(format!("images/{name}.png")),
                &ImageLimits::default(),
            )
            .unwrap();
            f.run(&img, &Request::new(Task::MoreDetailedCaption))
                .unwrap()
                .ids
        })
        .collect()
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn saved_once_then_loaded_from_the_cache_with_the_same_output() {
    let cache = scratch("reuse");
    let want = ids(&load(&tiny_model_dir(), None));

    let first = load(&tiny_model_dir(), Some(cache.clone()));
    assert_eq!(sources(&first), [GraphSource::Saved; GRAPHS]);
    assert_eq!(ids(&first), want);
    drop(first);
    let made = entries(&cache);
    assert_eq!(
        made.len(),
        GRAPHS,
        "one entry per graph, nothing half-written: {made:?}"
    );
    for e in &made {
        assert!(e.join("graph.onnx").is_file() && e.join("graph.data").is_file());
    }

    let second = load(&tiny_model_dir(), Some(cache.clone()));
    assert_eq!(sources(&second), [GraphSource::Cached; GRAPHS]);
    assert_eq!(ids(&second), want);
    assert_eq!(entries(&cache), made);
}

#[test]
fn a_damaged_entry_is_rebuilt() {
    let cache = scratch("damaged");
    drop(load(&tiny_model_dir(), Some(cache.clone())));
    let vision = entries(&cache)
        .into_iter()
        .find(|e| {
            e.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vision_encoder-")
        })
        .unwrap();
    let graph = vision.join("graph.onnx");
    let bytes = std::fs::read(&graph).unwrap();
    std::fs::write(&graph, &bytes[..bytes.len() / 2]).unwrap();

    let f = load(&tiny_model_dir(), Some(cache.clone()));
    let mut want = [GraphSource::Cached; GRAPHS];
    want[0] = GraphSource::Saved;
    assert_eq!(
        sources(&f),
        want,
        "only the vision encoder's entry saved again"
    );
    assert_eq!(ids(&f), ids(&load(&tiny_model_dir(), None)));
    drop(f);
    let again = load(&tiny_model_dir(), Some(cache.clone()));
    assert_eq!(
        sources(&again),
        [GraphSource::Cached; GRAPHS],
        "rebuilt in place"
    );
}

#[test]
fn a_cache_that_cannot_be_written_is_not_an_error() {
    let dir = scratch("unwritable");
    // A regular file where the cache directory should be.
    let cache = dir.join("file");
    std::fs::write(&cache, b"not a directory").unwrap();
    let f = load(&tiny_model_dir(), Some(cache.join("graphs")));
    assert_eq!(sources(&f), [GraphSource::Model; GRAPHS]);
    assert_eq!(ids(&f), ids(&load(&tiny_model_dir(), None)));
}

#[test]
fn entries_of_a_deleted_model_go_at_the_next_save() {
    let cache = scratch("sweep");
    let copies = scratch("sweep-models");
    let copy = copies.join("tiny");
    copy_dir(&tiny_model_dir(), &copy);
    drop(load(&copy, Some(cache.clone())));
    assert_eq!(entries(&cache).len(), GRAPHS);
    std::fs::remove_dir_all(&copy).unwrap();

    drop(load(&tiny_model_dir(), Some(cache.clone())));
    let left = entries(&cache);
    assert_eq!(
        left.len(),
        GRAPHS,
        "only the live model's entries: {left:?}"
    );
}
