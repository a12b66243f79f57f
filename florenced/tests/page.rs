//! GET /, the page, in a real browser: headless Chromium (Debian's) driven by
//! Playwright chooses an image and a task, and the screenshot of the picture
//! shows the answer's regions where the answer puts them. The page follows
//! the service's API key (here) and Host checks (connections.rs).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::process::succeed;
use common::scratch::Scratch;
use common::*;
use serde_json::Value;

const IMAGE: &str = "tests/fixtures/images/scene_640x480.png";

/// What page_check.py saw: the answer shown, the status line, console errors.
fn drive(d: &Daemon, task: &str, text: &str, key: &str, shot: &PathBuf) -> Value {
    let python = root().join(".test-venv/bin/python");
    assert!(
        python.exists(),
        "run scripts/setup.sh (it installs Playwright into .test-venv)"
    );
    let out = succeed(
        Command::new(python)
            .arg(root().join("florenced/tests/python/page_check.py"))
            .arg(format!("http://{}/", d.addr))
            .arg(root().join(IMAGE))
            .args([task, text, key])
            .arg(shot),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_page_draws_the_answers_regions_on_the_picture() {
    let scratch = Scratch::new("page");
    let d = Spawn::new().set("api_key=sesame").ready();

    // The page itself is public; inference needs the key.
    let r = d.get("/");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(
        r.text()
            .contains("<option value=\"od\" selected>&lt;OD&gt;</option>")
    );

    let refused = drive(&d, "od", "", "", &scratch.path().join("refused.png"));
    assert_eq!(refused["answer"]["error"], "unauthorized", "{refused}");

    let shot = scratch.path().join("od.png");
    let seen = drive(&d, "od", "", "sesame", &shot);
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    let input = image::open(root().join(IMAGE)).unwrap().to_rgb8();
    let drawn = image::open(&shot).unwrap().to_rgb8();
    let b = common::drawn::first_box(&seen["answer"]["result"]["<OD>"]["bboxes"]);
    common::drawn::assert_outlined(&input, &drawn, b);

    // A caption shows as text, nothing drawn over the picture.
    let shot = scratch.path().join("caption.png");
    let seen = drive(&d, "caption", "", "sesame", &shot);
    assert!(seen["answer"]["result"]["<CAPTION>"].is_string(), "{seen}");
    assert_eq!(image::open(&shot).unwrap().to_rgb8(), input);
}
