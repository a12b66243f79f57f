//! Every command line in the shell blocks (`sh`, `bash`, `shell`) of README.md,
//! pipelines/README.md and the book is accounted for, in one of two tables:
//!
//! - `RUN`: the command, the test or CI script that runs it, and a string
//!   that must appear in that file (the command itself when the file runs it
//!   verbatim; else the test function, or the README prefix the test extracts
//!   and runs). Most tests run the debug build's binaries where the README
//!   says `./target/release/...`, and a staged root (`DESTDIR`, `dpkg
//!   --root`) where it says `sudo`; the comment of each row says how.
//! - `NOT_RUN`: commands no test can run here, each with the reason (a real
//!   systemd, a Hailo device, hours of training, ...). Adding one is a
//!   decision a reviewer sees.
//!
//! The test fails when a command in the documents is in neither table (a
//! command added without a test), when a row names a command the documents
//! no longer have (stale), and when a row's file is missing or no longer holds
//! its evidence (the test was renamed or removed). Blocks that are not
//! commands must say what they are (`text`, `yaml`, `json`, ...): a fenced
//! block without a language fails too.

use std::collections::BTreeSet;

use docs_check::{commands, documents, read, root, shown};

/// (command, file that runs it, evidence that must appear in that file).
const RUN: &[(&str, &str, &str)] = &[
    (
        "cargo build --release --locked",
        "scripts/debian-root-check.sh",
        "cargo build --release --locked",
    ),
    (
        "bash scripts/setup.sh",
        "scripts/test.sh",
        "bash scripts/setup.sh",
    ),
    ("bash scripts/test.sh", ".ci/run", "bash scripts/test.sh"),
    (
        ".venv-bench/bin/python tools/bench/op_profile.py --model-dir ~/.cache/florence/bench/base-random --threads 1,2",
        "florenced/tests/op_profile.rs",
        "\"op_profile.py\"",
    ),
    // The bench venv (tests' bench_python()), and the variant writer on a copy of the tiny model.
    (
        "bash tools/bench/make_venv.sh .venv-bench tools/bench/requirements-ort.txt",
        "florenced/tests/common/mod.rs",
        "\"tools/bench/make_venv.sh\"",
    ),
    (
        ".venv-bench/bin/python tools/export/add_variants.py --model-dir ~/florence-2-base-ft --variants int8mm",
        "florenced/tests/variants.rs",
        "\"tools/export/add_variants.py\"",
    ),
    (
        "bash scripts/bench.sh --quality --quick",
        "florenced/tests/quality.rs",
        "\"scripts/bench.sh\", \"--quality\", \"--quick\"",
    ),
    (
        "bash scripts/setup.sh --aarch64",
        ".ci/run",
        "bash scripts/setup.sh --aarch64",
    ),
    (
        "bash scripts/cross-aarch64.sh",
        ".ci/run",
        "bash scripts/cross-aarch64.sh",
    ),
    // The debug florenced, with `--task od` to compare with a recorded reference.
    (
        "./target/release/florenced run --model-dir tests/fixtures/tiny-florence2 tests/fixtures/images/scene_640x480.png",
        "florenced/tests/cli.rs",
        "fn run_prints_the_reference_result_as_json",
    ),
    // The README's section, extracted and run: the debug florenced on port 0.
    (
        "./target/release/florenced --model-dir tests/fixtures/tiny-florence2",
        "florenced/tests/readme_rest.rs",
        "./target/release/florenced",
    ),
    (
        "curl -s http://127.0.0.1:11438/v1/caption -H 'Content-Type: application/json' -d \"{\\\"image\\\": \\\"data:image/png;base64,$(base64 -w0 tests/fixtures/images/scene_640x480.png)\\\"}\"",
        "florenced/tests/readme_rest.rs",
        "fn the_readmes_serve_and_curl_commands_answer",
    ),
    (
        "curl -s http://127.0.0.1:11438/v1/caption -F image=@tests/fixtures/images/scene_640x480.png",
        "florenced/tests/readme_rest.rs",
        "fn the_readmes_serve_and_curl_commands_answer",
    ),
    (
        "curl -s 'http://127.0.0.1:11438/v1/tasks/od' -H 'Content-Type: image/png' --data-binary @tests/fixtures/images/scene_640x480.png",
        "florenced/tests/readme_rest.rs",
        "fn the_readmes_serve_and_curl_commands_answer",
    ),
    (
        "curl -s http://127.0.0.1:11438/health",
        "florenced/tests/readme_rest.rs",
        "fn the_readmes_serve_and_curl_commands_answer",
    ),
    (
        "curl -s http://127.0.0.1:11438/metrics",
        "florenced/tests/readme_rest.rs",
        "fn the_readmes_serve_and_curl_commands_answer",
    ),
    // GST_PLUGIN_PATH set to the debug plugin's folder for gst-launch-1.0.
    (
        "export GST_PLUGIN_PATH=$PWD/target/release",
        "gst-florence/tests/pipelines.rs",
        ".env(\"GST_PLUGIN_PATH\", plugin_dir())",
    ),
    // From the staged install, which links the plugin into GStreamer's folder.
    (
        "gst-inspect-1.0 florencecaption",
        "florenced/tests/install.rs",
        "\"gst-inspect-1.0\"",
    ),
    // Extracted from the README; 30 frames, fakesink for the screen.
    (
        "gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,width=640,height=480,framerate=30/1 ! florencecaption name=f model-dir=tests/fixtures/tiny-florence2 ! videoconvert ! textoverlay name=o wait-text=false ! videoconvert ! autovideosink f.text_src ! queue ! o.text_sink",
        "gst-florence/tests/pipelines.rs",
        "gst-launch-1.0 videotestsrc is-live=true",
    ),
    // Against the loopback Hub, the debug florenced.
    (
        "./target/release/florenced pull florence-2-base-ft",
        "florenced/tests/pull.rs",
        "s.pull(&hub, &[\"florence-2-base-ft\"])",
    ),
    // The loopback Hub serves the base model: the same command with its name.
    (
        "./target/release/florenced pull florence-2-large-ft --variant fp16",
        "florenced/tests/pull.rs",
        "\"--variant\", \"fp16\"",
    ),
    (
        "./target/release/florenced --model-dir onnx-community/Florence-2-base-ft",
        "florenced/tests/pull.rs",
        "fn model_dir_is_a_standalone_directory_and_the_daemon_serves_a_repository_id",
    ),
    // Extracted from the README, staged with DESTDIR, from the loopback Hub.
    (
        "sudo systemd/install.sh --model florence-2-base-ft",
        "florenced/tests/pull.rs",
        "readme_command(\"sudo systemd/install.sh --model\")",
    ),
    (
        "DESTDIR=/tmp/stage systemd/install.sh --prefix /opt/florence",
        "florenced/tests/install.rs",
        "readme_command(\"DESTDIR=/tmp/stage systemd/install.sh\")",
    ),
    (
        "bash scripts/build-deb.sh",
        "florenced/tests/deb.rs",
        "scripts/build-deb.sh",
    ),
    // As `--profile dev --no-build` of CI's cross-build (scripts/cross-aarch64.sh).
    (
        "bash scripts/build-deb.sh --arch arm64",
        "scripts/deb-arm64-check.sh",
        "bash scripts/build-deb.sh --arch arm64",
    ),
    // As `dpkg --root=DIR --install` into a throwaway root, then the package's
    // florenced and plugin under qemu-user (no arm64 apt here: no binfmt_misc).
    (
        "sudo apt install ./target/debian/hailo-florence_0.1.0-1_arm64.deb",
        "scripts/deb-arm64-check.sh",
        "--install \"$deb\"",
    ),
    // As `dpkg --root=DIR --install` of the package the test built; the
    // README's file name is checked against the crate's version.
    (
        "sudo apt install ./target/debian/hailo-florence_0.1.0-1_amd64.deb",
        "florenced/tests/deb.rs",
        "readme_command(\"sudo apt install ./target/debian/hailo-florence_\")",
    ),
    (
        "sudo HF_HUB_CACHE=/var/lib/hailo-florence/hub florenced pull florence-2-base-ft --model-dir /var/lib/hailo-florence/models/Florence-2-base-ft",
        "florenced/tests/pull.rs",
        "readme_command(\"sudo HF_HUB_CACHE=/var/lib/hailo-florence/hub florenced pull\")",
    ),
    // The installed florenced with the installed configuration, staged.
    (
        "sudo florenced --config /etc/hailo/hailo-florence.yaml --print-config",
        "florenced/tests/install.rs",
        "\"--print-config\"",
    ),
    (
        "sudo systemd/uninstall.sh",
        "florenced/tests/install.rs",
        "readme_command(&format!(\"sudo systemd/uninstall.sh {}\"",
    ),
    (
        "sudo systemd/uninstall.sh --purge",
        "florenced/tests/install.rs",
        "readme_command(&format!(\"sudo systemd/uninstall.sh {}\"",
    ),
    // As dpkg --root=DIR --remove / --purge.
    (
        "sudo apt remove hailo-florence",
        "florenced/tests/deb.rs",
        "[\"--remove\", \"hailo-florence\"]",
    ),
    (
        "sudo apt purge hailo-florence",
        "florenced/tests/deb.rs",
        "[\"--purge\", \"hailo-florence\"]",
    ),
    (
        "mdbook build docs",
        "docs-check/tests/book.rs",
        ".args([\"build\", \"docs\"])",
    ),
    // pipelines/README.md: each script with the debug plugin, videotestsrc
    // for the camera and a generated video for the file.
    (
        "pipelines/camera-textoverlay.sh",
        "gst-florence/tests/pipelines.rs",
        "fn camera_example_draws_live_captions_with_textoverlay",
    ),
    (
        "pipelines/camera-detections.sh",
        "gst-florence/tests/pipelines.rs",
        "fn camera_example_draws_live_detections",
    ),
    (
        "pipelines/file-annotated.sh holiday.mp4 holiday-annotated.webm",
        "gst-florence/tests/pipelines.rs",
        "fn file_example_writes_the_video_with_its_detections_drawn",
    ),
    (
        "pipelines/file-to-srt.sh holiday.mp4 holiday.srt",
        "gst-florence/tests/pipelines.rs",
        "fn file_example_writes_an_srt_with_the_engines_captions",
    ),
    (
        "GST_PLUGIN_PATH=$PWD/target/release /usr/bin/python3 pipelines/caption_probe.py --model-dir tests/fixtures/tiny-florence2",
        "gst-florence/tests/python_example.rs",
        "fn python_pad_probe_reads_the_meta",
    ),
    // The test runs it with the debug build's plugin.
    (
        "GST_PLUGIN_PATH=$PWD/target/release /usr/bin/python3 gst-florence/tests/support/region_metas.py tests/fixtures/tiny-florence2 tests/fixtures/images/scene_640x480.png",
        "gst-florence/tests/python_example.rs",
        "fn python_reads_every_region_task_as_region_metas",
    ),
];

