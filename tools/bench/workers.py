"""Benchmarked systems as long-lived worker processes (protocol.py): each loads
its model once, then the driver sends one request at a time, in turn, so all
systems see the same machine noise."""

from __future__ import annotations

import json
import os
import subprocess
import time


class WorkerError(RuntimeError):
    pass


class Worker:
    started = 0  # numbers the logs: the same system may run on several models

    def __init__(self, name: str, argv: list[str], log_dir: str, env: dict | None = None):
        self.name = name
        Worker.started += 1
        safe = name.replace(" ", "_").replace("/", "_")
        self.log_path = os.path.join(log_dir, f"{Worker.started:02d}-{safe}.log")
        self.log = open(self.log_path, "w")
        t = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, bufsize=1, env={**os.environ, **(env or {})})
        self.ready = self._read()
        # Process start (interpreter, imports) plus model load, as a user waits for it.
        self.start_ms = (time.perf_counter() - t) * 1e3
        if not self.ready.get("ready"):
            raise WorkerError(f"{name}: unexpected first line {self.ready}")
        self.peak_rss_kb = self.ready.get("peak_rss_kb") or 0

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise WorkerError(f"{self.name} exited ({self.proc.returncode}); see {self.log_path}:\n{self.tail()}")
        return json.loads(line)

    def tail(self, n: int = 15) -> str:
        self.log.flush()
        with open(self.log_path) as f:
            return "".join(f.readlines()[-n:])

    def ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        out = self._read()
        if "error" in out:
            raise WorkerError(f"{self.name}: {out['error']} (request {request}); see {self.log_path}")
        self.peak_rss_kb = max(self.peak_rss_kb, out.get("peak_rss_kb") or 0)
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
