//! The pipelines/ examples, run as a user runs them (gst-launch-1.0 with the
//! built plugin), with videotestsrc, a file or a local UDP sender standing in
//! for the camera.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::succeed;
use common::scratch::Scratch;
use common::{plugin_dir, root, tiny_engine};
use gstflorence::engine::Request;
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::task::Task;

fn tmp(name: &str) -> Scratch {
    Scratch::new(&format!("pipelines-{name}"))
}

fn script(name: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg(root().join("pipelines").join(name))
        .current_dir(root())
        .env("GST_PLUGIN_PATH", plugin_dir());
    c
}

fn gst_launch(pipeline: &str) {
    succeed(
        Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace()),
    );
}

#[test]
fn camera_example_draws_live_captions_with_textoverlay() {
    let scratch = tmp("camera");
    let frames = scratch.path();
    let out = succeed(
        script("camera-textoverlay.sh")
        .env(
            "FLORENCE_SOURCE",
            "videotestsrc is-live=true num-buffers=150 pattern=black",
        )
        .env("FLORENCE_INTERVAL", "200")
        .env(
            "FLORENCE_SINK",
            format!(
                "videoconvert ! video/x-raw,format=GRAY8 ! multifilesink location={}/f%03d.gray",
                frames.display()
            ),
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("florence-caption"),
        "no caption messages: {stdout}"
    );
    // Every frame came out; the first (before any caption) is black, later ones carry text.
    let bright = |i: usize| -> usize {
        let f = std::fs::read(frames.join(format!("f{i:03}.gray"))).unwrap();
        assert_eq!(f.len(), 640 * 480);
        f.iter().filter(|&&b| b > 128).count()
    };
    assert!(
        frames.join("f149.gray").is_file(),
        "not all 150 frames came out"
    );
    assert_eq!(bright(0), 0);
    let shown: Vec<bool> = (0..150).map(|i| bright(i) > 200).collect();
    // 5 s of video: a hang guard's margin for the first caption, not a speed claim.
    let first = shown
        .iter()
        .position(|&s| s)
        .expect("no frame shows a caption");
    // Once a caption is up it stays up: each text lasts until the next one
    // is due. A text blinked off for 2 of every 7 frames (29 %) before that
    // was fixed; a load spike that delays one analysis past its margin may
    // still blank a frame or two, which is not what this guards.
    let after = &shown[first..];
    let blank = after.iter().filter(|&&s| !s).count();
    assert!(
        blank * 100 <= after.len() * 15,
        "{blank} of {} frames without a caption after frame {first}: {shown:?}",
        after.len()
    );
    let _ = std::fs::remove_dir_all(frames);
}

fn read_rgb(path: &Path, w: u32, h: u32) -> RgbImage {
    let data = std::fs::read(path).unwrap();
    let stride = (w as usize * 3).div_ceil(4) * 4;
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for row in data.chunks(stride).take(h as usize) {
        rgb.extend_from_slice(&row[..w as usize * 3]);
    }
    RgbImage::from_rgb(w, h, rgb).unwrap()
}

#[test]
fn file_example_writes_an_srt_with_the_engines_captions() {
    let scratch = tmp("srt");
    let dir = scratch.path();
    let video = dir.join("in.avi");
    gst_launch(&format!(
        "videotestsrc num-buffers=180 pattern=smpte ! video/x-raw,width=320,height=240,framerate=30/1 ! jpegenc ! avimux ! filesink location={}",
        video.display()
    ));
    let srt = dir.join("out.srt");
    succeed(script("file-to-srt.sh").arg(&video).arg(&srt));
    let text = std::fs::read_to_string(&srt).unwrap();
    let entries: Vec<Vec<&str>> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| e.lines().collect())
        .collect();
    assert!(entries.len() >= 3, "{text}");
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e[0], (i + 1).to_string(), "{text}");
        let start = format!("00:00:{:02},000", i * 2);
        let end = format!("00:00:{:02},000", i * 2 + 2);
        assert_eq!(e[1], format!("{start} --> {end}"), "{text}");
        assert!(!e[2].trim().is_empty(), "{text}");
    }
    // The first entry is the engine's caption of the first frame, decoded the same way.
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    gst_launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! identity eos-after=2 ! multifilesink location={}/%d.rgb",
        video.display(),
        frames.display()
    ));
    let first = read_rgb(&frames.join("0.rgb"), 320, 240);
    let want = tiny_engine()
        .run(&first, &Request::new(Task::Caption))
        .unwrap();
    assert_eq!(entries[0][2], want.result.text());
    let _ = std::fs::remove_dir_all(dir);

    let bad = script("file-to-srt.sh")
        .arg("/nonexistent.mp4")
        .arg(dir.join("x.srt"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent.mp4"));
}

/// Starts network-source.sh with `env`, runs `feed` (which sends the stream),
/// waits for a caption message, stops the script with SIGINT (as Ctrl-C) and
/// returns the message.
fn network_example(env: &[(&str, String)], feed: impl FnOnce()) -> String {
    let mut receiver = script("network-source.sh");
    receiver.env("FLORENCE_INTERVAL", "0");
    for (k, v) in env {
        receiver.env(k, v);
    }
    let mut receiver = receiver
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = receiver.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("florence-caption") && line.contains("text=") {
                let _ = tx.send(line);
            }
        }
    });
    feed();
    let caption = rx.recv_timeout(Duration::from_secs(30));
    unsafe {
        libc::kill(receiver.id() as i32, libc::SIGINT);
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = receiver.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = receiver.kill();
            panic!("the receiver did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let caption = caption.expect("no florence-caption message from the network stream");
    assert!(caption.contains("CAPTION\\>"), "{caption}");
    assert!(caption.contains("image-width=(uint)320"), "{caption}");
    assert!(status.success(), "receiver exit {status:?}");
    caption
}

#[test]
fn network_example_captions_an_rtp_stream() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    network_example(&[("FLORENCE_UDP_PORT", port.to_string())], || {
        // Give the receiver a moment to bind, then send three seconds of RTP/JPEG.
        std::thread::sleep(Duration::from_millis(500));
        let sender = Command::new("gst-launch-1.0")
            .args(
                format!(
                    "-q videotestsrc is-live=true num-buffers=90 pattern=smpte ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! jpegenc ! rtpjpegpay ! udpsink host=127.0.0.1 port={port}"
                )
                .split_whitespace(),
            )
            .status()
            .unwrap();
        assert!(sender.success());
    });
}

