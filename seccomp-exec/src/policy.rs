//! `SystemCallFilter=` lines to a set of system call names, with systemd's
//! rules (systemd.exec(5)): the first line decides the mode (a leading `~`
//! makes a deny list, else an allow list that implicitly holds `@default`);
//! later lines add to or remove from that set. Groups (`@name`) are expanded
//! with the table `systemd-analyze syscall-filter` prints, so the result
//! follows the installed systemd's definition of each group.

use anyhow::{Context, bail};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only the names are allowed; every other call gets the default action.
    Allow,
    /// The names get the default action; every other call is allowed.
    Deny,
}

#[derive(Debug, PartialEq)]
pub struct Policy {
    pub mode: Mode,
    pub names: BTreeSet<String>,
}

/// The groups (`@system-service` -> its members, which may be groups).
pub struct Groups(BTreeMap<String, Vec<String>>);

impl Groups {
    /// The groups of the installed systemd.
    pub fn from_systemd_analyze() -> anyhow::Result<Groups> {
        let out = std::process::Command::new("systemd-analyze")
            .args(["syscall-filter", "--no-pager"])
            .output()
            .context("running systemd-analyze syscall-filter (package systemd)")?;
        if !out.status.success() {
            bail!(
                "systemd-analyze syscall-filter failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Groups::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// `systemd-analyze syscall-filter`'s output: a group's name at the start of
    /// a line, its members indented below it, `#` lines are comments.
    pub fn parse(text: &str) -> anyhow::Result<Groups> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            if line.starts_with('@') {
                let name = line.trim().to_owned();
                groups.entry(name.clone()).or_default();
                current = Some(name);
            } else if line.starts_with(char::is_whitespace) {
                let member = line.trim();
                if member.is_empty() || member.starts_with('#') {
                    continue;
                }
                if let Some(group) = &current {
                    groups
                        .entry(group.clone())
                        .or_default()
                        .push(member.to_owned());
                }
            } else {
                // A blank line or a closing section (unlisted calls) ends the group.
                current = None;
            }
        }
        if !groups.contains_key("@default") {
            bail!("no @default group in systemd-analyze syscall-filter's output");
        }
        Ok(Groups(groups))
    }

    /// A name or group as the system call names it stands for.
    pub fn expand(&self, item: &str) -> anyhow::Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        self.expand_into(item, &mut out, 0)?;
        Ok(out)
    }

    fn expand_into(
        &self,
        item: &str,
        out: &mut BTreeSet<String>,
        depth: usize,
    ) -> anyhow::Result<()> {
        if depth > 16 {
            bail!("groups nested too deeply at {item}");
        }
        if item.starts_with('@') {
            let members = self
                .0
                .get(item)
                .with_context(|| format!("unknown system call group {item}"))?;
            for m in members {
                self.expand_into(m, out, depth + 1)?;
            }
        } else {
            out.insert(item.to_owned());
        }
        Ok(())
    }
}

impl Policy {
    /// The policy the lines describe, or None when there are none (no filter).
    pub fn from_lines(lines: &[String], groups: &Groups) -> anyhow::Result<Option<Policy>> {
        let mut policy: Option<Policy> = None;
        for line in lines {
            let (invert, items) = match line.strip_prefix('~') {
                Some(rest) => (true, rest),
                None => (false, line.as_str()),
            };
            let p = match &mut policy {
                Some(p) => p,
                None => policy.insert(match invert {
                    true => Policy {
                        mode: Mode::Deny,
                        names: BTreeSet::new(),
                    },
                    // systemd starts an allow list with @default.
                    false => Policy {
                        mode: Mode::Allow,
                        names: groups.expand("@default")?,
                    },
                }),
            };
            // An allow list grows with plain lines; a deny list with `~` lines.
            let add = invert == (p.mode == Mode::Deny);
            for item in items.split_whitespace() {
                if item.contains(':') {
                    bail!("{item}: per-call error numbers are not supported here");
                }
                let names = groups.expand(item)?;
                if add {
                    p.names.extend(names);
                } else {
                    p.names.retain(|n| !names.contains(n));
                }
            }
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "@default\n    # Always ok\n    exit\n    read\n\n\
        @resources\n    # Alter resources\n    setpriority\n\n\
        @system-service\n    # Services\n    @default\n    @resources\n    write\n\n\
        # Unlisted System Calls (supported by the local kernel, but not included in any of the groups listed above):\n\
        #   foo\n";

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_expand_recursively() {
        let g = Groups::parse(TABLE).unwrap();
        let names: Vec<_> = g.expand("@system-service").unwrap().into_iter().collect();
        assert_eq!(names, ["exit", "read", "setpriority", "write"]);
        assert!(g.expand("@nope").is_err());
    }

    #[test]
    fn an_allow_list_holds_default_and_loses_what_a_tilde_line_removes() {
        let g = Groups::parse(TABLE).unwrap();
        let p = Policy::from_lines(
            &lines(&["write", "~@resources", "setpriority", "~read"]),
            &g,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.mode, Mode::Allow);
        let names: Vec<_> = p.names.into_iter().collect();
        assert_eq!(names, ["exit", "setpriority", "write"]);
        let p = Policy::from_lines(&lines(&["@system-service", "~@resources"]), &g)
            .unwrap()
            .unwrap();
        let names: Vec<_> = p.names.into_iter().collect();
        assert_eq!(names, ["exit", "read", "write"]);
    }

    #[test]
    fn a_deny_list_starts_with_a_tilde() {
        let g = Groups::parse(TABLE).unwrap();
        let p = Policy::from_lines(&lines(&["~@resources write", "write"]), &g)
            .unwrap()
            .unwrap();
        assert_eq!(p.mode, Mode::Deny);
        let names: Vec<_> = p.names.into_iter().collect();
        assert_eq!(names, ["setpriority"]);
        assert_eq!(Policy::from_lines(&[], &g).unwrap(), None);
    }
}
