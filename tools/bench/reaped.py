"""Child processes whose peak resident memory is read as they are reaped:
os.wait4 gives that one child's rusage, whose ru_maxrss is the kernel's
high-water mark of its resident set (KiB on Linux; VmHWM at exit), so no
sampling can miss a peak and no other child is counted."""

from __future__ import annotations

import os
import signal
import subprocess
import threading


class Reaped:
    """A subprocess.Popen whose end is collected with os.wait4."""

    def __init__(self, argv: list[str], env: dict, stdout, stderr):
        self.argv = argv
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                     text=True, bufsize=1)
        self.peak_rss_kb: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, sig: int) -> None:
        """Sends `sig` unless reaped (not Popen.send_signal: its poll() would
        reap the child and lose its rusage)."""
        if self.peak_rss_kb is None:
            os.kill(self.proc.pid, sig)

    def reap(self, limit_s: float) -> int:
        """Waits for the exit (killed after `limit_s`, a hang guard) and keeps
        its peak RSS; returns the exit code."""
        if self.peak_rss_kb is not None:
            return self.proc.returncode
        guard = threading.Timer(limit_s, self.send, (signal.SIGKILL,))
        guard.start()
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
        finally:
            guard.cancel()
        # Popen must not wait for a process already reaped.
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.peak_rss_kb = usage.ru_maxrss
        return self.proc.returncode
