//! `florenced run --draw DIR`: each input written as a PNG with its result
//! drawn on it, checked pixel by pixel against the input and the printed
//! result.

mod common;

use std::path::Path;
use std::process::Command;

use common::process::succeed;
use common::root;
use common::scratch::Scratch;
use serde_json::Value;

const IMAGE: &str = "tests/fixtures/images/scene_640x480.png";

fn run(dir: &Path, args: &[&str], images: &[&str]) -> Vec<Value> {
    let out = succeed(
        Command::new(env!("CARGO_BIN_EXE_florenced"))
            .current_dir(root())
            .args(["run", "--model-dir", "tests/fixtures/tiny-florence2"])
            .args(["--threads", "1", "--draw"])
            .arg(dir)
            .args(args)
            .args(images),
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn png(path: &str) -> image::RgbImage {
    image::open(path).unwrap().to_rgb8()
}

#[test]
fn detections_are_outlined_where_the_result_puts_them() {
    let scratch = Scratch::new("draw-od");
    let dir = scratch.path().join("drawn");
    // The same input twice: two files, neither replacing the other.
    let lines = run(&dir, &["--task", "od"], &[IMAGE, IMAGE]);
    let files: Vec<&str> = lines.iter().map(|l| l["drawn"].as_str().unwrap()).collect();
    assert_eq!(
        files,
        [
            dir.join("scene_640x480.png").to_str().unwrap(),
            dir.join("scene_640x480-2.png").to_str().unwrap()
        ]
    );
    let input = png(&root().join(IMAGE).display().to_string());
    let drawn = png(files[0]);
    assert_eq!(drawn.dimensions(), input.dimensions());
    assert_eq!(drawn, png(files[1]));

    let b = common::drawn::first_box(&lines[0]["result"]["bboxes"]);
    common::drawn::assert_outlined(&input, &drawn, b);
    let [x1, y1, _, y2] = b;
    let mid_y = (y1 + y2) / 2;
    // The label's tag: the outline's colour at the box's top-left corner.
    assert_eq!(drawn.get_pixel(x1 + 1, y1 + 1), drawn.get_pixel(x1, mid_y));
}

#[test]
fn a_caption_is_written_along_the_bottom() {
    let scratch = Scratch::new("draw-caption");
    let lines = run(scratch.path(), &["--num-beams", "1"], &[IMAGE]);
    let input = png(&root().join(IMAGE).display().to_string());
    let drawn = png(lines[0]["drawn"].as_str().unwrap());
    let (w, h) = drawn.dimensions();
    // The band darkens the bottom; the top is untouched.
    let bottom = (drawn.get_pixel(w - 2, h - 2), input.get_pixel(w - 2, h - 2));
    assert!(
        (0..3).all(|c| bottom.0[c] < bottom.1[c] || bottom.1[c] == 0),
        "{bottom:?}"
    );
    assert_eq!(drawn.get_pixel(w / 2, 2), input.get_pixel(w / 2, 2));
    // White glyphs somewhere in the band.
    assert!(
        (h - 40..h).any(|y| (0..w).any(|x| drawn.get_pixel(x, y).0.iter().all(|&c| c > 200))),
        "no text in the band"
    );
}

#[test]
fn a_folder_that_cannot_be_made_is_a_clear_error() {
    let scratch = Scratch::new("draw-bad");
    let file = scratch.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_florenced"))
        .current_dir(root())
        .args([
            "run",
            "--model-dir",
            "tests/fixtures/tiny-florence2",
            "--draw",
        ])
        .arg(file.join("drawn"))
        .arg(IMAGE)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot make the drawing folder"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
