"""A Hugging Face Hub on loopback for the `florenced pull` tests.

Serves model directories in the Hub's URL and API layout, with the headers
huggingface_hub and florenced read:

- GET  /api/models/{repo}/revision/{rev}[?blobs=true]  id, sha, siblings (size, blobId, lfs)
- GET  /api/models/{repo}/tree/{rev}[/{path}]           the tree listing snapshot_download walks
- HEAD/GET /{repo}/resolve/{rev}/{file}                 a regular file: 200 with ETag (git blob id),
                                                        X-Repo-Commit; an LFS file (*.onnx): 302 to the
                                                        CDN with X-Linked-Etag (sha256), X-Linked-Size
- HEAD/GET /cdn/{sha256}  on a second port               the LFS bytes, with Range support (206, 416)

The CDN is another origin (another port), as on the real Hub, so clients take
the metadata from the 302 and must not send the token there. Errors carry the
Hub's X-Error-Code (RepoNotFound with 401, RevisionNotFound, EntryNotFound).

Faults for the tests, each on one repository file:
  --corrupt FILE        serve FILE with one byte flipped (its digest no longer matches)
  --drop-after FILE:N   the first GET of FILE sends N bytes, then closes the connection
  --stall-after FILE:N  the first GET of FILE sends N bytes, reports it, then waits until the
                        client goes away
  --claim-size FILE:N   list FILE with size N (a model too big for the disk)
  --private REPO        REPO answers only to `Authorization: Bearer <--token>`

Prints `hub PORT` and `cdn PORT` once listening, then one JSON line per request
({"method", "path", "range", "status", "auth", "origin"}) and per fault
({"event": "stalled", "file", "bytes"}) on stdout. Stops when stdin closes.
"""

import argparse
import hashlib
import json
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".onnx", ".onnx_data")

_print_lock = threading.Lock()


def emit(obj):
    with _print_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


class Repo:
    def __init__(self, repo_id, root):
        self.id = repo_id
        self.files = {}  # path -> bytes
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != "hailo")
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                with open(full, "rb") as f:
                    self.files[rel] = f.read()
        listing = "".join(f"{p}\0{self.blob_id(p)}\n" for p in sorted(self.files))
        self.sha = hashlib.sha1(f"{repo_id}\n{listing}".encode()).hexdigest()

    def is_lfs(self, path):
        return path.endswith(LFS_SUFFIXES)

    def blob_id(self, path):
        data = self.files[path]
        if self.is_lfs(path):
            # The git blob of an LFS file is its pointer file.
            data = self.pointer(path)
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def sha256(self, path):
        return hashlib.sha256(self.files[path]).hexdigest()

    def pointer(self, path):
        data = self.files[path]
        return (
            "version https://git-lfs.github.com/spec/v1\n"
            f"oid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"
        ).encode()


class Hub:
    def __init__(self, args):
        self.repos = {}
        for spec in args.repo:
            repo_id, root = spec.split("=", 1)
            self.repos[repo_id] = Repo(repo_id, root)
        self.token = args.token
        self.private = set(args.private)
        self.corrupt = set(args.corrupt)
        self.drop = dict(self._file_n(s) for s in args.drop_after)
        self.stall = dict(self._file_n(s) for s in args.stall_after)
        self.claim = dict(self._file_n(s) for s in args.claim_size)
        self.lock = threading.Lock()
        self.cdn_port = None

    @staticmethod
    def _file_n(spec):
        path, n = spec.rsplit(":", 1)
        return path, int(n)

    def content(self, repo, path):
        data = repo.files[path]
        if path in self.corrupt:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        return data

    def size(self, repo, path):
        return self.claim.get(path, len(repo.files[path]))

    def fault(self, table, path):
        """Takes the one-shot fault of `path` from `table` (drop or stall)."""
        with self.lock:
            return table.pop(path, None)

    def find_lfs(self, sha):
        for repo in self.repos.values():
            for path in repo.files:
                if repo.is_lfs(path) and repo.sha256(path) == sha:
                    return repo, path
        return None, None


