//! HTTP overhead of florenced: client-measured request time minus the model's
//! inference time, for a 640x480 JPEG, sent as a JSON data URI and as a raw body.
//!
//! cargo bench -p florenced --bench http_overhead [-- MODEL_DIR]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn main() {
    let mut spawn = Spawn::new();
    if let Some(dir) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        spawn = spawn.set(&format!("model_dir={dir}"));
    }
    // Use every core for the model, as a deployment would.
    spawn = spawn.set("threads=0");
    let d = spawn.ready();
    let jpeg = encode(640, 480, scene(640, 480, 3), image::ImageFormat::Jpeg);
    let json_body = serde_json::json!({"image": data_uri("image/jpeg", &jpeg)}).to_string();
    println!(
        "640x480 JPEG: {} bytes, JSON body {} bytes",
        jpeg.len(),
        json_body.len()
    );
    for (label, ct, body) in [
        ("JSON data URI", "application/json", json_body.as_bytes()),
        ("raw image/jpeg", "image/jpeg", &jpeg[..]),
    ] {
        for _ in 0..3 {
            request(d.addr, "POST", "/v1/caption", &[("content-type", ct)], body);
        }
        let (mut wall, mut infer, mut overhead) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..30 {
            let t = Instant::now();
            let r = request(d.addr, "POST", "/v1/caption", &[("content-type", ct)], body);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(r.status, 200, "{}", r.text());
            let inf: f64 = r.header("x-inference-time").unwrap().parse().unwrap();
            wall.push(ms);
            infer.push(inf);
            overhead.push(ms - inf);
        }
        println!(
            "{label:>16}: request p50 {:.1} ms p95 {:.1} ms | inference p50 {:.1} ms | overhead p50 {:.1} ms p95 {:.1} ms",
            percentile(&mut wall, 50.0),
            percentile(&mut wall, 95.0),
            percentile(&mut infer, 50.0),
            percentile(&mut overhead, 50.0),
            percentile(&mut overhead, 95.0),
        );
    }
    // Throughput with 64 concurrent clients (queue deep enough for all of them).
    drop(d);
    let d = Spawn::new().set("threads=0").set("queue_depth=64").ready();
    let t = Instant::now();
    let addr = d.addr;
    let handles: Vec<_> = (0..64)
        .map(|_| post_caption_async(addr, json_body.clone()))
        .collect();
    let ok = handles
        .into_iter()
        .map(|h| h.join().unwrap().status)
        .filter(|s| *s == 200)
        .count();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "64 concurrent clients: {ok}/64 answered in {secs:.2} s ({:.1} requests/s)",
        64.0 / secs
    );
}
