//! The seccomp filters systemd 252 loads for `SystemCallFilter=` and
//! `MemoryDenyWriteExecute=`, built with libseccomp as systemd builds them
//! (src/shared/seccomp-util.c), for the native architecture.

use crate::policy::{Mode, Policy};
use anyhow::{Context, bail};
use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

/// linux/shm.h's SHM_EXEC (the libc crate has it only for uclibc).
const SHM_EXEC: u64 = 0o100000;

/// `SystemCallErrorNumber=`: an errno name or number, or `kill`; unset kills
/// the process with SIGSYS.
pub fn default_action(error_number: Option<&str>) -> anyhow::Result<ScmpAction> {
    let Some(value) = error_number else {
        return Ok(ScmpAction::KillProcess);
    };
    let errno = match value {
        "kill" => return Ok(ScmpAction::KillProcess),
        "EPERM" => libc::EPERM,
        "EACCES" => libc::EACCES,
        "ENOSYS" => libc::ENOSYS,
        "EINVAL" => libc::EINVAL,
        "EOPNOTSUPP" => libc::EOPNOTSUPP,
        other => other
            .parse::<i32>()
            .ok()
            .filter(|n| (0..4096).contains(n))
            .with_context(|| {
                format!("SystemCallErrorNumber={other}: not an errno this helper knows")
            })?,
    };
    Ok(ScmpAction::Errno(errno))
}

/// The allow or deny list; returns the filter and the names that are not
/// system calls on this architecture (systemd skips those too).
pub fn syscall_filter(
    policy: &Policy,
    action: ScmpAction,
) -> anyhow::Result<(ScmpFilterContext, Vec<String>)> {
    let (default, listed) = match policy.mode {
        Mode::Allow => (action, ScmpAction::Allow),
        Mode::Deny => (ScmpAction::Allow, action),
    };
    let mut filter = ScmpFilterContext::new(default).context("seccomp_init")?;
    let mut skipped = Vec::new();
    for name in &policy.names {
        let added = ScmpSyscall::from_name(name)
            .ok()
            .filter(|sys| filter.add_rule(listed, *sys).is_ok());
        if added.is_none() {
            skipped.push(name.clone());
        }
    }
    Ok((filter, skipped))
}

/// systemd's MemoryDenyWriteExecute=: no mapping both writable and
/// executable, no mprotect() that adds execution, no executable shmat().
pub fn memory_deny_write_execute() -> anyhow::Result<ScmpFilterContext> {
    let mut filter = ScmpFilterContext::new(ScmpAction::Allow).context("seccomp_init")?;
    let eperm = ScmpAction::Errno(libc::EPERM);
    let wx = (libc::PROT_WRITE | libc::PROT_EXEC) as u64;
    let x = libc::PROT_EXEC as u64;
    let rules = [
        ("mmap", wx, wx),
        ("mprotect", x, x),
        ("pkey_mprotect", x, x),
        ("shmat", SHM_EXEC, SHM_EXEC),
    ];
    for (name, mask, value) in rules {
        let sys = ScmpSyscall::from_name(name).with_context(|| format!("resolving {name}"))?;
        let cond = ScmpArgCompare::new(2, ScmpCompareOp::MaskedEqual(mask), value);
        if let Err(e) = filter.add_rule_conditional_exact(eperm, sys, &[cond]) {
            bail!("adding the {name} rule: {e}");
        }
    }
    Ok(filter)
}
