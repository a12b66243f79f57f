//! florenced's configuration loader: a YAML file, then overrides from
//! `FLORENCED_*` environment variables and `--set key=value` flags, merged and
//! validated as at start-up; a loaded configuration is printed (redacted).
//! Input: the file's text, then optionally a line `%%` followed by one
//! override a line (`FLORENCED_X=value` or `--set key=value`).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use florenced::config::{Config, ConfigFile, Override, env_overrides};
use libfuzzer_sys::fuzz_target;

/// One scratch file per fuzzing process: the loader reads a path.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("florence-fuzz-config-{}.yaml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (yaml, rest) = text.split_once("\n%%\n").unwrap_or((&text, ""));
    let mut vars = Vec::new();
    let mut sets = Vec::new();
    for line in rest.lines() {
        if let Some(arg) = line.strip_prefix("--set ") {
            sets.push(arg);
        } else if let Some((name, value)) = line.split_once('=') {
            vars.push((name.to_owned(), value.to_owned()));
        }
    }
    let mut overrides = env_overrides(vars);
    for arg in sets {
        match Override::parse_set(arg) {
            Ok(o) => overrides.push(o),
            Err(_) => return,
        }
    }
    if std::fs::write(scratch(), yaml.as_bytes()).is_err() {
        return;
    }
    if let Ok(config) = Config::load(ConfigFile::Path(scratch()), &overrides) {
        let _ = config.redacted_yaml();
    }
});