/// (command, why no test runs it).
const NOT_RUN: &[(&str, &str)] = &[
    (
        "sudo apt-get install git build-essential curl",
        "the fresh Debian 12 and 13 roots of scripts/debian-root-check.sh are made with exactly these packages (BASE_PACKAGES, by mmdebstrap) before set-up runs in them",
    ),
    (
        "bash scripts/build-hailo-bridges.sh --target aarch64-unknown-linux-gnu --headers ../shared/third_party",
        "needs HailoRT's headers beside the checkout; CI runs the same build for x86_64 and aarch64 in scripts/check-hailo-bridge.sh (into target/hailo-bridges/<triple>)",
    ),
    (
        "sudo systemctl start hailo-florence",
        "needs systemd as PID 1, which the test machines do not have; sd_notify, the watchdog and signals are tested on the daemon directly",
    ),
    (
        "sudo systemctl reload hailo-florence",
        "needs systemd as PID 1; the unit's ExecReload sends SIGHUP, which florenced/tests/lifecycle.rs sends directly",
    ),
    (
        "journalctl -u hailo-florence -f",
        "needs systemd's journal; the JSON log lines are tested on the daemon's stderr",
    ),
    (
        "sudoedit /etc/hailo/hailo-florence.yaml",
        "an interactive editor",
    ),
    (
        "FLORENCE_SOURCE=libcamerasrc pipelines/camera-textoverlay.sh /var/lib/hailo-florence/models/Florence-2-base-ft",
        "needs a Raspberry Pi camera (libcamerasrc) and a real model; the test runs the same script with videotestsrc",
    ),
    (
        "hailo parser onnx hailo/text_encoder.onnx --hw-arch hailo10h --net-name florence2_transformer_encoder",
        "Hailo's Dataflow Compiler is not available here; the book says this is an untested sketch",
    ),
    (
        "hailo optimize florence2_transformer_encoder.har --hw-arch hailo10h --calib-set-path encoder_calib.npy",
        "Hailo's Dataflow Compiler is not available here; the book says this is an untested sketch",
    ),
    (
        "hailo compiler florence2_transformer_encoder_optimized.har --hw-arch hailo10h",
        "Hailo's Dataflow Compiler is not available here; the book says this is an untested sketch",
    ),
    (
        "FLORENCE_HAILO_MODEL_DIR=/var/lib/hailo-florence/models/Florence-2-base-ft cargo test -p gst-florence --test hailo_bridge -- --ignored real_device",
        "needs a Hailo device and compiled HEFs",
    ),
    (
        "bash scripts/fuzz.sh",
        "installs cargo-fuzz and builds with AddressSanitizer; run by hand (each crash found becomes a regression test in the crate's own tests)",
    ),
    (
        "bash scripts/fuzz.sh 300 prompt",
        "installs cargo-fuzz and builds with AddressSanitizer; run by hand",
    ),
    (
        "bash scripts/fuzz.sh --smoke",
        "installs cargo-fuzz and builds with AddressSanitizer; run by hand",
    ),
    (
        "python3 -m venv .venv && .venv/bin/pip install -r tools/export/requirements.txt",
        "downloads torch and transformers (several GB); scripts/bench.sh makes the same environment in its cache when it runs transformers, which the suite's --quick run does not",
    ),
    (
        ".venv/bin/python tools/export/export.py --tiny --out tests/fixtures/tiny-florence2 --references tests/fixtures --seed 0",
        "trains for about 36 minutes with torch; its outputs are committed and checked by gst-florence/tests/reference_parity.rs",
    ),
];