def split_repo_path(parts):
    """`owner/name/rest...` -> (repo id, rest)."""
    if len(parts) < 2:
        return None, []
    return f"{parts[0]}/{parts[1]}", parts[2:]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: Hub = None
    origin = "hub"

    def log_message(self, format, *args):  # silence the default stderr log
        pass

    def _log(self, status):
        emit(
            {
                "method": self.command,
                "path": self.path,
                "range": self.headers.get("Range"),
                "status": status,
                "auth": self.headers.get("Authorization") is not None,
                "origin": self.origin,
            }
        )

    def _send(self, status, headers=None, body=b"", head=False):
        self._log(status)
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _error(self, status, code, message, head=False, extra=None):
        headers = {"Content-Type": "application/json", "X-Error-Code": code}
        headers.update(extra or {})
        body = json.dumps({"error": message}).encode()
        self._send(status, headers, body, head)

    def _repo(self, repo_id, head=False):
        """The repository if this client may see it, else answers as the Hub does."""
        repo = self.hub.repos.get(repo_id)
        auth = self.headers.get("Authorization")
        if auth is not None and auth != f"Bearer {self.hub.token}":
            self._send(
                401,
                {"X-Error-Message": "Invalid credentials in Authorization header"},
                head=head,
            )
            return None
        if repo is None or (repo_id in self.hub.private and auth is None):
            self._error(401, "RepoNotFound", "Repository not found", head)
            return None
        return repo

    def _revision(self, repo, rev, head=False):
        if unquote(rev) in ("main", repo.sha):
            return True
        self._error(404, "RevisionNotFound", "Invalid rev id: " + rev, head)
        return False

    def do_HEAD(self):
        self._dispatch(head=True)

    def do_GET(self):
        self._dispatch(head=False)

    def _dispatch(self, head):
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if self.origin == "cdn":
            if len(parts) == 2 and parts[0] == "cdn":
                repo, path = self.hub.find_lfs(parts[1])
                if repo is not None:
                    return self._serve_bytes(repo, path, {}, head)
            return self._send(404, head=head)
        if parts[:2] == ["api", "models"]:
            repo_id, rest = split_repo_path(parts[2:])
            if repo_id is None:
                return self._send(404, head=head)
            repo = self._repo(repo_id, head)
            if repo is None:
                return
            if len(rest) == 2 and rest[0] == "revision":
                if not self._revision(repo, rest[1], head):
                    return
                blobs = parse_qs(url.query).get("blobs", ["false"])[0].lower() == "true"
                return self._json(self._info(repo, blobs), head)
            if len(rest) >= 2 and rest[0] == "tree":
                if not self._revision(repo, rest[1], head):
                    return
                return self._json(self._tree(repo, "/".join(rest[2:])), head)
            return self._send(404, head=head)
        repo_id, rest = split_repo_path(parts)
        if repo_id is not None and len(rest) >= 3 and rest[0] == "resolve":
            repo = self._repo(repo_id, head)
            if repo is None:
                return
            if not self._revision(repo, rest[1], head):
                return
            path = "/".join(rest[2:])
            if path not in repo.files:
                return self._error(
                    404, "EntryNotFound", f"{path} does not exist", head,
                    {"X-Repo-Commit": repo.sha},
                )
            common = {"X-Repo-Commit": repo.sha}
            if repo.is_lfs(path):
                sha = repo.sha256(path)
                return self._send(
                    302,
                    {
                        **common,
                        "Location": f"http://127.0.0.1:{self.hub.cdn_port}/cdn/{sha}",
                        "ETag": f'"{repo.blob_id(path)}"',
                        "X-Linked-Etag": f'"{sha}"',
                        "X-Linked-Size": str(self.hub.size(repo, path)),
                    },
                    head=head,
                )
            return self._serve_bytes(repo, path, common, head)
        self._send(404, head=head)

    def _json(self, obj, head):
        self._send(200, {"Content-Type": "application/json"}, json.dumps(obj).encode(), head)

    def _info(self, repo, blobs):
        siblings = []
        for path in sorted(repo.files):
            s = {"rfilename": path}
            if blobs:
                s["blobId"] = repo.blob_id(path)
                s["size"] = self.hub.size(repo, path)
                if repo.is_lfs(path):
                    s["lfs"] = {
                        "sha256": repo.sha256(path),
                        "size": self.hub.size(repo, path),
                        "pointerSize": len(repo.pointer(path)),
                    }
            siblings.append(s)
        return {
            "id": repo.id,
            "modelId": repo.id,
            "sha": repo.sha,
            "private": repo.id in self.hub.private,
            "siblings": siblings,
        }

    def _tree(self, repo, prefix):
        entries, dirs = [], set()
        for path in sorted(repo.files):
            if prefix and not path.startswith(prefix + "/"):
                continue
            parent = path.rsplit("/", 1)[0] if "/" in path else None
            if parent and parent not in dirs:
                dirs.add(parent)
                entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": parent})
            e = {"type": "file", "oid": repo.blob_id(path), "size": self.hub.size(repo, path), "path": path}
            if repo.is_lfs(path):
                e["lfs"] = {
                    "oid": repo.sha256(path),
                    "size": self.hub.size(repo, path),
                    "pointerSize": len(repo.pointer(path)),
                }
            entries.append(e)
        return entries

    def _serve_bytes(self, repo, path, headers, head):
        data = self.hub.content(repo, path)
        total = len(data)
        etag = repo.sha256(path) if repo.is_lfs(path) else repo.blob_id(path)
        headers = {**headers, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[len("bytes=") :].partition("-")
            start = int(first or 0)
            end = int(last) if last else total - 1
            if start >= total:
                return self._send(416, {**headers, "Content-Range": f"bytes */{total}"}, head=head)
            end = min(end, total - 1)
            data = data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
            status = 206
        headers["Content-Length"] = str(len(data))
        if head:
            return self._send(status, headers, head=True)
        drop = None if head else self.hub.fault(self.hub.drop, path)
        stall = None if head else self.hub.fault(self.hub.stall, path)
        cut = drop if drop is not None else stall
        if cut is None:
            return self._send(status, headers, data)
        # Send the headers and the first bytes, then cut or stall.
        self._log(status)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data[:cut])
        self.wfile.flush()
        if stall is not None:
            emit({"event": "stalled", "file": path, "bytes": start + cut})
            # Wait for the client to go away (its read returns EOF), never a timer.
            try:
                while self.connection.recv(65536):
                    pass
            except OSError:
                pass
        else:
            emit({"event": "dropped", "file": path, "bytes": start + cut})
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client closing its keep-alive connection (or being killed mid-transfer)
        # is normal here, not worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def serve(hub, origin):
    handler = type(f"{origin}Handler", (Handler,), {"hub": hub, "origin": origin})
    server = Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", action="append", default=[], metavar="ID=DIR")
    ap.add_argument("--token", default="hf_loopback_token")
    ap.add_argument("--private", action="append", default=[])
    ap.add_argument("--corrupt", action="append", default=[])
    ap.add_argument("--drop-after", action="append", default=[])
    ap.add_argument("--stall-after", action="append", default=[])
    ap.add_argument("--claim-size", action="append", default=[])
    args = ap.parse_args()
    hub = Hub(args)
    cdn = serve(hub, "cdn")
    hub.cdn_port = cdn.server_address[1]
    api = serve(hub, "hub")
    emit({"hub": api.server_address[1], "cdn": hub.cdn_port})
    # Runs until the test closes stdin (or dies, which closes it too).
    sys.stdin.read()


if __name__ == "__main__":
    main()
