"""A tiny Hugging Face hub on 127.0.0.1, enough for huggingface_hub's ``snapshot_download``:

    GET  /api/models/ORG/NAME/revision/REV     the repository's commit (404 RevisionNotFound if unknown)
    GET  /api/models/ORG/NAME/tree/COMMIT      the file listing (LFS entries carry their sha256)
    HEAD /ORG/NAME/resolve/COMMIT/FILE         the file's etag, size and commit headers
    GET  /ORG/NAME/resolve/COMMIT/FILE         the file

A repository id listed in ``gated`` answers 403 with ``X-Error-Code: GatedRepo`` (as the hub does for
an account without access), an unknown one 401 ``RepoNotFound``. Every request path is recorded.
Stdlib only; run it in a thread with ``with FakeHub(repos) as hub`` and point ``HF_ENDPOINT`` (or
``huggingface_hub.constants.ENDPOINT``) at ``hub.url``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


class FakeHub:
    def __init__(self, repos: dict[str, tuple[str, Path]], gated: tuple[str, ...] = ()):
        """``repos``: repo id -> (commit, folder whose files are the repository's)."""
        self.repos = repos
        self.gated = gated
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                hub._serve(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._serve(self, body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ routing

    def _serve(self, h: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = unquote(urlparse(h.path).path)
        self.requests.append(f"{h.command} {path}")
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6:
            repo, what, rev = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
            if not self._repo_ok(h, repo, body):
                return
            commit, folder = self.repos[repo]
            if rev not in (commit, "main"):
                return self._error(h, 404, "RevisionNotFound", body)
            if what == "revision":
                data = {"id": repo, "modelId": repo, "sha": commit, "private": False,
                        "siblings": [{"rfilename": f.name} for f in self._files(folder)]}
                return self._json(h, data, body)
            if what == "tree":
                return self._json(h, [self._entry(f) for f in self._files(folder)], body)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, commit, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            if not self._repo_ok(h, repo, body):
                return
            file = self.repos[repo][1] / name
            if not file.is_file():
                return self._error(h, 404, "EntryNotFound", body)
            data = file.read_bytes()
            h.send_response(200)
            h.send_header("X-Repo-Commit", self.repos[repo][0])
            h.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            if body:
                h.wfile.write(data)
            return
        self._error(h, 404, "EntryNotFound", body)

    def _repo_ok(self, h: BaseHTTPRequestHandler, repo: str, body: bool) -> bool:
        if repo in self.gated:
            self._error(h, 403, "GatedRepo", body)
            return False
        if repo not in self.repos:
            self._error(h, 401, "RepoNotFound", body)
            return False
        return True

    @staticmethod
    def _files(folder: Path) -> list[Path]:
        return sorted(f for f in folder.iterdir() if f.is_file())

    @staticmethod
    def _entry(f: Path) -> dict[str, object]:
        data = f.read_bytes()
        entry: dict[str, object] = {"type": "file", "path": f.name, "size": len(data),
                                    "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
        if f.suffix == ".safetensors":
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    @staticmethod
    def _json(h: BaseHTTPRequestHandler, data: object, body: bool) -> None:
        raw = json.dumps(data).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        h.end_headers()
        if body:
            h.wfile.write(raw)

    @staticmethod
    def _error(h: BaseHTTPRequestHandler, status: int, code: str, body: bool) -> None:
        raw = json.dumps({"error": code}).encode()
        h.send_response(status)
        h.send_header("X-Error-Code", code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        h.end_headers()
        if body:
            h.wfile.write(raw)
