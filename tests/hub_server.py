"""A real Hub read server for the tests: ``olah`` (MIT) serving git repos the test fabricates, offline (its upstream
is a closed loopback port), on a free loopback port, behind a small layer that corrects the four places where olah
differs from the Hub for local repos (docs/benchmarks.md, "A Hub mirror"):

- it ignores HTTP Range (``datasets`` streams parquet by reading its footer by range): the layer answers 206 with
  the asked bytes;
- it answers 500 for a missing file (Hub: 404 ``EntryNotFound``);
- it answers 401 for a missing revision (Hub: 404 ``RevisionNotFound``; a missing repo: 404 ``RepoNotFound``) and
  for the tree of a folder a revision lacks (Hub: 404 ``EntryNotFound``; transformers lists
  ``additional_chat_templates/`` of every tokenizer repo it loads);
- it answers 401 for a repo's info without a revision (the Hub gives the default branch's): asked at ``main``.

olah is found as ``$SEGP_HF_OLAH`` (its ``olah-cli``), on PATH, or beside this Python; without it the tests that
need the server are skipped. Nothing here reaches any address but 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

LOOPBACK = "127.0.0.1"
_REPO = re.compile(r"^/api/(models|datasets)/([^/]+/[^/?]+)")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_TREE = re.compile(r"^/api/(?:models|datasets)/[^/]+/[^/]+/tree/([^/?]+)/[^?]+")


def olah_command() -> str | None:
    found = os.environ.get("SEGP_HF_OLAH") or shutil.which("olah-cli")
    beside = Path(sys.executable).with_name("olah-cli")
    return found or (str(beside) if beside.exists() else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def lfs_pointer(folder: Path, data: bytes) -> bytes:
    """The git-lfs pointer of ``data``, its object stored where olah reads a local repo's LFS objects
    (``.git/lfs/objects/ab/cd/<sha256>``, git-lfs's own layout)."""
    oid = hashlib.sha256(data).hexdigest()
    target = folder / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()


def git_repo(folder: Path, files: dict[str, bytes], message: str = "fabricated", branch: str = "main",
             lfs: tuple[str, ...] = ()) -> str:
    """A git repo at ``folder`` holding ``files`` (path -> bytes) in one new commit on ``branch`` (made from the
    current one when new); files whose name ends with one of ``lfs`` are committed as git-lfs pointers, as the Hub
    stores them. Its commit id."""
    folder.mkdir(parents=True, exist_ok=True)
    run = lambda *args: subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True)
    if not (folder / ".git").exists():
        run("init", "-q", "-b", branch)
    elif run("branch", "--show-current").stdout.strip() != branch:
        run("checkout", "-q", "-B", branch)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(lfs_pointer(folder, data) if name.endswith(lfs) else data)
    run("add", "-A")
    run("-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-q", "-m", message)
    return run("rev-parse", "HEAD").stdout.strip()


