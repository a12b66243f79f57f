//! Heap allocations the engine's own (Rust) code makes per generated token in
//! steady state, greedy and with 3 beams: the difference between a 40-token
//! and a 10-token caption of the same image (vision features cached, so only
//! the decoder loop differs), divided by 30. ONNX Runtime's own allocations
//! (its arena, C++) are not counted: they do not go through Rust's allocator.
//!
//! cargo bench -p gst-florence --bench allocations [-- MODEL_DIR]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use gstflorence::engine::SessionOptions;
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::task::Task;
use gstflorence::engine::{Florence, Request};

/// The system allocator, counting allocations and their bytes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: allocated above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as GlobalAlloc::realloc requires.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and bytes of one caption of `tokens` new tokens.
fn measure(florence: &Florence, image: &RgbImage, beams: usize, tokens: usize) -> (u64, u64) {
    let mut req = Request::new(Task::Caption);
    req.options.max_new_tokens = Some(tokens);
    req.options.min_new_tokens = Some(tokens);
    req.options.num_beams = Some(beams);
    let (a, b) = (
        ALLOCATIONS.load(Ordering::SeqCst),
        BYTES.load(Ordering::SeqCst),
    );
    let out = florence.run(image, &req).expect("run");
    assert!(out.timings.vision_cached, "the vision features were cached");
    (
        ALLOCATIONS.load(Ordering::SeqCst) - a,
        BYTES.load(Ordering::SeqCst) - b,
    )
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or_else(|| root.join("tests/fixtures/tiny-florence2"), PathBuf::from);
    let florence = Florence::load(&model, SessionOptions::default()).expect("model");
    let image = image_io::read(
        &root.join("tests/fixtures/images/scene_640x480.png"),
        &ImageLimits::default(),
    )
    .expect("image");
    println!("model {}", model.display());
    for beams in [1, 3] {
        // Warm-up: the vision features are cached from here on.
        let mut req = Request::new(Task::Caption);
        req.options.num_beams = Some(beams);
        florence.run(&image, &req).expect("warm-up");
        let (short_a, short_b) = measure(&florence, &image, beams, 10);
        let (long_a, long_b) = measure(&florence, &image, beams, 40);
        println!(
            "{beams} beam(s): {:.1} allocations and {:.1} KiB per token (caption of 10 tokens: {short_a} allocations, {:.0} KiB; 40 tokens: {long_a}, {:.0} KiB)",
            (long_a as f64 - short_a as f64) / 30.0,
            (long_b as f64 - short_b as f64) / 30.0 / 1024.0,
            short_b as f64 / 1024.0,
            long_b as f64 / 1024.0,
        );
    }
}