#[test]
fn every_documented_command_is_run_by_a_test_or_says_why_not() {
    let mut documented = BTreeSet::new();
    let mut problems = Vec::new();
    for doc in documents().expect("README.md and docs/src readable") {
        for block in read(&doc).expect("a readable Markdown file").code_blocks {
            if block.lang.is_empty() {
                problems.push(format!(
                    "{}:{}: a fenced block without a language: say `sh` for commands, \
                     `text`, `yaml`, `json`, ... for the rest",
                    shown(&doc),
                    block.line
                ));
                continue;
            }
            if !block.is_shell() {
                continue;
            }
            for command in commands(&block) {
                documented.insert((command, format!("{}:{}", shown(&doc), block.line)));
            }
        }
    }
    let tabled: BTreeSet<&str> = RUN
        .iter()
        .map(|r| r.0)
        .chain(NOT_RUN.iter().map(|n| n.0))
        .collect();
    for (command, at) in &documented {
        if !tabled.contains(command.as_str()) {
            problems.push(format!(
                "{at}: `{command}` is run by no test: add a test that runs it and a row to RUN \
                 in docs-check/tests/commands.rs (or a row to NOT_RUN with the reason)"
            ));
        }
    }
    for command in &tabled {
        if !documented.iter().any(|(c, _)| c == command) {
            problems.push(format!(
                "docs-check/tests/commands.rs names `{command}`, which no document shows any more"
            ));
        }
    }
    for (command, file, evidence) in RUN {
        match std::fs::read_to_string(root().join(file)) {
            Err(e) => problems.push(format!("`{command}`: its test {file} cannot be read: {e}")),
            Ok(text) if !text.contains(evidence) => problems.push(format!(
                "`{command}`: {file} no longer contains {evidence:?}: which test runs it now?"
            )),
            Ok(_) => {}
        }
    }
    let counted: BTreeSet<&str> = RUN.iter().map(|r| r.0).collect();
    for (command, _) in NOT_RUN {
        if counted.contains(command) {
            problems.push(format!("`{command}` is both run and not run"));
        }
    }
    for (command, why) in NOT_RUN {
        println!("not run by a test: `{command}`: {why}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
