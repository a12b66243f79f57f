//! The Debian package: scripts/build-deb.sh (cargo-deb, the dev profile's
//! artefacts) makes hailo-florence_<version>-1_<arch>.deb and its symbols,
//! hailo-florence-dbgsym_<version>-1_<arch>.ddeb; their contents and
//! control data are checked with dpkg-deb (the binaries stripped, their symbols
//! in the dbgsym package by build id, ONNX Runtime of the package's
//! architecture), then real dpkg installs it into a
//! throwaway root (`--root`, maintainer scripts run chrootless with DPKG_ROOT),
//! the installed florenced and plugin work from there, and remove/purge clean up.

mod common;
#[path = "common/installed.rs"]
mod installed;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::process::succeed;
use common::root;
use installed::*;

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// dpkg working on `root` only: its database is root/var/lib/dpkg and the
/// maintainer scripts run on the host with DPKG_ROOT=root. The root has none of
/// the dependencies (they are the host's), hence --force-depends.
fn dpkg(root: &Path) -> Command {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={}", root.display())).args([
        "--force-script-chrootless",
        "--force-not-root",
        "--force-depends",
        "--log=/dev/null",
    ]);
    cmd
}

fn host_arch() -> String {
    text(&succeed(Command::new("dpkg").arg("--print-architecture")))
        .trim()
        .to_owned()
}

/// What `file` says of a file.
fn file_type(path: &Path) -> String {
    text(&succeed(Command::new("file").arg("-b").arg(path)))
}

/// usr/lib/debug/.build-id/xx/yyyy.debug for an ELF file's build id: where the
/// dbgsym package puts its symbols and gdb looks for them.
fn build_id_debug_file(elf: &Path) -> PathBuf {
    let notes = text(&succeed(Command::new("readelf").arg("-n").arg(elf)));
    let id = notes
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("{} has no build id:\n{notes}", elf.display()));
    PathBuf::from(format!(
        "usr/lib/debug/.build-id/{}/{}.debug",
        &id[..2],
        &id[2..]
    ))
}

fn build_deb(out_dir: &Path) -> PathBuf {
    let out = succeed(
        Command::new("bash")
            .arg(root().join("scripts/build-deb.sh"))
            .args(["--profile", "dev", "--no-build", "--output"])
            .arg(out_dir),
    );
    let deb = PathBuf::from(text(&out).lines().last().unwrap_or_default().trim());
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!(
            "hailo-florence_{}-1_{}.deb",
            env!("CARGO_PKG_VERSION"),
            host_arch()
        )
    );
    deb
}

