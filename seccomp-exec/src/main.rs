//! Runs a program under the seccomp filters a systemd unit describes
//! (`SystemCallFilter=`, `SystemCallErrorNumber=`, `MemoryDenyWriteExecute=`),
//! for tests on machines where systemd is not PID 1 and `systemd-run` cannot
//! start a transient unit. Groups are expanded by the installed
//! `systemd-analyze syscall-filter`, so the filter follows the unit file.
//!
//!   seccomp-exec --unit hailo-florence.service [--drop-in FILE]... -- PROGRAM ARGS...
//!   seccomp-exec --unit hailo-florence.service --print-allowed

mod filters;
mod policy;
mod unit;

use anyhow::{Context, bail};
use clap::Parser;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Runs PROGRAM under the seccomp filters of a systemd unit")]
struct Args {
    /// The unit file whose [Service] section holds the filter.
    #[arg(long)]
    unit: PathBuf,
    /// Drop-ins applied after the unit, in order.
    #[arg(long = "drop-in")]
    drop_ins: Vec<PathBuf>,
    /// Print the system calls the filter lets through (allow list) or stops
    /// (deny list), one per line, and exit.
    #[arg(long)]
    print_allowed: bool,
    /// The program and its arguments.
    #[arg(last = true)]
    command: Vec<String>,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("seccomp-exec: {e:#}");
        std::process::exit(127);
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let settings = unit::SeccompSettings::read(&args.unit, &args.drop_ins)?;
    let groups = policy::Groups::from_systemd_analyze()?;
    let policy = policy::Policy::from_lines(&settings.filter, &groups)?;
    let action = filters::default_action(settings.error_number.as_deref())?;
    let compiled = policy
        .as_ref()
        .map(|p| filters::syscall_filter(p, action))
        .transpose()?;
    if args.print_allowed {
        let (Some(p), Some((_, skipped))) = (&policy, &compiled) else {
            bail!("{} has no SystemCallFilter=", args.unit.display());
        };
        for name in p.names.iter().filter(|n| !skipped.contains(n)) {
            println!("{name}");
        }
        return Ok(());
    }
    let Some((program, rest)) = args.command.split_first() else {
        bail!("no program given (seccomp-exec --unit UNIT -- PROGRAM ARGS...)");
    };
    // Describe before loading: after it, only the filter's calls work.
    eprintln!(
        "seccomp-exec: {} {} system calls, others {:?}; MemoryDenyWriteExecute={}",
        match &policy {
            Some(p) if p.mode == policy::Mode::Allow => "allowing",
            Some(_) => "denying",
            None => "no filter:",
        },
        policy.as_ref().map_or(0, |p| p.names.len()),
        action,
        settings.memory_deny_write_execute,
    );
    if settings.memory_deny_write_execute {
        filters::memory_deny_write_execute()?
            .load()
            .context("loading the MemoryDenyWriteExecute filter")?;
    }
    if let Some((filter, _)) = &compiled {
        filter.load().context("loading the SystemCallFilter")?;
    }
    let err = std::process::Command::new(program).args(rest).exec();
    Err(err).with_context(|| format!("executing {program}"))
}