#[test]
fn network_example_captions_an_rtsp_camera() {
    // A local RTSP server (gst-rtsp-server through Debian's python3-gi) stands in
    // for an IP camera.
    let mut server = Command::new("/usr/bin/python3")
        .arg(root().join("gst-florence/tests/support/rtsp_server.py"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let url = url.trim().to_owned();
    assert!(url.starts_with("rtsp://127.0.0.1:"), "server said {url:?}");
    network_example(&[("FLORENCE_RTSP", url)], || {});
    let _ = server.kill();
    let _ = server.wait();
}

/// The README's element pipeline, as written, with a 30-frame source and
/// fakesink standing in for the screen.
#[test]
fn readme_element_pipeline_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("gst-launch-1.0 videotestsrc is-live=true")
        .expect("the README's element pipeline");
    let mut line = String::new();
    for l in readme[start..].lines() {
        line.push_str(l.trim_end_matches('\\').trim());
        line.push(' ');
        if !l.ends_with('\\') {
            break;
        }
    }
    assert!(line.contains("autovideosink"), "{line}");
    let pipeline = line
        .trim_start_matches("gst-launch-1.0")
        .replace(
            "videotestsrc is-live=true",
            "videotestsrc is-live=true num-buffers=30",
        )
        .replace("autovideosink", "fakesink");
    let out = succeed(
        Command::new("gst-launch-1.0")
            .current_dir(root())
            .env("GST_PLUGIN_PATH", plugin_dir())
            .arg("-m")
            .args(pipeline.split_whitespace()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("florence-caption"), "no caption: {stdout}");
}

/// Frames of `path` (RGB, `w` x `h`) as gst-launch decodes them, the first `n`.
fn decoded_frames(path: &Path, dir: &Path, w: u32, h: u32, n: usize) -> Vec<RgbImage> {
    std::fs::create_dir_all(dir).unwrap();
    gst_launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! identity eos-after={} ! multifilesink location={}/%d.rgb",
        path.display(),
        // identity ends the stream in place of its eos-after'th buffer.
        n + 1,
        dir.display()
    ));
    (0..n)
        .map(|i| read_rgb(&dir.join(format!("{i}.rgb")), w, h))
        .collect()
}

