"""HTTP streams: N concurrent clients on loopback against one florenced with
`max_concurrent_requests: N` (every worker pipeline on one shared model), or
against N florenced processes of one worker each (the baseline). Clients run
in rounds: all N send one request at once, and the next round starts when
every answer of this one is in, so a round is "N requests at once". Every
request carries its own image (the fixture with one pixel changed), so no
request is answered from vision features a worker kept from the one before."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import subprocess
import threading
import time

from PIL import Image

from reaped import Reaped
from streams_stats import Analysis, Measured


class HttpError(RuntimeError):
    pass


def images(path: str, count: int) -> list[str]:
    """`count` different data URIs of the image at `path` (pixel (k, 0) of the k-th recoloured)."""
    base = Image.open(path).convert("RGB")
    out = []
    for k in range(count):
        im = base.copy()
        im.putpixel((k % im.width, k // im.width), (k * 37 % 256, k * 91 % 256, k * 53 % 256))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        out.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    return out


class Server:
    """One florenced on an ephemeral loopback port, configured by flags only
    (no configuration file, no HailoRT), its JSON log in `log_path`."""

    def __init__(self, florenced: str, model_dir: str, concurrent: int, log_path: str):
        argv = [florenced, "--model-dir", model_dir, "--port", "0", "--log-format", "json",
                "--set", f"max_concurrent_requests={concurrent}", "--set", f"queue_depth={max(8, concurrent)}",
                "--set", "request_timeout_s=3600"]
        # florenced reads every FLORENCED_* variable as configuration (FLORENCED_BIN too): none leaks in.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("FLORENCED_") and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        env.update({"FLORENCED_CONFIG": "", "FLORENCE_HAILORT_LIBRARY": "/nonexistent/libhailort.so"})
        self.log_path = log_path
        self.child = Reaped(argv, env, subprocess.DEVNULL, subprocess.PIPE)
        self.address: tuple[str, int] | None = None
        self._serving = threading.Event()
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        with open(self.log_path, "w") as log:
            for line in self.child.proc.stderr:
                log.write(line)
                log.flush()
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("message") == "model loaded; serving":
                    host, port = entry["address"].rsplit(":", 1)
                    self.address = (host, int(port))
                    self._serving.set()
        self._serving.set()  # it ended: wait_serving says so

    def wait_serving(self, guard_s: float) -> tuple[str, int]:
        if not self._serving.wait(guard_s) or self.address is None:
            raise HttpError(f"florenced did not start serving; see {self.log_path}")
        return self.address

    def stop(self, guard_s: float) -> int:
        """SIGTERM (in-flight requests finish), then its peak RSS (KiB)."""
        self.child.send(signal.SIGTERM)
        code = self.child.reap(guard_s)
        if code != 0:
            raise HttpError(f"florenced exited with {code}; see {self.log_path}")
        return self.child.peak_rss_kb


def run(florenced: str, model_dir: str, task: str, tokens: int, streams: int, separate: bool, rounds: int,
        uris: list[str], log_dir: str, guard_s: float) -> Measured:
    """`streams` clients for `rounds` timed rounds after a warm-up round."""
    tag = f"http-{task.strip('<>').lower()}-{streams}-{'separate' if separate else 'one'}"
    servers = [Server(florenced, model_dir, 1 if separate else streams, os.path.join(log_dir, f"{tag}-{p}.log"))
               for p in range(streams if separate else 1)]
    measured = Measured(streams, len(servers))
    try:
        addresses = [s.wait_serving(guard_s) for s in servers]
        barrier = threading.Barrier(streams)
        # Per round and client: when its request went out and when its answer was in.
        sent = [[0.0] * streams for _ in range(rounds + 1)]
        answered = [[0.0] * streams for _ in range(rounds + 1)]
        errors: list[BaseException] = []
        lock = threading.Lock()

        def client(i: int) -> None:
            host, port = addresses[i if separate else 0]
            try:
                for r in range(rounds + 1):
                    body = json.dumps({"image": uris[r * streams + i], "task": task, "max_length": tokens,
                                       "min_length": tokens, "num_beams": 1})
                    # A connection per request: one kept open while the other clients'
                    # requests of the round run may pass the server's idle timeout.
                    conn = http.client.HTTPConnection(host, port, timeout=guard_s)
                    barrier.wait()
                    t = time.monotonic()
                    conn.request("POST", "/v1/caption", body, {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    answer = resp.read()
                    done = time.monotonic()
                    conn.close()
                    if resp.status != 200:
                        raise HttpError(f"client {i}: {resp.status} {answer[:300]!r}")
                    with lock:
                        sent[r][i], answered[r][i] = t, done
                        measured.analyses.append(Analysis(f"c{i}", done, (done - t) * 1e3,
                                                          json.loads(answer).get("token_count", -1)))
            except BaseException as e:
                errors.append(e)
                barrier.abort()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(streams)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise HttpError(f"{tag}: {errors[0]!r}; logs in {log_dir}")
        measured.rounds_s = [max(answered[r]) - min(sent[r]) for r in range(1, rounds + 1)]
    finally:
        peaks = []
        for s in servers:
            try:
                peaks.append(s.stop(guard_s))
            except HttpError:
                if not measured.rounds_s:
                    continue  # the run already failed; that error is the one to see
                raise
    measured.peak_rss_kb = peaks
    return measured