#[test]
fn the_debian_package_installs_a_working_service_into_a_throwaway_root() {
    let scratch = scratch("deb");
    let deb = build_deb(&scratch);
    let plugins = system_plugin_dir();

    // Contents: every installed path, the plugin as a link to its private copy.
    let listing = text(&succeed(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    let link = format!(".{plugins}/libgstflorence.so -> ../../florence/libgstflorence.so");
    for path in [
        "./usr/bin/florenced",
        "./usr/lib/florence/libgstflorence.so",
        "./usr/lib/florence/libonnxruntime.so",
        "./usr/lib/florence/hailo-device-check.sh",
        "./usr/lib/florence/ip-policy.sh",
        "./lib/systemd/system/hailo-florence.service",
        "./etc/hailo/hailo-florence.yaml",
        "./usr/lib/sysusers.d/hailo-florence.conf",
        "./usr/share/doc/hailo-florence/README.md",
        "./usr/share/doc/hailo-florence/copyright",
        link.as_str(),
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} not in the package:\n{listing}"
        );
    }

    // The Hailo bridges, one per HailoRT major, where the engine looks for
    // them, whenever HailoRT's headers were there to build them (always in CI).
    let headers = root().join("../shared/third_party/hailort-5.2.0/include/hailo/hailort.hpp");
    if headers.exists() || std::env::var_os("HAILORT_HEADERS_DIR").is_some() {
        for bridge in [
            "./usr/lib/florence/hailo/libflorence_hailo_hailort5.so",
            "./usr/lib/florence/hailo/libflorence_hailo_hailort4.so",
        ] {
            assert!(
                listing.lines().any(|l| l.ends_with(bridge)),
                "{bridge} not in the package:\n{listing}"
            );
        }
    } else {
        eprintln!("no HailoRT headers: the package was built without the Hailo bridges");
    }

    // Stripped binaries; their symbols in the dbgsym package, where debuggers
    // look them up by build id; ONNX Runtime for the package's architecture.
    let ddeb = deb.with_file_name(format!(
        "hailo-florence-dbgsym_{}-1_{}.ddeb",
        env!("CARGO_PKG_VERSION"),
        host_arch()
    ));
    assert!(ddeb.is_file(), "no {}", ddeb.display());
    let files = scratch.join("files");
    let symbols = scratch.join("symbols");
    succeed(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&files));
    succeed(Command::new("dpkg-deb").arg("-x").arg(&ddeb).arg(&symbols));
    let machine = match host_arch().as_str() {
        "amd64" => "x86-64",
        "arm64" => "ARM aarch64",
        other => panic!("no package variant for {other}"),
    };
    for elf in ["usr/bin/florenced", "usr/lib/florence/libgstflorence.so"] {
        let what = file_type(&files.join(elf));
        assert!(
            what.contains(machine) && what.contains(", stripped"),
            "{elf}: {what}"
        );
        let debug = symbols.join(build_id_debug_file(&files.join(elf)));
        assert!(
            file_type(&debug).contains(machine),
            "no symbols of {elf} in {}: {}",
            ddeb.display(),
            debug.display()
        );
    }
    let ort = file_type(&files.join("usr/lib/florence/libonnxruntime.so"));
    assert!(ort.contains(machine), "libonnxruntime.so: {ort}");

    // Control data: name, dependencies, the configuration as a conffile, the scripts.
    let info = text(&succeed(Command::new("dpkg-deb").arg("-I").arg(&deb)));
    for script in ["postinst", "prerm", "postrm", "conffiles"] {
        assert!(
            info.lines()
                .any(|l| l.split_whitespace().last() == Some(script)
                    || l.contains(&format!(" {script} "))),
            "no {script}:\n{info}"
        );
    }
    let field = |name: &str| {
        text(&succeed(
            Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg(name),
        ))
    };
    assert_eq!(field("Package").trim(), "hailo-florence");
    let depends = field("Depends");
    for package in [
        "libgstreamer1.0-0",
        "libgstreamer-plugins-base1.0-0",
        "gstreamer1.0-plugins-base",
        "adduser",
        "libc6",
    ] {
        assert!(
            depends.split(',').any(|d| d.trim().starts_with(package)),
            "{package} not in Depends: {depends}"
        );
    }
    // HailoRT only recommended: the CPU backend needs none of it.
    assert!(
        field("Recommends")
            .split(',')
            .any(|r| r.trim() == "hailort"),
        "{}",
        field("Recommends")
    );
    assert!(!depends.contains("hailo"), "{depends}");
    let conffiles = text(&succeed(
        Command::new("dpkg-deb")
            .args(["-I"])
            .arg(&deb)
            .arg("conffiles"),
    ));
    assert_eq!(conffiles.trim(), "/etc/hailo/hailo-florence.yaml");

    // Installed into an empty root by dpkg itself; nothing on the host changes.
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let target = scratch.join("root");
    std::fs::create_dir_all(target.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(target.join("var/lib/dpkg/updates")).unwrap();
    std::fs::create_dir_all(target.join("etc")).unwrap();
    std::fs::write(target.join("var/lib/dpkg/status"), "").unwrap();
    let out = succeed(dpkg(&target).arg("--install").arg(&deb));
    let said = text(&out);
    assert!(said.contains("no model in"), "{said}");
    // What it says to do is what the README shows (and pull.rs runs).
    let pull = readme_command("sudo HF_HUB_CACHE=/var/lib/hailo-florence/hub florenced pull");
    assert!(
        said.lines().any(|l| l.trim() == pull),
        "{said}\nREADME: {pull}"
    );
    let apt = readme_command("sudo apt install ./target/debian/hailo-florence_");
    assert!(
        apt.contains(&format!("hailo-florence_{}-1_", env!("CARGO_PKG_VERSION"))),
        "the README's package file name has another version: {apt}"
    );
    assert_eq!(std::fs::read_to_string("/etc/passwd").unwrap(), host_passwd);
    let status = text(&succeed(dpkg(&target).args(["--status", "hailo-florence"])));
    assert!(status.contains("Status: install ok installed"), "{status}");

    // The maintainer scripts' work: the user, the configuration readable by its
    // group only, the model folder, the unit enabled.
    let passwd = std::fs::read_to_string(target.join("etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("hailo-florence:"))
        .unwrap_or_else(|| panic!("no hailo-florence user in the root: {passwd}"));
    let gid: u32 = user.split(':').nth(3).unwrap().parse().unwrap();
    let config = target.join("etc/hailo/hailo-florence.yaml");
    let meta = std::fs::metadata(&config).unwrap();
    assert_eq!(
        (meta.mode() & 0o777, meta.uid(), meta.gid()),
        (0o640, 0, gid)
    );
    assert!(target.join("var/lib/hailo-florence/models").is_dir());
    // The IP policy from the default loopback bind.
    let policy = std::fs::read_to_string(
        target.join("etc/systemd/system/hailo-florence.service.d/ip-policy.conf"),
    )
    .unwrap();
    assert!(policy.contains("IPAddressAllow=localhost"), "{policy}");
    // Enabled as systemctl enable would: a link to the unit (absolute, so read, not followed).
    let wants = target.join("etc/systemd/system/multi-user.target.wants/hailo-florence.service");
    assert_eq!(
        std::fs::read_link(&wants).unwrap(),
        Path::new("/lib/systemd/system/hailo-florence.service")
    );
    let unit =
        std::fs::read_to_string(target.join("lib/systemd/system/hailo-florence.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/florenced --config /etc/hailo/hailo-florence.yaml")
            && unit.contains("ORT_DYLIB_PATH=/usr/lib/florence/libonnxruntime.so")
            && !unit.contains("/usr/local"),
        "{unit}"
    );

    // The installed tree works: florenced finds /usr/lib/florence's ONNX
    // Runtime, the plugin the copy beside its real file.
    run_installed_florenced(&target.join("usr/bin/florenced"));
    check_installed_plugin(
        &target.join(plugins.trim_start_matches('/')),
        &target.join("usr/lib/florence/libgstflorence.so"),
        &scratch,
    );

    // Reinstalling keeps an edited configuration (a conffile).
    let edited = std::fs::read_to_string(&config)
        .unwrap()
        .replace("port: 11438", "port: 8080");
    std::fs::write(&config, &edited).unwrap();
    succeed(dpkg(&target).arg("--install").arg(&deb));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);

    // Remove keeps the configuration and the models; purge removes them.
    std::fs::write(
        target.join("var/lib/hailo-florence/models/weights"),
        b"model",
    )
    .unwrap();
    succeed(dpkg(&target).args(["--remove", "hailo-florence"]));
    assert!(!target.join("usr/bin/florenced").exists());
    assert!(
        !target
            .join(plugins.trim_start_matches('/'))
            .join("libgstflorence.so")
            .exists()
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    assert!(
        target
            .join("var/lib/hailo-florence/models/weights")
            .exists()
    );
    succeed(dpkg(&target).args(["--purge", "hailo-florence"]));
    assert!(!config.exists());
    assert!(
        !target
            .join("etc/systemd/system/hailo-florence.service.d")
            .exists()
    );
    assert!(!target.join("var/lib/hailo-florence").exists());
    let _ = std::fs::remove_dir_all(&scratch);
}
