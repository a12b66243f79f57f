//! The CPUs this process may use, as thread counts for ONNX Runtime.

/// The intra-op threads a session gets for `requested`: at most the CPUs this
/// process may run on. More threads than CPUs only take turns on them, and
/// with spinning workers that is a collapse, not a slowdown (threads=32 on 2
/// cores: 948 ms per frame against 52; threads=256: about 10 s).
pub fn usable_threads(requested: usize) -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    requested.min(logical)
}

/// One thread per physical core of the CPUs this process may use: ONNX
/// Runtime's compute kernels gain nothing from SMT siblings.
pub fn default_threads() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    physical_cores().unwrap_or(logical).clamp(1, logical)
}

fn physical_cores() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mut cores = std::collections::HashSet::new();
    let mut package = 0u32;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "physical id" => package = value.trim().parse().unwrap_or(0),
            "core id" => {
                if let Ok(core) = value.trim().parse::<u32>() {
                    cores.insert((package, core));
                }
            }
            _ => {}
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}
