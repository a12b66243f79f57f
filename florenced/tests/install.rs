//! systemd/install.sh and uninstall.sh into a temporary root (DESTDIR): the
//! complete tree, an upgrade in place that keeps an edited configuration, the
//! installed florenced and GStreamer plugin working from there, and removal.

mod common;
#[path = "common/installed.rs"]
mod installed;

use std::path::Path;
use std::process::{Command, Output};

use common::process::succeed;
use common::root;
use installed::*;

const PREFIX: &str = "/opt/florence";

/// The README's staged install (`DESTDIR=/tmp/stage systemd/install.sh --prefix
/// /opt/florence`) into `dest`, with the debug build's artefacts.
fn install(dest: &Path, extra: &[&str]) -> Output {
    let line = readme_command("DESTDIR=/tmp/stage systemd/install.sh");
    let readme_args: Vec<&str> = line.split_whitespace().skip(2).collect();
    assert_eq!(readme_args, ["--prefix", PREFIX]);
    let dir = artefacts();
    succeed(
        Command::new("bash")
            .arg(root().join("systemd/install.sh"))
            .env("DESTDIR", dest)
            .args(readme_args)
            .arg("--binary")
            .arg(dir.join("florenced"))
            .arg("--plugin")
            .arg(dir.join("libgstflorence.so"))
            .arg("--ort-library")
            .arg(root().join(".ort/lib/libonnxruntime.so"))
            .args(extra),
    )
}

