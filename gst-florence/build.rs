fn main() {
    gst_plugin_version_helper::info();
    #[cfg(feature = "hailo")]
    hailo_bridge();
}

/// Compiles the C++ bridge against the installed HailoRT and links libhailort.
#[cfg(feature = "hailo")]
fn hailo_bridge() {
    println!("cargo:rerun-if-changed=hailo/florence_hailo_bridge.cpp");
    println!("cargo:rerun-if-changed=hailo/florence_hailo_bridge.h");
    println!("cargo:rerun-if-env-changed=HAILORT_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=HAILORT_LIB_DIR");
    let include = std::env::var("HAILORT_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include".into());
    if !std::path::Path::new(&include)
        .join("hailo/hailort.hpp")
        .is_file()
    {
        panic!(
            "the cargo feature `hailo` needs HailoRT's headers: {include}/hailo/hailort.hpp not found \
             (install the hailort package, or set HAILORT_INCLUDE_DIR to the directory holding hailo/)"
        );
    }
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("hailo/florence_hailo_bridge.cpp")
        .include("hailo")
        .include(&include)
        .warnings(true)
        .compile("florence_hailo_bridge");
    if let Ok(dir) = std::env::var("HAILORT_LIB_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
    }
    println!("cargo:rustc-link-lib=dylib=hailort");
}