fn pixel(image: &RgbImage, x: u32, y: u32) -> [i32; 3] {
    let i = ((y * image.width + x) * 3) as usize;
    [0, 1, 2].map(|c| i32::from(image.data[i + c]))
}

fn difference(a: [i32; 3], b: [i32; 3]) -> i32 {
    (0..3).map(|c| (a[c] - b[c]).abs()).sum()
}

#[test]
fn file_example_writes_the_video_with_its_detections_drawn() {
    let scratch = tmp("annotated");
    let dir = scratch.path();
    // Five seconds of the scene fixture, as a camera recording would hold it.
    let video = dir.join("in.avi");
    gst_launch(&format!(
        "filesrc location={} ! pngdec ! videoconvert ! imagefreeze num-buffers=5 ! video/x-raw,framerate=1/1 ! videoconvert ! jpegenc quality=95 ! avimux ! filesink location={}",
        root()
            .join("tests/fixtures/images/scene_640x480.png")
            .display(),
        video.display()
    ));
    let out = dir.join("out.webm");
    succeed(script("file-annotated.sh").arg(&video).arg(&out));
    let input = decoded_frames(&video, &dir.join("in"), 640, 480, 1).remove(0);
    let drawn = decoded_frames(&out, &dir.join("out"), 640, 480, 3);
    // The engine's detections on the same decoded frame, as the element runs them.
    let result = tiny_engine()
        .run(&input, &Request::new(Task::Od))
        .unwrap()
        .result;
    let gstflorence::engine::postprocess::TaskResult::Boxes { bboxes, .. } = result else {
        panic!("not boxes: {result:?}");
    };
    let [x1, y1, x2, y2] = bboxes[0].map(|v| v.round() as u32);
    let (mid_x, mid_y) = ((x1 + x2) / 2, (y1 + y2) / 2);
    // VP8 is lossy: the outline stands out, the rest stays close to the input.
    for (i, frame) in drawn.iter().enumerate() {
        for (x, y) in [(x1, mid_y), (x2, mid_y), (mid_x, y2)] {
            let d = difference(pixel(frame, x, y), pixel(&input, x, y));
            assert!(d > 90, "frame {i}: no outline at ({x}, {y}): {d}");
        }
        for (x, y) in [(mid_x, mid_y), (620, 460)] {
            let d = difference(pixel(frame, x, y), pixel(&input, x, y));
            assert!(d < 40, "frame {i}: drawn off the box at ({x}, {y}): {d}");
        }
    }

    let bad = script("file-annotated.sh")
        .arg("/nonexistent.mp4")
        .arg(dir.join("x.webm"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent.mp4"));
}

#[test]
fn camera_example_draws_live_detections() {
    let scratch = tmp("detections");
    let frames = scratch.path();
    let picture = root().join("tests/fixtures/images/scene_640x480.png");
    let out = succeed(
        script("camera-detections.sh")
            .env(
                "FLORENCE_SOURCE",
                format!(
                    "filesrc location={} ! pngdec ! imagefreeze num-buffers=60 is-live=true ! video/x-raw,framerate=30/1",
                    picture.display()
                ),
            )
            .env("FLORENCE_INTERVAL", "0")
            .env(
                "FLORENCE_SINK",
                format!(
                    "video/x-raw,format=RGB ! multifilesink location={}/%d.rgb",
                    frames.display()
                ),
            ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("florence-caption"),
        "no result messages: {stdout}"
    );
    let read = |i: usize| read_rgb(&frames.join(format!("{i}.rgb")), 640, 480);
    assert!(
        frames.join("59.rgb").is_file(),
        "not all 60 frames came out"
    );
    // The first frame leaves before any result: the picture as it is; once a
    // result is in, every later frame carries its drawing.
    let first = read(0);
    let drawn: Vec<bool> = (0..60).map(|i| read(i).data != first.data).collect();
    let since = drawn
        .iter()
        .position(|&d| d)
        .expect("no frame shows a detection");
    assert!(drawn[since..].iter().all(|&d| d), "{drawn:?}");
}
