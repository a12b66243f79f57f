//! The seccomp-related settings of a unit's `[Service]` section, with its
//! drop-ins applied in order as systemd does (list settings accumulate, an
//! empty assignment resets, scalar settings: the last one wins).

use anyhow::{Context, bail};
use std::path::Path;

#[derive(Debug, Default, PartialEq)]
pub struct SeccompSettings {
    /// Every `SystemCallFilter=` value in order; an empty one resets the list.
    pub filter: Vec<String>,
    /// `SystemCallErrorNumber=`: unset kills the process (SIGSYS), as systemd.
    pub error_number: Option<String>,
    pub memory_deny_write_execute: bool,
}

impl SeccompSettings {
    pub fn read(unit: &Path, drop_ins: &[impl AsRef<Path>]) -> anyhow::Result<SeccompSettings> {
        let mut settings = SeccompSettings::default();
        for path in std::iter::once(unit).chain(drop_ins.iter().map(AsRef::as_ref)) {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            settings
                .apply(&text)
                .with_context(|| format!("in {}", path.display()))?;
        }
        Ok(settings)
    }

    /// Applies one file's `[Service]` assignments.
    pub fn apply(&mut self, text: &str) -> anyhow::Result<()> {
        let mut in_service = false;
        for line in logical_lines(text) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                bail!("not a key=value line: {line:?}");
            };
            if !in_service {
                continue;
            }
            let value = value.trim();
            match key.trim() {
                "SystemCallFilter" if value.is_empty() => self.filter.clear(),
                "SystemCallFilter" => self.filter.push(value.to_owned()),
                "SystemCallErrorNumber" => {
                    self.error_number = (!value.is_empty()).then(|| value.to_owned())
                }
                "MemoryDenyWriteExecute" => {
                    self.memory_deny_write_execute = parse_bool(value)
                        .with_context(|| format!("MemoryDenyWriteExecute={value}"))?
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Joins lines continued with a trailing backslash.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
        } else {
            pending.push_str(line);
            out.push(std::mem::take(&mut pending));
        }
    }
    if !pending.is_empty() {
        out.push(pending);
    }
    out
}

fn parse_bool(value: &str) -> anyhow::Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Ok(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Ok(false),
        _ => bail!("not a boolean"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_section_lines_accumulate_and_reset() {
        let mut s = SeccompSettings::default();
        s.apply(
            "[Unit]\nSystemCallFilter=ignored\n[Service]\n# c\nSystemCallFilter=@system-service\n\
             SystemCallFilter=~@privileged \\\n  @resources\nSystemCallErrorNumber=EPERM\n\
             MemoryDenyWriteExecute=yes\n",
        )
        .unwrap();
        assert_eq!(s.filter, ["@system-service", "~@privileged    @resources"]);
        assert_eq!(s.error_number.as_deref(), Some("EPERM"));
        assert!(s.memory_deny_write_execute);
        s.apply("[Service]\nSystemCallFilter=\nSystemCallFilter=read\nMemoryDenyWriteExecute=no\n")
            .unwrap();
        assert_eq!(s.filter, ["read"]);
        assert!(!s.memory_deny_write_execute);
    }

    #[test]
    fn a_bad_boolean_is_an_error() {
        let mut s = SeccompSettings::default();
        assert!(
            s.apply("[Service]\nMemoryDenyWriteExecute=maybe\n")
                .is_err()
        );
    }
}
