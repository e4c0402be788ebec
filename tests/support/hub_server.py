"""A small file-backed Hugging Face Hub look-alike, for tests that run the real `huggingface_hub` and `datasets`.

It speaks the subset of the Hub's HTTP API that those clients use to create repos, commit (regular files inline,
large files through the git-LFS "basic" transfer), list trees, resolve and download files (with ranges), and load
datasets. Blobs live on disk under `root/blobs`, each repo's refs and commit history in `root/repos/**.json`, so
a server restarted on the same root sees the same repos.

Tests drive it from Python: `fail_next` / `delay_next` inject faults into the next matching requests, `requests`
is the log of what the clients sent (headers included), `commit_count` / `uploaded_bytes` count the work done,
`reset()` empties a running server between tests. `python -m tests.support.hub_server ROOT` serves one by hand.

Token roles are modelled: `add_token(role="read")` or `add_token(role="fineGrained", scoped=[...])` makes a token
that whoami describes like the Hub does and that is refused (403) where it may not write; the default tokens are
`write` tokens. Not modelled: Xet storage (clients must run with HF_HUB_DISABLE_XET=1), pull requests, tags, gated
repos, per-namespace permissions (a write token may write anywhere), multipart LFS uploads, the dataset viewer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import uvicorn
import yaml
from fastapi import FastAPI, Request, Response

logger = logging.getLogger(__name__)

REPO_TYPES = ("model", "dataset", "space")
# Files the Hub would send through LFS whatever their size; everything else is inline unless large or binary.
LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".msgpack")
LFS_SUFFIXES += (".png", ".jpg", ".jpeg", ".webp", ".gif", ".tif", ".tiff", ".pdf", ".zip", ".gz", ".tar", ".zst")
REGULAR_MAX_SIZE = 10 * 1024 * 1024
_FRONT_MATTER = re.compile(r"^---\s*\n(.*?)\n---\s*(\n|$)", re.DOTALL)  # a card's YAML metadata block
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class HubError(Exception):
    """An HTTP error the way the Hub reports it: the client maps `X-Error-Code` to its exception classes."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.extra = headers or {}, extra or {}

    def response(self) -> Response:
        # Header values must be latin-1: escape anything else (a non-ASCII path in a message, say).
        headers = {"X-Error-Message": self.message.encode("ascii", "backslashreplace").decode(), **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        body = json.dumps({"error": self.message, **self.extra})
        return Response(body, self.status, headers, media_type="application/json")


# ---------------------------------------------------------------- storage (no HTTP here)


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    lfs: bool
    oid: str  # git blob id: of the content for regular files, of the LFS pointer for LFS files

    def tree_entry(self, path: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "path": path, "size": self.size, "oid": self.oid}
        if self.lfs:
            pointer_size = len(_lfs_pointer(self.sha256, self.size))
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": pointer_size}
        return entry


@dataclass
class Commit:
    id: str
    parent: str | None
    title: str
    message: str
    date: str
    author: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    commit_count: int = 0  # commits made through the commit endpoint (the initial commit is not one)
    uploaded_bytes: int = 0

    def resolve(self, revision: str) -> Commit:
        sha = self.branches.get(revision) or (revision if revision in self.commits else None)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[sha]

    def history(self, head: Commit) -> list[Commit]:
        out = [head]
        while out[-1].parent is not None:
            out.append(self.commits[out[-1].parent])
        return out


class HubStore:
    """Repos, refs and commits in memory, mirrored to JSON; blobs content-addressed on disk. Thread-safe."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        for path in sorted((self.root / "repos").glob("*/*/*.json")):
            self._load(path)

    def _repo_file(self, repo: Repo) -> Path:
        return self.root / "repos" / f"{repo.repo_type}s" / f"{repo.repo_id}.json"

    def _save(self, repo: Repo) -> None:
        path = self._repo_file(repo)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(repo), indent=1))

    def _load(self, path: Path) -> None:
        data = json.loads(path.read_text())
        commits = {}
        for sha, raw in data.pop("commits").items():
            files = {p: StoredFile(**f) for p, f in raw.pop("files").items()}
            commits[sha] = Commit(files=files, **raw)
        repo = Repo(commits=commits, **data)
        self.repos[(repo.repo_type, repo.repo_id)] = repo

    # blobs
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def put_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()

    # repos
    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def create(self, repo_type: str, repo_id: str, private: bool, author: str) -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, f"You already created this {repo_type} repo")
            repo = Repo(repo_type, repo_id, private, _now())
            # Like the Hub: every repo starts with one commit holding .gitattributes.
            sha = self.put_blob(GITATTRIBUTES)
            files = {".gitattributes": StoredFile(sha, len(GITATTRIBUTES), False, _git_blob_oid(GITATTRIBUTES))}
            self._add_commit(repo, "main", None, files, "initial commit", "", author)
            self.repos[(repo_type, repo_id)] = repo
            self._save(repo)
            return repo

    def delete(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            repo = self.repos.pop((repo_type, repo_id), None)
            if repo is None:
                raise HubError(404, "Repository not found", "RepoNotFound")
            self._repo_file(repo).unlink(missing_ok=True)

    def _add_commit(
        self, repo: Repo, branch: str, parent: str | None, files: dict[str, StoredFile], title: str, msg: str, who: str
    ) -> Commit:
        seed = json.dumps(
            [repo.repo_id, parent, title, sorted((p, f.sha256) for p, f in files.items()), time.time_ns()]
        )
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, title, msg, _now(), who, files)
        repo.commits[commit.id] = commit
        repo.branches[branch] = commit.id
        return commit

    def commit(self, repo: Repo, branch: str, ops: list[dict[str, Any]], header: dict[str, Any], author: str) -> Commit:
        """Apply NDJSON commit operations atomically: either every operation applies or the branch is unchanged."""
        with self.lock:
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            head = repo.commits[repo.branches[branch]]
            parent = header.get("parentCommit")
            if parent is not None and parent != head.id:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            for op in ops:
                key, value = op["key"], op["value"]
                path = value.get("path", "")
                if key == "file":
                    data = base64.b64decode(value["content"])
                    files[path] = StoredFile(self.put_blob(data), len(data), False, _git_blob_oid(data))
                    repo.uploaded_bytes += len(data)
                elif key == "lfsFile":
                    sha = value["oid"]
                    if not self.has_blob(sha):
                        raise HubError(422, f"LFS object {sha} for '{path}' was never uploaded")
                    size = self.blob_path(sha).stat().st_size
                    files[path] = StoredFile(sha, size, True, _git_blob_oid(_lfs_pointer(sha, size)))
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    gone = [p for p in files if p.startswith(prefix)]
                    if not gone:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in gone:
                        del files[p]
                else:
                    raise HubError(400, f"Unsupported commit operation '{key}'")
            title = header.get("summary") or "Commit"
            commit = self._add_commit(repo, branch, head.id, files, title, header.get("description", ""), author)
            repo.commit_count += 1
            self._save(repo)
            return commit

    def create_branch(self, repo: Repo, branch: str, starting_point: str | None) -> None:
        with self.lock:
            if branch in repo.branches:
                raise HubError(409, f"Branch {branch} already exists")
            repo.branches[branch] = repo.resolve(starting_point or "main").id
            self._save(repo)


def _tree_entries(commit: Commit, prefix: str, recursive: bool) -> list[dict[str, Any]]:
    """Files and folders under `prefix` (a folder path, '' for the root): direct children, or all of them."""
    base = prefix.rstrip("/") + "/" if prefix else ""
    folders: set[str] = set()
    entries: list[dict[str, Any]] = []
    for path in sorted(commit.files):
        if not path.startswith(base):
            continue
        parts = path[len(base) :].split("/")
        for depth in range(1, len(parts)):
            folder = base + "/".join(parts[:depth])
            folders.add(folder)
            if not recursive:
                break
        if recursive or len(parts) == 1:
            entries.append(commit.files[path].tree_entry(path))
    listed = [{"type": "directory", "path": f, "oid": _folder_oid(commit, f)} for f in sorted(folders)]
    return listed + entries  # the Hub lists folders first


def _folder_oid(commit: Commit, folder: str) -> str:
    """A stand-in for git's tree id: it changes whenever anything under the folder does."""
    members = sorted((p, f.oid) for p, f in commit.files.items() if p.startswith(folder + "/"))
    return hashlib.sha1(json.dumps(members).encode()).hexdigest()


def _last_commit(repo: Repo, head: Commit, path: str) -> dict[str, str]:
    """The newest commit in `head`'s history that changed `path` (a file, or anything under a folder)."""

    def state(commit: Commit) -> list[tuple[str, str]]:
        return [(p, f.sha256) for p, f in commit.files.items() if p == path or p.startswith(path.rstrip("/") + "/")]

    history = repo.history(head)
    found = history[0]
    for newer, older in itertools.pairwise(history):
        if state(newer) != state(older):
            break
        found = older
    return {"id": found.id, "title": found.title, "date": found.date}


# ---------------------------------------------------------------- faults and request log


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    remaining: int
    status: int = 500
    seconds: float = 0.0
    message: str = "Injected fault"
    code: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method in (method, "*") and bool(self.pattern.search(path))


@dataclass
class RecordedRequest:
    method: str
    path: str  # decoded path, without the query string
    query: str
    headers: dict[str, str]  # lower-cased names
    status: int | None = None  # filled in once answered

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


# ---------------------------------------------------------------- HTTP


_REPO = r"/api/(?P<type>model|dataset|space)s/(?P<ns>[^/]+)/(?P<name>[^/]+)"
_GIT = r"/(?:(?P<type>dataset|space)s/)?(?P<ns>[^/]+)/(?P<name>[^/]+)"
_LFS = r"/_lfs/(?P<type>model|dataset|space)/(?P<ns>[^/]+)/(?P<name>[^/]+)/(?P<oid>[0-9a-f]{64})"
# `refs/convert/parquet` and `refs/pr/N` reach /resolve unquoted from HfFileSystem, quoted from everything else.
_RESOLVE_REV = r"(?P<rev>refs(?:/|%2F)(?:convert|pr)(?:/|%2F)[^/]+|[^/]+)"


class HubServer:
    """The Hub look-alike: `start()` serves it on 127.0.0.1 in a background thread, `stop()` ends it.

    `tokens` maps each accepted token to its user name (default: one random `hf_test_...` token for `user`).
    `token_access` maps a token to its whoami `accessToken` (role, fine-grained scopes); absent: a write token.
    `tree_page_size` caps entries per `/tree` page (the Hub uses 1000, 50 with expand); lower it to test paging.
    `reset()` gives a running server empty storage, logs and faults, which is cheaper than a new server.
    """

    def __init__(
        self, root: Path, tokens: dict[str, str] | None = None, user: str = "test-user", tree_page_size: int = 1000
    ):
        self.user = user
        self.token = "hf_test_" + secrets.token_hex(16)  # looks like a token, can never be a real one
        self._initial = (dict(tokens) if tokens is not None else {self.token: user}, tree_page_size)
        self._lock = threading.Lock()
        self._generation = 0
        self.reset(root)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""
        self.app = self._build_app()
        self._routes: list[tuple[tuple[str, ...], re.Pattern[str], Callable[..., Response]]] = [
            (("GET",), re.compile(r"/api/whoami-v2"), self._whoami),
            (("GET",), re.compile(r"/api/agent-harnesses"), self._agent_harnesses),
            (("POST",), re.compile(r"/api/repos/create"), self._create_repo),
            (("DELETE",), re.compile(r"/api/repos/delete"), self._delete_repo),
            (("POST",), re.compile(r"/api/validate-yaml"), self._validate_yaml),
            (("GET",), re.compile(r"/api/(?P<type>model|dataset)s"), self._list_repos),
            (("GET",), re.compile(_REPO + r"(?:/revision/(?P<rev>.+))?"), self._repo_info),
            (("GET",), re.compile(_REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?"), self._tree),
            (("POST",), re.compile(_REPO + r"/paths-info/(?P<rev>[^/]+)"), self._paths_info),
            (("POST",), re.compile(_REPO + r"/preupload/(?P<rev>[^/]+)"), self._preupload),
            (("POST",), re.compile(_REPO + r"/commit/(?P<rev>[^/]+)"), self._commit),
            (("GET",), re.compile(_REPO + r"/commits/(?P<rev>[^/]+)"), self._commits),
            (("GET",), re.compile(_REPO + r"/refs"), self._refs),
            (("POST",), re.compile(_REPO + r"/branch/(?P<branch>[^/]+)"), self._create_branch),
            (("POST",), re.compile(_GIT + r"\.git/info/lfs/objects/batch"), self._lfs_batch),
            (("PUT",), re.compile(_LFS), self._lfs_put),
            (("POST",), re.compile(_GIT + r"\.git/info/lfs/objects/verify"), self._lfs_verify),
            (("GET", "HEAD"), re.compile(_GIT + r"/resolve/" + _RESOLVE_REV + r"/(?P<path>.+)"), self._resolve),
        ]

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> HubServer:
        # Bind the socket ourselves: port 0 picks a free port with no window for another process to take it.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this: without it, a keep-alive request waits ~40 ms on delayed ACKs.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test Hub server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            with self._lock:
                self._generation += 1  # releases requests held by delay_next
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- test API

    def reset(self, root: Path) -> None:
        """Start over on empty storage in `root`: no repos, faults, logged requests; initial tokens and page size.

        A request still held by `delay_next` is released at once with a 503 and never touches the new state.
        """
        with self._lock:
            self._generation += 1
            self.store = HubStore(root)
            self.tokens: dict[str, str] = dict(self._initial[0])
            self.token_access: dict[str, dict[str, Any]] = {}
            self.tree_page_size: int = self._initial[1]
            self.requests: list[RecordedRequest] = []
            # Requests no route knew or a handler crashed on: the first thing to read when a client fails here.
            self.unhandled: list[RecordedRequest] = []
            self._faults: list[_Fault] = []

    def fail_next(
        self, method: str, path_regex: str, status: int = 500, count: int = 1, code: str | None = None
    ) -> None:
        """Answer the next `count` requests whose decoded path matches `path_regex` (re.search) with `status`.

        `method` may be "*". `code` sets `X-Error-Code` (e.g. "RepoNotFound"). The request is not executed.
        """
        with self._lock:
            self._faults.append(_Fault(method.upper(), re.compile(path_regex), count, status=status, code=code))

    def delay_next(self, method: str, path_regex: str, seconds: float, count: int = 1) -> None:
        """Hold the next `count` matching requests for `seconds` before handling them.

        A delay past the client's timeout makes the client raise a timeout, but the request still runs afterwards
        (as on a real server): add `fail_next` on the same request to make it also have no effect.
        """
        with self._lock:
            self._faults.append(_Fault(method.upper(), re.compile(path_regex), count, seconds=seconds))

    def add_token(
        self, user: str | None = None, role: str = "write", scoped: list[tuple[str, str, list[str]]] | None = None
    ) -> str:
        """A new accepted token of `user` (default: `self.user`) with this role: "read", "write" or "fineGrained".

        `scoped` (fineGrained only): (entity type, entity name, permissions) triples, the way the Hub's whoami lists
        them, e.g. ("user", "test-user", ["repo.content.read", "repo.write"]) or ("dataset", "owner/name", [...]).
        """
        token = "hf_test_" + secrets.token_hex(16)
        access: dict[str, Any] = {"displayName": f"test {role}", "role": role}
        if role == "fineGrained":
            entries = [{"entity": {"type": t, "name": n}, "permissions": list(p)} for t, n, p in scoped or []]
            access["fineGrained"] = {"canReadGatedRepos": False, "global": [], "scoped": entries}
        with self._lock:
            self.tokens[token] = user or self.user
            self.token_access[token] = access
        return token

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method.upper() and re.search(path_regex, r.path)]

    def bytes_served(self, sizes: dict[str, int], since: int = 0) -> int:
        """Bytes of the files in `sizes` (path in repo -> size) the server sent since request number `since`:
        each GET of one by `/resolve/` counts the range it asked for (clipped to the file), or the whole file."""
        total = 0
        for request in self.requests[since:]:
            name = next((name for name in sizes if request.path.endswith("/" + name)), None)
            if request.method != "GET" or name is None or "/resolve/" not in request.path:
                continue
            size = sizes[name]
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", request.headers.get("range", ""))
            if match is None:
                total += size
            elif match.group(1) == "":  # a suffix: the last N bytes
                total += min(int(match.group(2)), size)
            else:
                last = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
                total += last - int(match.group(1)) + 1
        return total

    def authorization_headers(self) -> list[str | None]:
        """The Authorization header of every request so far (None where none was sent)."""
        return [r.authorization for r in self.requests]

    def commit_count(self, repo_id: str, repo_type: str = "dataset") -> int:
        repo = self.store.get(repo_type, repo_id)
        return repo.commit_count if repo else 0

    def uploaded_bytes(self, repo_id: str | None = None, repo_type: str = "dataset") -> int:
        """Bytes received as file content (inline commit files + LFS PUTs), for one repo or all of them."""
        repos = self.store.repos.values() if repo_id is None else [self.store.get(repo_type, repo_id)]
        return sum(r.uploaded_bytes for r in repos if r is not None)

    def create_repo(self, repo_id: str, repo_type: str = "dataset", private: bool = False) -> None:
        self.store.create(repo_type, repo_id, private, self.user)

    def list_files(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> list[str]:
        repo = self.store.get(repo_type, repo_id)
        if repo is None:
            raise KeyError(f"{repo_type} repo {repo_id} does not exist")
        return sorted(repo.resolve(revision).files)

    def read_file(self, repo_id: str, path: str, repo_type: str = "dataset", revision: str = "main") -> bytes:
        repo = self.store.get(repo_type, repo_id)
        if repo is None:
            raise KeyError(f"{repo_type} repo {repo_id} does not exist")
        return self.store.read_blob(repo.resolve(revision).files[path].sha256)

    def head(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> str:
        repo = self.store.get(repo_type, repo_id)
        if repo is None:
            raise KeyError(f"{repo_type} repo {repo_id} does not exist")
        return repo.resolve(revision).id

    # ---------------------------------------------------------------- dispatch

    def _build_app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]

        # One catch-all route, routed below on the raw path: the clients percent-encode revisions and paths
        # (`refs%2Fconvert%2Fparquet`, `data%2Ftrain.parquet`), which path-parameter routing would decode first.
        @app.api_route("/{anything:path}", methods=methods)
        async def handle(request: Request) -> Response:
            return await self._handle(request)

        return app

    async def _handle(self, request: Request) -> Response:
        raw_path = request.scope["raw_path"].decode("latin-1").split("?", 1)[0]
        path = unquote(raw_path)
        method = request.method
        record = RecordedRequest(method, path, request.url.query, {k.lower(): v for k, v in request.headers.items()})
        body = await request.body()  # before any delay: a client that times out may close the connection
        with self._lock:
            generation = self._generation
            self.requests.append(record)
            delays = [f for f in self._faults if f.seconds and f.matches(method, path)]
            failure = next((f for f in self._faults if not f.seconds and f.matches(method, path)), None)
            for fault in [*delays, *([failure] if failure else [])]:
                fault.remaining -= 1
        # Sleep in small steps so that reset() and stop() end a held request at once (answered 503 below).
        deadline = time.monotonic() + sum(d.seconds for d in delays)
        while time.monotonic() < deadline and generation == self._generation:
            await asyncio.sleep(min(0.02, deadline - time.monotonic()))
        if generation != self._generation:
            response = HubError(503, "The test Hub was reset or stopped while this request waited").response()
        elif failure is not None:
            response = HubError(failure.status, failure.message, failure.code).response()
        else:
            response = self._dispatch(request, method, raw_path, path, body, record)
        record.status = response.status_code
        return response

    def _dispatch(
        self, request: Request, method: str, raw_path: str, path: str, body: bytes, record: RecordedRequest
    ) -> Response:
        for methods, pattern, handler in self._routes:
            match = pattern.fullmatch(raw_path)
            if match and method in methods:
                params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                try:
                    return handler(request, body, **params)
                except HubError as err:
                    return err.response()
                except Exception as err:
                    # A 4xx, not a 500: clients retry 5xx for ~20 s, which would hide this bug behind a slow test.
                    logger.exception("test Hub: %s %s failed", method, path)
                    self.unhandled.append(record)
                    return HubError(400, f"The test Hub failed on this request: {err!r}").response()
        self.unhandled.append(record)
        logger.warning("test Hub: no route for %s %s", method, path)
        return HubError(404, f"Not found: {method} {path}").response()

    # ---------------------------------------------------------------- auth

    def _user(self, request: Request) -> str | None:
        header = request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    def _readable(self, request: Request, type: str, ns: str, name: str) -> Repo:
        repo = self.store.get(type, f"{ns}/{name}")
        user = self._user(request)
        if repo is None or (repo.private and user is None):
            # Like the Hub: a private repo is indistinguishable from a missing one without a valid token.
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        return repo

    def _writable(self, request: Request, type: str, ns: str, name: str) -> tuple[Repo, str]:
        user = self._user(request)
        if user is None:
            raise HubError(401, "You must be authenticated to write to a repo", "RepoNotFound")
        repo = self.store.get(type, f"{ns}/{name}")
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        self._check_role(request, type, f"{ns}/{name}")
        return repo, user

    def _access(self, request: Request) -> dict[str, Any]:
        """The whoami `accessToken` of the request's (already accepted) token."""
        token = request.headers.get("authorization", "").partition(" ")[2]
        return self.token_access.get(token, {"displayName": "test", "role": "write"})

    def _check_role(self, request: Request, type: str, repo_id: str) -> None:
        """403 unless the token's role may write `repo_id`: write/admin, or fineGrained with `repo.write` on the repo
        or on its namespace (user or org)."""
        access = self._access(request)
        role = access.get("role")
        if role in ("write", "admin"):
            return
        if role == "fineGrained":
            for scope in access.get("fineGrained", {}).get("scoped", []):
                kind, name = scope["entity"]["type"], scope["entity"]["name"]
                covers = (kind in ("user", "org") and name == repo_id.split("/")[0]) or (kind, name) == (type, repo_id)
                if covers and "repo.write" in scope["permissions"]:
                    return
        raise HubError(403, f"You don't have the rights to write to {repo_id} with this token ({role})")

    def _url_prefix(self, repo: Repo) -> str:
        return self.endpoint + ("" if repo.repo_type == "model" else f"/{repo.repo_type}s") + f"/{repo.repo_id}"

    # ---------------------------------------------------------------- handlers

    def _whoami(self, request: Request, body: bytes) -> Response:
        user = self._user(request)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        token = self._access(request)
        return _json({"type": "user", "name": user, "fullname": user, "orgs": [], "auth": {"accessToken": token}})

    def _agent_harnesses(self, request: Request, body: bytes) -> Response:
        # huggingface_hub fetches this registry to tag its user agent when it runs under an AI coding agent.
        return _json({"standardEnvVars": [], "harnesses": {}})

    def _create_repo(self, request: Request, body: bytes) -> Response:
        user = self._user(request)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        payload = json.loads(body)
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type}")
        repo_id = f"{payload.get('organization') or user}/{payload['name']}"
        if self.store.get(repo_type, repo_id) is None:  # an existing repo is a 409 whatever the token may do
            self._check_role(request, repo_type, repo_id)
        private = bool(payload.get("private")) or payload.get("visibility") in ("private", "protected")
        url = self.endpoint + ("" if repo_type == "model" else f"/{repo_type}s") + f"/{repo_id}"
        try:
            self.store.create(repo_type, repo_id, private, user)
        except HubError as err:
            err.extra["url"] = url  # create_repo(exist_ok=True) reads the url from the 409 answer
            raise
        return _json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, request: Request, body: bytes) -> Response:
        payload = json.loads(body)
        ns = payload.get("organization") or self._user(request) or ""
        self._writable(request, payload.get("type") or "model", ns, payload["name"])
        self.store.delete(payload.get("type") or "model", f"{ns}/{payload['name']}")
        return _json({})

    def _validate_yaml(self, request: Request, body: bytes) -> Response:
        match = _FRONT_MATTER.match(json.loads(body).get("content", ""))
        try:
            if match:
                yaml.safe_load(match.group(1))
        except yaml.YAMLError as err:
            errors = [{"message": f"Invalid YAML in README.md metadata: {err}"}]
            return Response(json.dumps({"errors": errors, "warnings": []}), 400, media_type="application/json")
        return _json({"errors": [], "warnings": []})

    def _list_repos(self, request: Request, body: bytes, type: str) -> Response:
        """`HfApi.list_datasets(author=..., search=...)`: one page, public repos plus the caller's private ones."""
        user = self._user(request)
        author, search = request.query_params.get("author"), request.query_params.get("search") or ""
        found = [
            {"_id": repo.repo_id, "id": repo.repo_id, "author": repo.repo_id.split("/")[0], "private": repo.private}
            for (repo_type, repo_id), repo in sorted(self.store.repos.items())
            if repo_type == type
            and (author is None or repo_id.split("/")[0] == author)
            and search.lower() in repo_id.lower()
            and (not repo.private or repo_id.split("/")[0] == user)
        ]
        return _json(found)

    def _repo_info(self, request: Request, body: bytes, type: str, ns: str, name: str, rev: str = "main") -> Response:
        repo = self._readable(request, type, ns, name)
        commit = repo.resolve(rev)
        with_blobs = request.query_params.get("blobs") in ("1", "true", "True")
        siblings = []
        for path, stored in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                entry = stored.tree_entry(path)
                sibling.update(size=stored.size, blobId=stored.oid)
                if "lfs" in entry:
                    lfs = entry["lfs"]
                    sibling["lfs"] = {"size": lfs["size"], "sha256": lfs["oid"], "pointerSize": lfs["pointerSize"]}
            siblings.append(sibling)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(f"{type}/{repo.repo_id}".encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": ns,
            "sha": commit.id,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "createdAt": repo.created_at,
            "lastModified": commit.date,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(f.size for f in commit.files.values()),
        }
        if "README.md" in commit.files:
            info["cardData"] = _card_data(self.store.read_blob(commit.files["README.md"].sha256))
        return _json(info)

    def _tree(self, request: Request, body: bytes, type: str, ns: str, name: str, rev: str, path: str = "") -> Response:
        repo = self._readable(request, type, ns, name)
        commit = repo.resolve(rev)
        path = path.strip("/")
        if path and not any(p.startswith(path + "/") for p in commit.files):
            raise HubError(404, f"Path {path} does not exist or is not a folder", "EntryNotFound")
        recursive = request.query_params.get("recursive", "").lower() in ("1", "true")
        expand = request.query_params.get("expand", "").lower() in ("1", "true")
        entries = _tree_entries(commit, path, recursive)
        # Cursor pagination through the Link header, the way the Hub (and GitHub) do it.
        page_size = min(self.tree_page_size, 50) if expand else self.tree_page_size
        start = int(request.query_params.get("cursor", "0"))
        page = entries[start : start + page_size]
        if expand:
            page = [{**e, "lastCommit": _last_commit(repo, commit, e["path"])} for e in page]
        headers = {}
        if start + page_size < len(entries):
            query = f"recursive={recursive}&expand={expand}&cursor={start + page_size}"
            raw_path = request.scope["raw_path"].decode("latin-1")  # keeps a quoted revision quoted
            headers["Link"] = f'<{self.endpoint}{raw_path}?{query}>; rel="next"'
        return _json(page, headers)

    def _paths_info(self, request: Request, body: bytes, type: str, ns: str, name: str, rev: str) -> Response:
        repo = self._readable(request, type, ns, name)
        commit = repo.resolve(rev)
        form = parse_qs(body.decode()) if body else {}
        expand = form.get("expand", ["False"])[0].lower() in ("1", "true")
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                entry = commit.files[path].tree_entry(path)
            elif any(p.startswith(path + "/") for p in commit.files):
                entry = {"type": "directory", "path": path, "oid": _folder_oid(commit, path)}
            else:
                continue  # like the Hub: unknown paths are left out, not an error
            if expand:
                entry["lastCommit"] = _last_commit(repo, commit, path)
            out.append(entry)
        return _json(out)

    def _preupload(self, request: Request, body: bytes, type: str, ns: str, name: str, rev: str) -> Response:
        repo, _ = self._writable(request, type, ns, name)
        head = repo.resolve(rev) if rev in repo.branches else None
        files = []
        for f in json.loads(body)["files"]:
            sample = base64.b64decode(f.get("sample", ""))
            lfs = f["path"].lower().endswith(LFS_SUFFIXES) or b"\0" in sample or f["size"] > REGULAR_MAX_SIZE
            existing = head.files.get(f["path"]) if head else None
            # The client skips a file whose remote oid equals its local one: sha256 for LFS, git blob id otherwise.
            oid = None if existing is None else (existing.sha256 if existing.lfs else existing.oid)
            mode = "lfs" if lfs else "regular"
            files.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return _json({"files": files, "commitOid": head.id if head else None})

    def _commit(self, request: Request, body: bytes, type: str, ns: str, name: str, rev: str) -> Response:
        repo, user = self._writable(request, type, ns, name)
        if request.query_params.get("create_pr"):
            raise HubError(400, "The test Hub does not support pull requests")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        commit = self.store.commit(repo, rev, [line for line in lines if line["key"] != "header"], header, user)
        url = f"{self._url_prefix(repo)}/commit/{commit.id}"
        return _json({"success": True, "commitOid": commit.id, "commitUrl": url, "pullRequestUrl": None})

    def _commits(self, request: Request, body: bytes, type: str, ns: str, name: str, rev: str) -> Response:
        repo = self._readable(request, type, ns, name)
        out = [
            {"id": c.id, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": c.author}]}
            for c in repo.history(repo.resolve(rev))
        ]
        return _json(out)

    def _refs(self, request: Request, body: bytes, type: str, ns: str, name: str) -> Response:
        repo = self._readable(request, type, ns, name)
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": sha} for b, sha in repo.branches.items()]
        return _json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def _create_branch(self, request: Request, body: bytes, type: str, ns: str, name: str, branch: str) -> Response:
        repo, _ = self._writable(request, type, ns, name)
        self.store.create_branch(repo, branch, (json.loads(body) if body else {}).get("startingPoint"))
        return _json({})

    def _lfs_batch(self, request: Request, body: bytes, ns: str, name: str, type: str = "model") -> Response:
        repo, _ = self._writable(request, type, ns, name)
        payload = json.loads(body)
        if payload.get("operation") != "upload":
            raise HubError(400, "The test Hub only implements LFS uploads")
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], obj["size"]
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not self.store.has_blob(oid):  # no "actions" tells the client the object is already there
                # Upload to "storage" (like a presigned S3 URL), then verify on the Hub (like the Hub does).
                upload = f"{self.endpoint}/_lfs/{repo.repo_type}/{repo.repo_id}/{oid}"
                verify = f"{self._url_prefix(repo)}.git/info/lfs/objects/verify"
                item["actions"] = {"upload": {"href": upload, "header": {}}, "verify": {"href": verify}}
            objects.append(item)
        return _json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_put(self, request: Request, body: bytes, type: str, ns: str, name: str, oid: str) -> Response:
        # Like a presigned S3 URL: no Authorization header is sent here, the content must match its sha256.
        repo = self.store.get(type, f"{ns}/{name}")
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, "Uploaded content does not match its sha256")
        self.store.put_blob(body)
        with self.store.lock:
            repo.uploaded_bytes += len(body)
        return Response(status_code=200, headers={"ETag": f'"{oid}"'})

    def _lfs_verify(self, request: Request, body: bytes, ns: str, name: str, type: str = "model") -> Response:
        self._writable(request, type, ns, name)
        oid = json.loads(body)["oid"]
        if not self.store.has_blob(oid):
            raise HubError(404, f"LFS object {oid} not found")
        return _json({"success": True})

    def _resolve(
        self, request: Request, body: bytes, ns: str, name: str, rev: str, path: str, type: str = "model"
    ) -> Response:
        repo = self._readable(request, type, ns, name)
        commit = repo.resolve(rev)
        stored = commit.files.get(path)
        if stored is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.id})
        # ETag: git blob id for regular files, sha256 for LFS files, which is what the Hub's (linked) etags hold.
        headers = {
            "ETag": f'"{stored.sha256 if stored.lfs else stored.oid}"',
            "X-Repo-Commit": commit.id,
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
        }
        start, end, status = 0, stored.size - 1, 200
        range_header = request.headers.get("range")
        if range_header:
            parsed = _parse_range(range_header, stored.size)
            if parsed is None:
                headers["Content-Range"] = f"bytes */{stored.size}"
                return Response(status_code=416, headers=headers)
            (start, end), status = parsed, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{stored.size}"
        headers["Content-Length"] = str(end - start + 1)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        with self.store.blob_path(stored.sha256).open("rb") as f:
            f.seek(start)
            content = f.read(end - start + 1)
        return Response(content, status, headers, media_type="application/octet-stream")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` -> inclusive (start, end); None when not satisfiable."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end and start < size else None


def _card_data(readme: bytes) -> dict[str, Any] | None:
    match = _FRONT_MATTER.match(readme.decode("utf-8", "replace"))
    try:
        data = yaml.safe_load(match.group(1)) if match else None
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _json(data: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), 200, headers, media_type="application/json")


def serve(root: Path) -> None:  # pragma: no cover - manual debugging aid
    """`python -m tests.support.hub_server [ROOT]`: serve until Ctrl-C, printing what a shell needs to use it."""
    with HubServer(root) as server:
        print(f"HF_ENDPOINT={server.endpoint} HF_TOKEN={server.token} HF_HUB_DISABLE_XET=1", flush=True)
        threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    import sys

    serve(Path(sys.argv[1] if len(sys.argv) > 1 else "hub-root"))