class _Correcting(BaseHTTPRequestHandler):
    upstream: tuple[str, int]
    mirrors: Path

    def log_message(self, *args):  # quiet
        pass

    def do_HEAD(self):
        self._forward("HEAD")

    def do_GET(self):
        self._forward("GET")

    def do_POST(self):
        self._forward("POST")

    def _forward(self, method: str):
        path = self.path
        match = _REPO.match(path)
        if match and path.split("?")[0].rstrip("/") == match.group(0):
            path = match.group(0) + "/revision/main" + path[len(match.group(0)):]  # info without a revision
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "range", "accept-encoding")}
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
        status, extra = answer.status, {}
        if status == 500 and "/resolve/" in path:
            status, extra, data = 404, {"X-Error-Code": "EntryNotFound"}, b'{"error": "Entry not found"}'
        elif status == 401:
            status, extra, data = 404, {"X-Error-Code": self._missing(path)}, b'{"error": "not found"}'
        self._answer(method, status, answer.getheaders(), extra, data)

    def _missing(self, path: str) -> str:
        match = _REPO.match(path) or re.match(r"^/(?:(datasets)/)?([^/]+/[^/]+)/resolve/", path)
        kind, repo = (match.group(1) or "models", match.group(2)) if match else ("models", "")
        folder = self.mirrors / kind / repo
        if not repo or not (folder / ".git").exists():
            return "RepoNotFound"
        tree = _TREE.match(path)  # a folder the revision lacks (the Hub: 404 EntryNotFound; olah: 401)
        if tree and subprocess.run(["git", "rev-parse", "-q", "--verify", f"{unquote(tree.group(1))}^{{commit}}"],
                                   cwd=folder, capture_output=True, check=False).returncode == 0:
            return "EntryNotFound"
        return "RevisionNotFound"

    def _answer(self, method, status, upstream_headers, extra, data):
        wanted = _RANGE.match(self.headers.get("Range", "").strip())
        dropped = {"content-length", "transfer-encoding", "connection", "content-encoding", *map(str.lower, extra)}
        headers = {k: v for k, v in upstream_headers if k.lower() not in dropped}
        if wanted and status == 200:
            first, last = wanted.groups()
            start = len(data) - int(last) if not first else int(first)
            end = len(data) - 1 if not first or not last else min(int(last), len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            status, data = 206, data[start:end + 1]
        headers.update(extra)
        # HEAD: the size olah gives for the body it did not send (huggingface_hub takes it as the file's size)
        length = {k.lower(): v for k, v in upstream_headers}.get("content-length") if method == "HEAD" else None
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", length if length is not None and not extra else str(len(data)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)


class HubServer:
    """olah on one loopback port, the correcting layer on another (``endpoint``); ``mirrors``: where the served
    git repos go (``mirrors/datasets/ORG/NAME``, ``mirrors/models/ORG/NAME``)."""

    def __init__(self, root: Path, command: str):
        self.root, self.mirrors = root, root / "mirrors"
        self.mirrors.mkdir(parents=True, exist_ok=True)
        self.olah_port, self.port, closed = free_port(), free_port(), free_port()
        config = root / "olah.toml"
        config.write_text(
            f'[basic]\nhost = "{LOOPBACK}"\nport = {self.olah_port}\nrepos-path = "{root / "repos"}"\n'
            f'mirrors-path = ["{self.mirrors}"]\nhf-scheme = "http"\nhf-netloc = "{LOOPBACK}:{closed}"\n'
            f'hf-lfs-netloc = "{LOOPBACK}:{closed}"\nmirror-netloc = "{LOOPBACK}:{self.port}"\n'
            f'mirror-lfs-netloc = "{LOOPBACK}:{self.port}"\n\n[accessibility]\noffline = true\n')
        self.log = open(root / "olah.log", "w")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen([command, "-c", str(config)], cwd=root, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        handler = type("Handler", (_Correcting,), {"upstream": (LOOPBACK, self.olah_port), "mirrors": self.mirrors})
        self.proxy = ThreadingHTTPServer((LOOPBACK, self.port), handler)
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        self._wait()

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _wait(self, seconds: float = 60.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"olah exited: {(self.root / 'olah.log').read_text()[-2000:]}")
            try:
                with socket.create_connection((LOOPBACK, self.olah_port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("olah did not start listening")

    def dataset_repo(self, repo_id: str, files: dict[str, bytes], message: str = "fabricated",
                     lfs: tuple[str, ...] = ()) -> str:
        return git_repo(self.mirrors / "datasets" / repo_id, files, message, lfs=lfs)

    def model_repo(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        return git_repo(self.mirrors / "models" / repo_id, files, f"files of {branch}", branch)

    def stop(self):
        self.proxy.shutdown()
        self.proxy.server_close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def client_env(endpoint: str, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh process that reaches the Hub at ``endpoint`` as a user would (``HF_ENDPOINT``),
    with an empty HF cache under ``home`` and offline mode lifted only there; loopback only, never a proxy."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0", "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
            "PYTHONPATH": root, "OMP_NUM_THREADS": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
            "NO_PROXY": LOOPBACK, "no_proxy": LOOPBACK, **extra}


class RecordedPushes:
    """What an autospec'd ``HfApi`` is asked to write, written as the Hub would into a local git repo that
    ``HubServer`` serves (``mirrors/models/ORG/NAME``): ``create_repo`` makes the repo with the Hub's first commit
    (``.gitattributes`` on ``main``), ``create_branch`` a branch at ``revision``, ``upload_folder`` one commit on
    ``revision`` adding or replacing the folder's files (the Hub's upload never deletes what it does not name)."""

    def __init__(self, server: HubServer):
        self.server = server

    def folder(self, repo_id: str) -> Path:
        return self.server.mirrors / "models" / repo_id

    def _git(self, repo_id: str, *args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=hub", "-c", "user.email=hub@localhost", *args],
                              cwd=self.folder(repo_id), check=True, capture_output=True, text=True).stdout.strip()

    def wire(self, api) -> None:
        api.whoami.return_value = {"name": "someone"}
        api.create_repo.side_effect = self.create_repo
        api.create_branch.side_effect = self.create_branch
        api.upload_folder.side_effect = self.upload_folder

    def create_repo(self, repo_id, *args, exist_ok=False, **kwargs):
        if (self.folder(repo_id) / ".git").exists():
            if not exist_ok:
                raise RuntimeError(f"{repo_id} exists")
            return
        git_repo(self.folder(repo_id), {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                 "initial commit")

    def create_branch(self, repo_id, *args, branch, revision=None, exist_ok=False, **kwargs):
        if self._git(repo_id, "branch", "--list", branch):
            if not exist_ok:
                raise RuntimeError(f"branch {branch} exists")
            return
        self._git(repo_id, "branch", branch, revision or "main")

    def upload_folder(self, *args, repo_id, folder_path, revision=None, commit_message="upload", **kwargs):
        self._git(repo_id, "checkout", "-q", revision or "main")
        source = Path(folder_path)
        for path in sorted(source.rglob("*")):
            if path.is_file() and ".git" not in path.relative_to(source).parts:
                target = self.folder(repo_id) / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        self._git(repo_id, "add", "-A")
        self._git(repo_id, "commit", "-q", "--allow-empty", "-m", commit_message)
        return self._git(repo_id, "rev-parse", "HEAD")