/// The README's `sudo systemd/uninstall.sh [--purge]`, on the staged tree.
fn uninstall(dest: &Path, extra: &[&str]) -> String {
    let line = readme_command(&format!("sudo systemd/uninstall.sh {}", extra.join(" ")));
    let args: Vec<&str> = line.split_whitespace().skip(2).collect();
    assert_eq!(args, extra);
    let out = succeed(
        Command::new("bash")
            .arg(root().join("systemd/uninstall.sh"))
            .env("DESTDIR", dest)
            .args(["--prefix", PREFIX])
            .args(args),
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn install_stages_a_complete_tree_upgrades_in_place_and_uninstalls() {
    let scratch = scratch("install");
    let dest = scratch.join("root");
    let plugins = system_plugin_dir();
    let model = "/var/lib/hailo-florence/models/Florence-2-large-ft";
    let out = install(&dest, &["--model-dir", model, "--variant", "fp16"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("DESTDIR=")
            && said.contains("skipped: useradd hailo-florence")
            && said.contains("systemctl"),
        "{said}"
    );

    let first = tree(&dest);
    let plugin_link = format!("{}/libgstflorence.so", plugins.trim_start_matches('/'));
    for path in [
        "opt/florence/bin/florenced",
        "opt/florence/lib/florence/libonnxruntime.so",
        "opt/florence/lib/florence/libgstflorence.so",
        "opt/florence/lib/florence/hailo-device-check.sh",
        "opt/florence/lib/florence/ip-policy.sh",
        "opt/florence/share/doc/florenced/README.md",
        "etc/systemd/system/hailo-florence.service.d/ip-policy.conf",
        "etc/hailo/hailo-florence.yaml",
        "etc/systemd/system/hailo-florence.service",
        "var/lib/hailo-florence/models",
        plugin_link.as_str(),
    ] {
        assert!(first.contains_key(path), "{path} missing: {first:#?}");
    }
    // The Hailo bridges this checkout built (CI builds them before the tests)
    // go where the installed florenced looks for them.
    let bridges = root().join(format!(
        "target/hailo-bridges/{}-unknown-linux-gnu",
        std::env::consts::ARCH
    ));
    if bridges.join("libflorence_hailo_hailort5.so").exists() {
        for major in [4, 5] {
            let path =
                format!("opt/florence/lib/florence/hailo/libflorence_hailo_hailort{major}.so");
            assert!(first.contains_key(&path), "{path} missing: {first:#?}");
        }
    }
    assert!(
        first[&plugin_link].starts_with("link -> ../"),
        "a relative link: {first:#?}"
    );
    assert!(first["opt/florence/bin/florenced"].starts_with("file 755"));
    assert!(first["etc/hailo/hailo-florence.yaml"].starts_with("file 640"));
    // Nothing outside the root's usual places.
    for path in first.keys() {
        let top = path.split('/').next().unwrap();
        assert!(["opt", "etc", "var", "usr"].contains(&top), "{path}");
    }

    // The unit and the configuration, rendered for the choices made.
    let unit =
        std::fs::read_to_string(dest.join("etc/systemd/system/hailo-florence.service")).unwrap();
    assert!(
        unit.contains(
            "ExecStart=/opt/florence/bin/florenced --config /etc/hailo/hailo-florence.yaml"
        ),
        "{unit}"
    );
    assert!(
        unit.contains("ORT_DYLIB_PATH=/opt/florence/lib/florence/libonnxruntime.so"),
        "{unit}"
    );
    assert!(
        unit.contains("ExecStartPre=/opt/florence/lib/florence/hailo-device-check.sh"),
        "{unit}"
    );
    assert!(!unit.contains("/usr/local"), "{unit}");
    // The default loopback bind: only localhost peers (the IP policy drop-in).
    let policy = std::fs::read_to_string(
        dest.join("etc/systemd/system/hailo-florence.service.d/ip-policy.conf"),
    )
    .unwrap();
    assert!(
        policy.contains("IPAddressDeny=any") && policy.contains("IPAddressAllow=localhost"),
        "{policy}"
    );
    let config_path = dest.join("etc/hailo/hailo-florence.yaml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(
        config.contains(&format!("\nmodel_dir: {model}\n")),
        "{config}"
    );
    assert!(config.contains("\nmodel_variant: \"_fp16\""), "{config}");

    // A second run upgrades in place: the same tree.
    install(&dest, &["--model-dir", model, "--variant", "fp16"]);
    assert_eq!(tree(&dest), first);

    // An edited configuration is kept; the new default goes beside it, and says so.
    let edited = config.replace("port: 11438", "port: 8080");
    std::fs::write(&config_path, &edited).unwrap();
    let out = install(&dest, &["--model-dir", model]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("kept your edited /etc/hailo/hailo-florence.yaml"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), edited);
    let new_default =
        std::fs::read_to_string(dest.join("etc/hailo/hailo-florence.yaml.new")).unwrap();
    assert!(new_default.contains("port: 11438") && new_default.contains("model_variant: \"\""));

    // The installed programs work from the root, with the root's ONNX Runtime.
    run_installed_florenced(&dest.join("opt/florence/bin/florenced"));
    check_installed_plugin(
        &dest.join(plugins.trim_start_matches('/')),
        &dest.join("opt/florence/lib/florence/libgstflorence.so"),
        &scratch,
    );

    // Uninstall keeps the configuration and the models; --purge removes them.
    std::fs::write(dest.join("var/lib/hailo-florence/models/weights"), b"model").unwrap();
    let said = uninstall(&dest, &[]);
    // Without the link, GStreamer no longer knows the element.
    let out = gst_tool(
        "gst-inspect-1.0",
        &dest.join(plugins.trim_start_matches('/')),
        &scratch.join("registry-after.bin"),
    )
    .arg("florencecaption")
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        said.contains("kept /etc/hailo/hailo-florence.yaml"),
        "{said}"
    );
    let left = files_in(&dest);
    assert_eq!(
        left,
        [
            "etc/hailo/hailo-florence.yaml",
            "etc/hailo/hailo-florence.yaml.new",
            "var/lib/hailo-florence/models/weights"
        ]
    );
    let said = uninstall(&dest, &["--purge"]);
    assert!(
        said.contains("purged") && said.contains("skipped userdel"),
        "{said}"
    );
    let left = files_in(&dest);
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn install_refuses_what_it_cannot_install() {
    let scratch = scratch("install-refuses");
    let dest = scratch.join("root");
    let run = |args: &[&str]| {
        Command::new("bash")
            .arg(root().join("systemd/install.sh"))
            .env("DESTDIR", &dest)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--prefix", "relative/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absolute path"));
    let out = run(&["--binary", "/nonexistent/florenced"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no florenced binary at /nonexistent/florenced")
    );
    assert!(!dest.exists(), "nothing staged after a refusal");
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Each failure the README's troubleshooting table lists, caused on an
/// installed tree: the message there is the one the user sees.
#[test]
fn the_readmes_troubleshooting_messages_are_what_users_see() {
    let scratch = scratch("troubleshooting");
    let dest = scratch.join("root");
    install(&dest, &[]);
    let florenced = dest.join("opt/florence/bin/florenced");
    let config = dest.join("etc/hailo/hailo-florence.yaml");
    let dest_text = dest.display().to_string();
    let said = |out: Output| {
        assert!(!out.status.success() || !out.stdout.is_empty());
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .replace(&dest_text, "")
    };
    let mut seen = Vec::new();

    // The default configuration's model, not pulled.
    let cmd = || {
        let mut c = Command::new(&florenced);
        c.arg("--config").arg(&config).env_remove("ORT_DYLIB_PATH");
        c
    };
    seen.push(said(cmd().args(["--port", "0"]).output().unwrap()));
    // A typo in the configuration.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}model_dri: x\n")).unwrap();
    seen.push(said(cmd().arg("--print-config").output().unwrap()));
    std::fs::write(&config, &good).unwrap();
    // The port taken (the README names the default port).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = cmd()
        .args(["--port", &port, "--model-dir"])
        .arg(common::model_dir())
        .args(["--threads", "1"])
        .output()
        .unwrap();
    seen.push(said(out).replace(&format!(":{port}"), ":11438"));
    // No ONNX Runtime beside florenced.
    let lib = dest.join("opt/florence/lib/florence");
    std::fs::rename(lib.join("libonnxruntime.so"), lib.join("aside")).unwrap();
    let out = Command::new(&florenced)
        .args(["run", "--model-dir"])
        .arg(common::model_dir())
        .arg(root().join("tests/fixtures/images/pixel_1x1.png"))
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("FLORENCED_ORT_LIBRARY")
        .output()
        .unwrap();
    seen.push(said(out));
    std::fs::rename(lib.join("aside"), lib.join("libonnxruntime.so")).unwrap();
    // backend: hailo without the device (the unit's ExecStartPre).
    assert!(
        !Path::new("/dev/hailo0").exists(),
        "this machine has a Hailo device"
    );
    std::fs::write(&config, good.replace("backend: auto", "backend: hailo")).unwrap();
    let out = Command::new(lib.join("hailo-device-check.sh"))
        .arg(&config)
        .env_remove("FLORENCED_BACKEND")
        .output()
        .unwrap();
    seen.push(said(out));
    std::fs::write(&config, &good).unwrap();
    // GStreamer without the plugin's link.
    let out = gst_tool(
        "gst-inspect-1.0",
        &scratch.join("no-plugins"),
        &scratch.join("registry.bin"),
    )
    .arg("florencecaption")
    .output()
    .unwrap();
    seen.push(said(out));
    // An edited configuration at the next install.
    std::fs::write(&config, good.replace("port: 11438", "port: 8080")).unwrap();
    seen.push(said(install(&dest, &[])));

    let messages = troubleshooting_messages();
    assert_eq!(messages.len(), seen.len(), "{messages:#?}");
    for (message, output) in messages.iter().zip(&seen) {
        assert!(
            output.contains(message.as_str()),
            "the README says {message:?}; the user sees:\n{output}"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The paths under `dest` that are not directories.
fn files_in(dest: &Path) -> Vec<String> {
    tree(dest)
        .into_iter()
        .filter(|(_, kind)| !kind.starts_with("dir"))
        .map(|(path, _)| path)
        .collect()
}
