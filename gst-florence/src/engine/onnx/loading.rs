//! Opening several graphs of a model side by side.
//!
//! Opening a graph is one thread's work (reading the graph, mapping its
//! weights, packing them for the matrix kernels), and the four graphs do not
//! depend on each other: on two cores the merged decoder loads while the
//! vision encoder, the text encoder and the embedding load beside it. With the
//! graph cache in place this took the base-sized model's load from the sum of
//! the four to about the decoder's alone (docs: performance, "Cold start").

use std::sync::atomic::{AtomicUsize, Ordering};

use ort::session::Session;
use parking_lot::Mutex;

use super::error::OnnxError;
use super::graph_cache::GraphSource;
use super::runtime::Runtime;
use super::session::{self, SessionOptions};
use super::signature::Graph;
use crate::engine::config::ModelFiles;

/// One graph, opened.
pub(crate) struct OpenedGraph {
    pub graph: Graph,
    pub session: Session,
    pub source: GraphSource,
}

/// What one graph's opening came to.
type Outcome = Result<(Session, GraphSource), OnnxError>;

/// How many graphs open at once: one per physical core (as the intra-op
/// pool), so loading never takes turns on a core with itself.
pub(crate) fn loaders() -> usize {
    crate::engine::cpus::default_threads()
}

/// Opens `graphs` on up to `workers` threads (this one included), each
/// taking the next graph in `graphs`' order, and returns them in that order.
/// A failure stops the graphs not yet started; the error returned is that of
/// the first failed graph in `graphs`' order, as when they open one by one.
pub(crate) fn open_graphs(
    runtime: &Runtime,
    files: &ModelFiles,
    graphs: &[Graph],
    options: &SessionOptions,
    workers: usize,
) -> Result<Vec<OpenedGraph>, OnnxError> {
    let next = AtomicUsize::new(0);
    let outcomes: Vec<Mutex<Option<Outcome>>> = graphs.iter().map(|_| Mutex::new(None)).collect();
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&graph) = graphs.get(i) else {
                break;
            };
            let outcome = session::open_graph_from(runtime, files, graph, options);
            if outcome.is_err() {
                next.fetch_max(graphs.len(), Ordering::Relaxed);
            }
            *outcomes[i].lock() = Some(outcome);
        }
    };
    std::thread::scope(|scope| {
        let mut loaders = Vec::new();
        for _ in 1..workers.clamp(1, graphs.len().max(1)) {
            // A thread that cannot start leaves its share to the others.
            match std::thread::Builder::new()
                .name("florence-load".into())
                .spawn_scoped(scope, work)
            {
                Ok(loader) => loaders.push(loader),
                Err(e) => {
                    tracing::warn!("cannot start a graph loading thread ({e}); loading on fewer");
                    break;
                }
            }
        }
        work();
        // Joined, not only waited for as the scope would: the threads have
        // ended when the model is returned (the scope's own wait ends when
        // their work does, before the threads themselves exit).
        for loader in loaders {
            if let Err(panic) = loader.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    let mut opened = Vec::with_capacity(graphs.len());
    for (&graph, outcome) in graphs.iter().zip(outcomes) {
        match outcome.into_inner() {
            Some(Ok((session, source))) => opened.push(OpenedGraph {
                graph,
                session,
                source,
            }),
            Some(Err(e)) => return Err(e),
            // Not started: graphs are taken in order, so one earlier in the
            // order failed, and its error was returned above.
            None => continue,
        }
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;
    use florence_test_support::scratch::Scratch;

    const ORDER: [Graph; 4] = [
        Graph::DecoderMerged,
        Graph::Encoder,
        Graph::EmbedTokens,
        Graph::VisionEncoder,
    ];

    /// No graph cache: nothing is written outside the test's own directory.
    fn options() -> SessionOptions {
        SessionOptions {
            intra_threads: 1,
            graph_cache: None,
            ..SessionOptions::default()
        }
    }

    fn open(dir: &std::path::Path, workers: usize) -> Result<Vec<OpenedGraph>, OnnxError> {
        let runtime = super::super::runtime::runtime(None).unwrap();
        let files = ModelFiles::load(dir).unwrap();
        open_graphs(&runtime, &files, &ORDER, &options(), workers)
    }

    #[test]
    fn every_graph_comes_back_in_the_order_asked_whatever_the_threads() {
        let scratch = Scratch::new("loading-order");
        let dir = scratch.model("tiny");
        for workers in [1, 2, 4, 8] {
            let opened = open(&dir, workers).unwrap();
            let graphs: Vec<Graph> = opened.iter().map(|o| o.graph).collect();
            assert_eq!(graphs, ORDER, "{workers} workers");
            assert!(
                opened.iter().all(|o| o.source == GraphSource::Model),
                "{workers} workers: no cache, every graph from its model file"
            );
            for o in &opened {
                let inputs = o.session.inputs();
                assert!(!inputs.is_empty(), "{:?} opened as a session", o.graph);
            }
        }
    }

    #[test]
    fn the_error_is_the_first_failed_graph_in_the_order_as_one_by_one() {
        let scratch = Scratch::new("loading-failure");
        let dir = scratch.model("tiny");
        // The encoder a valid graph with the decoder's signature (its error comes
        // after a whole load), the vision encoder (last) missing (its error
        // comes at once): one by one the encoder's error is the one, and so it
        // must be when the vision encoder fails beside it first.
        let encoder = dir.join("onnx/encoder_model.onnx");
        std::fs::remove_file(&encoder).unwrap();
        std::os::unix::fs::symlink(dir.join("onnx/decoder_model_merged.onnx"), &encoder).unwrap();
        std::fs::remove_file(dir.join("onnx/vision_encoder.onnx")).unwrap();
        for workers in [1, 2, 4] {
            match open(&dir, workers) {
                Err(OnnxError::Signature { graph, .. }) => {
                    assert_eq!(graph, Graph::Encoder, "{workers} workers")
                }
                Err(e) => panic!("{workers} workers: not the encoder's error: {e}"),
                Ok(_) => panic!("{workers} workers: a model without its vision encoder opened"),
            }
        }
    }
}
