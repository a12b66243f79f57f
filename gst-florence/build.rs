use std::path::{Path, PathBuf};

fn main() {
    gst_plugin_version_helper::info();
    hailo_bridge();
}

/// On a machine with HailoRT's development files (a Raspberry Pi with the
/// hailort package), compiles the Hailo bridge for that HailoRT as a shared
/// library, so that a plain `cargo build` uses the NPU: the engine finds it
/// when it runs from this checkout (engine/hailo/bridge_search.rs). It is not
/// linked into anything (libhailort is loaded at run time), and a machine
/// without the headers builds exactly as before; the packages ship bridges
/// built by scripts/build-hailo-bridges.sh instead.
fn hailo_bridge() {
    println!("cargo:rerun-if-changed=hailo/florence_hailo_bridge.cpp");
    println!("cargo:rerun-if-changed=hailo/florence_hailo_bridge.h");
    println!("cargo:rerun-if-changed=hailo/florence_hailo_bridge.map");
    println!("cargo:rerun-if-env-changed=HAILORT_INCLUDE_DIR");
    let include = std::env::var_os("HAILORT_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let header = include.join("hailo/hailort.h");
    // Not watched when absent: cargo reruns a build script whose watched file
    // does not exist on every build. (HailoRT installed after a build: set
    // HAILORT_INCLUDE_DIR, or touch this file, to build the bridge.)
    let Ok(text) = std::fs::read_to_string(&header) else {
        return;
    };
    println!("cargo:rerun-if-changed={}", header.display());
    // The headers carry no version; HailoRT 5.x dropped the Ethernet defaults
    // (the bridge's source checks the same).
    let major = if text.contains("HAILO_DEFAULT_ETH_CONTROL_PORT") {
        4
    } else {
        5
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("hailo-bridges");
    match compile(&include, major, &out) {
        Ok(()) => println!(
            "cargo:rustc-env=FLORENCE_HAILO_BRIDGE_BUILT_DIR={}",
            out.display()
        ),
        Err(e) => println!(
            "cargo:warning=the Hailo bridge for HailoRT {major} ({}) was not built: {e}",
            header.display()
        ),
    }
}

/// Builds `<out>/libflorence_hailo_hailort<major>.so` the way
/// scripts/build-hailo-bridges.sh does.
fn compile(include: &Path, major: u32, out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let lib = format!("libflorence_hailo_hailort{major}.so");
    let compiler = cc::Build::new()
        .cpp(true)
        .cargo_metadata(false)
        .try_get_compiler()
        .map_err(|e| e.to_string())?;
    let status = compiler
        .to_command()
        .args(["-std=c++17", "-O2", "-fPIC", "-shared"])
        .args(["-fvisibility=hidden", "-fvisibility-inlines-hidden"])
        .arg(format!("-DFLORENCE_HAILO_HAILORT_MAJOR={major}"))
        .arg("-Ihailo")
        .arg("-isystem")
        .arg(include)
        .arg("hailo/florence_hailo_bridge.cpp")
        .arg("-Wl,--version-script=hailo/florence_hailo_bridge.map")
        .arg(format!("-Wl,-soname,{lib}"))
        .arg("-o")
        .arg(out.join(&lib))
        .status()
        .map_err(|e| format!("cannot run {}: {e}", compiler.path().display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", compiler.path().display()))
    }
}
