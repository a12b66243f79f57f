//! Injected faults: a small text file named by `FLORENCE_HAILO_STANDIN_FAULTS`,
//! read again at every call so a test can change the device's behaviour
//! between (or during) requests of a running daemon by rewriting it.
//!
//! One `key=value` per line, `#` starts a comment:
//! - `open=<status>`: opening the device fails (74: held by another process,
//!   64: no driver);
//! - `load=<status>`: loading a HEF fails;
//! - `run=<status>` or `run=<status>@<n>`: runs fail once `n` runs have
//!   succeeded since the file last changed (96: device gone mid-run,
//!   4: timeout);
//! - `chip=<name>`: the device's chip (default `hailo10h`); a HEF compiled for
//!   another one fails to load with HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE (93);
//! - `held_by=<group>`: another process holds the chip in virtual-device group
//!   `<group>`. As on a Hailo-10H, opening with the same group shares it,
//!   unless that group is HailoRT's default `UNIQUE` (hailo-ollama's): any
//!   other open fails with HAILO_OUT_OF_PHYSICAL_DEVICES (74);
//! - `run_ms=<n>`: a network run takes `n` ms; a run whose timeout is shorter
//!   waits its timeout and fails with HAILO_TIMEOUT (4), as HailoRT's does;
//! - `hailort=<major>.<minor>.<revision>`: the version the stand-in libhailort
//!   reports (default 5.2.0);
//! - `bridge_for=<major>`: the HailoRT major the stand-in bridge says it was
//!   built for (default: the reported version's);
//! - `abi=<n>`: the bridge ABI version it reports (default: the engine's).

use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

pub const FAULTS_ENV: &str = "FLORENCE_HAILO_STANDIN_FAULTS";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Faults {
    pub open: Option<i32>,
    pub load: Option<i32>,
    /// Status, and how many successful runs come before it applies.
    pub run: Option<(i32, u64)>,
    pub chip: Option<String>,
    pub held_by: Option<String>,
    pub run_ms: Option<u32>,
    /// (major, minor, revision).
    pub hailort: Option<(u32, u32, u32)>,
    pub bridge_for: Option<u32>,
    pub abi: Option<u32>,
}

impl Faults {
    /// The faults in force now (none when the variable or the file is absent).
    pub fn current() -> Faults {
        let Some(path) = std::env::var_os(FAULTS_ENV).map(PathBuf::from) else {
            return Faults::default();
        };
        std::fs::read_to_string(path)
            .map(|t| Faults::parse(&t))
            .unwrap_or_default()
    }

    /// The faults in force now; resets `runs` to 0 when the file's text is not
    /// what the previous call saw.
    pub fn current_counting(runs: &AtomicU64) -> Faults {
        static SEEN: Mutex<String> = Mutex::new(String::new());
        let text = std::env::var_os(FAULTS_ENV)
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let mut seen = SEEN.lock();
        if *seen != text {
            runs.store(0, Ordering::SeqCst);
            *seen = text.clone();
        }
        Faults::parse(&text)
    }

    /// Parses the file's text; unknown keys and unreadable values are ignored
    /// (a half-written file reads as fewer faults, never as a crash).
    pub fn parse(text: &str) -> Faults {
        let mut f = Faults::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "open" => f.open = value.parse().ok(),
                "load" => f.load = value.parse().ok(),
                "run" => {
                    f.run = match value.split_once('@') {
                        Some((s, n)) => s.trim().parse().ok().zip(n.trim().parse().ok()),
                        None => value.parse().ok().map(|s| (s, 0)),
                    }
                }
                "chip" => f.chip = Some(value.to_owned()),
                "held_by" => f.held_by = Some(value.to_owned()),
                "run_ms" => f.run_ms = value.parse().ok(),
                "hailort" => {
                    let n: Vec<u32> = value.split('.').filter_map(|p| p.parse().ok()).collect();
                    f.hailort = match n[..] {
                        [major, minor, revision] => Some((major, minor, revision)),
                        _ => None,
                    }
                }
                "bridge_for" => f.bridge_for = value.parse().ok(),
                "abi" => f.abi = value.parse().ok(),
                _ => {}
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key_and_ignores_noise() {
        let f = Faults::parse(
            "# busy\nopen=74\nload = 93\nrun=96@3\nchip=hailo8\nheld_by=SHARED\nrun_ms=20\nbogus=1\nrun\nhailort=4.23.0\nbridge_for=4\nabi=1",
        );
        assert_eq!(
            f,
            Faults {
                open: Some(74),
                load: Some(93),
                run: Some((96, 3)),
                chip: Some("hailo8".into()),
                held_by: Some("SHARED".into()),
                run_ms: Some(20),
                hailort: Some((4, 23, 0)),
                bridge_for: Some(4),
                abi: Some(1),
            }
        );
        assert_eq!(Faults::parse("hailort=5.2").hailort, None);
        assert_eq!(Faults::parse("run=4").run, Some((4, 0)));
        assert_eq!(Faults::parse("open=x\nrun=4@y"), Faults::default());
    }
}
