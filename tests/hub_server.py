"""A local Hugging Face Hub HTTP server for offline tests.

The real Hub cannot be reached from CI, and huggingface_hub ships no test server. This one speaks
the subset of the Hub's HTTP API that huggingface_hub 2.x, transformers 5 and datasets 5 use to
create repos, upload (regular and basic-LFS files, plain commits and pull requests), and download
(`hf_hub_download`, `snapshot_download`, `HfFileSystem`), so `push_to_hub` / `from_pretrained` /
`load_dataset("org/name")` round trips run against it unchanged. Point the clients at it with
`HF_ENDPOINT=<server.url>` and `HF_HUB_DISABLE_XET=1` *before* importing huggingface_hub.

Storage is on disk under `root`, one folder per repo. Every commit is a JSON record with a sha1 id
(hash of its parents, file manifest, message and date), branches and `refs/pr/N` point at commit
ids, and file contents are content-addressed by sha256. Git object ids follow git: a regular file's
oid is the git blob sha1 of its bytes, an LFS file's oid is the git blob sha1 of its pointer file.

Not implemented (the clients under test do not need them): Xet, multipart LFS, spaces, tags,
merging pull requests, gated repos. Any authenticated user may write to any namespace.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

USER_NAME = "lens-tester"
REPO_TYPES = ("model", "dataset")
URL_PREFIXES = {"model": "", "dataset": "datasets/"}
LFS_THRESHOLD_BYTES = 100 * 1000
LFS_EXTENSIONS = (".parquet", ".safetensors", ".arrow", ".bin", ".pt", ".pth", ".h5", ".npy", ".npz", ".fits")
MAX_REGULAR_FILE_BYTES = 10 * 1024 * 1024
TREE_PAGE_SIZE = 1000
DEFAULT_GITATTRIBUTES = "".join(
    f"*{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in LFS_EXTENSIONS
)


class HubError(Exception):
    """An HTTP error answered the way the Hub answers it (status, X-Error-Code, JSON `error`)."""

    def __init__(self, status: int, message: str, error_code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.extra = extra or {}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def git_blob_oid(content: bytes) -> str:
    """The id git gives a blob: sha1 over `blob <size>\\0<content>`."""
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _write_json(path: Path, value) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
    tmp.replace(path)


def _readme_metadata(content: bytes) -> dict | None:
    """The YAML front matter of a README, or None when there is none."""
    text = content.decode("utf-8", errors="replace")
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, flags=re.S)
    if not match:
        return None
    data = yaml.safe_load(match.group(1))
    return data if isinstance(data, dict) else None


def _check_model_index(metadata: dict) -> list[str]:
    """The structural checks the Hub applies to `model-index` before it accepts a card."""
    errors = []
    model_index = metadata.get("model-index")
    if model_index is None:
        return errors
    if not isinstance(model_index, list):
        return ["model-index must be a list"]
    for i, entry in enumerate(model_index):
        if not isinstance(entry, dict) or "name" not in entry:
            errors.append(f"model-index[{i}] must be a mapping with a 'name'")
            continue
        for j, result in enumerate(entry.get("results", [])):
            where = f"model-index[{i}].results[{j}]"
            if not isinstance(result, dict):
                errors.append(f"{where} must be a mapping")
                continue
            if not isinstance(result.get("task"), dict) or "type" not in result["task"]:
                errors.append(f"{where}.task.type is required")
            if not isinstance(result.get("dataset"), dict) or not {"name", "type"} <= set(result["dataset"]):
                errors.append(f"{where}.dataset needs 'name' and 'type'")
            metrics = result.get("metrics")
            if not isinstance(metrics, list) or not metrics:
                errors.append(f"{where}.metrics must be a non-empty list")
                continue
            for k, metric in enumerate(metrics):
                if not isinstance(metric, dict) or "type" not in metric or "value" not in metric:
                    errors.append(f"{where}.metrics[{k}] needs 'type' and 'value'")
    return errors


class Repo:
    """One repository on disk: metadata, refs, commit records and content-addressed objects."""

    def __init__(self, folder: Path, repo_type: str, repo_id: str):
        self.folder = folder
        self.repo_type = repo_type
        self.repo_id = repo_id

    # -- layout ------------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.folder / "repo.json"

    @property
    def refs_path(self) -> Path:
        return self.folder / "refs.json"

    @property
    def discussions_path(self) -> Path:
        return self.folder / "discussions.json"

    def object_path(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise HubError(400, f"Invalid sha256 object id {sha256!r}: expected 64 lowercase hex digits.")
        return self.folder / "objects" / sha256

    def commit_path(self, commit_id: str) -> Path:
        return self.folder / "commits" / f"{commit_id}.json"

    def exists(self) -> bool:
        return self.meta_path.is_file()

    @property
    def meta(self) -> dict:
        return json.loads(self.meta_path.read_text())

    @property
    def refs(self) -> dict[str, str]:
        return json.loads(self.refs_path.read_text())

    @property
    def discussions(self) -> list[dict]:
        return json.loads(self.discussions_path.read_text()) if self.discussions_path.is_file() else []

    # -- objects and commits -----------------------------------------------------------------
    def store_object(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        path = self.object_path(sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{sha256}.{threading.get_ident()}.tmp")
            tmp.write_bytes(content)
            tmp.replace(path)
        return sha256

    def has_object(self, sha256: str) -> bool:
        return self.object_path(sha256).is_file()

    def read_object(self, sha256: str) -> bytes:
        return self.object_path(sha256).read_bytes()

    def read_commit(self, commit_id: str) -> dict:
        return json.loads(self.commit_path(commit_id).read_text())

    def resolve(self, revision: str) -> str:
        """A branch name, `refs/...` ref or full commit id -> commit id (404 RevisionNotFound otherwise)."""
        refs = self.refs
        for candidate in (revision, f"refs/heads/{revision}"):
            if candidate in refs:
                return refs[candidate]
        if re.fullmatch(r"[0-9a-f]{40}", revision) and self.commit_path(revision).is_file():
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def ref_name(self, revision: str) -> str:
        """The ref a commit on `revision` moves; commits on a bare commit id are refused like on the Hub."""
        refs = self.refs
        if revision in refs:
            return revision
        if f"refs/heads/{revision}" in refs:
            return f"refs/heads/{revision}"
        self.resolve(revision)  # 404 if unknown
        raise HubError(400, f"Cannot commit on {revision!r}: it is not a branch or a pull-request ref.")

    def write_commit(self, parents: list[str], files: dict, title: str, message: str) -> str:
        record = {"parents": parents, "files": files, "title": title, "message": message, "date": _now(),
                  "authors": [USER_NAME]}
        commit_id = hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()
        record["id"] = commit_id
        self.commit_path(commit_id).parent.mkdir(parents=True, exist_ok=True)
        _write_json(self.commit_path(commit_id), record)
        return commit_id

    def set_ref(self, ref: str, commit_id: str) -> None:
        refs = self.refs
        refs[ref] = commit_id
        _write_json(self.refs_path, refs)

    def file_entry(self, content: bytes) -> dict:
        """Manifest entry for a regular (non-LFS) file committed inline."""
        sha256 = self.store_object(content)
        return {"sha256": sha256, "size": len(content), "lfs": False, "oid": git_blob_oid(content)}

    def lfs_entry(self, sha256: str, size: int | None) -> dict:
        if not self.has_object(sha256):
            raise HubError(
                400, f"LFS object {sha256} was never uploaded to {self.repo_id}: upload it through the LFS batch "
                     "endpoint before committing a pointer to it.")
        actual_size = self.object_path(sha256).stat().st_size
        if size is not None and size != actual_size:
            raise HubError(400, f"LFS object {sha256} has {actual_size} bytes, the commit says {size}.")
        pointer_oid = git_blob_oid(lfs_pointer(sha256, actual_size))
        return {"sha256": sha256, "size": actual_size, "lfs": True, "oid": pointer_oid}

    def log(self, commit_id: str) -> list[dict]:
        """Commits reachable from `commit_id`, newest first (first-parent history)."""
        history = []
        while commit_id:
            record = self.read_commit(commit_id)
            history.append(record)
            commit_id = record["parents"][0] if record["parents"] else None
        return history


def _tree_entries(files: dict, folder: str, recursive: bool) -> list[dict]:
    """Hub `tree` entries under `folder` ('' = root) for a commit manifest; folders get a sha1 of their content."""
    prefix = f"{folder}/" if folder else ""
    entries: dict[str, dict] = {}
    for path in sorted(files):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix):]
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            sub = prefix + "/".join(parts[:depth])
            if (recursive or depth == 1) and sub not in entries:
                entries[sub] = _folder_entry(files, sub)
            if not recursive:
                break
        if recursive or len(parts) == 1:
            entries[path] = _file_entry(path, files[path])
    return [entries[key] for key in sorted(entries)]


def _file_entry(path: str, entry: dict) -> dict:
    result = {"type": "file", "path": path, "size": entry["size"], "oid": entry["oid"]}
    if entry["lfs"]:
        result["lfs"] = {"oid": entry["sha256"], "size": entry["size"],
                         "pointerSize": len(lfs_pointer(entry["sha256"], entry["size"]))}
    return result


def _folder_entry(files: dict, folder: str) -> dict:
    digest = hashlib.sha1()
    for path in sorted(p for p in files if p.startswith(folder + "/")):
        digest.update(f"{path}\0{files[path]['oid']}\n".encode())
    return {"type": "directory", "path": folder, "oid": digest.hexdigest(), "size": 0}


class HubServer(ThreadingHTTPServer):
    """The HTTP server; `url`, `root` and `shutdown()` are the public surface."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, root: Path):
        super().__init__(("127.0.0.1", port), HubRequestHandler)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.write_lock = threading.RLock()
        self.requests_seen: list[tuple[str, str]] = []
        self._thread = threading.Thread(target=self.serve_forever, name="local-hub", daemon=True)

    def start(self) -> "HubServer":
        self._thread.start()
        return self

    def shutdown(self) -> None:
        super().shutdown()
        self.server_close()
        self._thread.join(timeout=5)

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Unsupported repo type {repo_type!r}: this local Hub serves {REPO_TYPES}.")
        if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo_id) or ".." in repo_id:
            raise HubError(400, f"Invalid repo id {repo_id!r}: expected 'namespace/name'.")
        return Repo(self.root / f"{repo_type}s" / repo_id, repo_type, repo_id)

    def existing_repo(self, repo_type: str, repo_id: str, authorized: bool) -> Repo:
        repo = self.repo(repo_type, repo_id)
        if not repo.exists() or (repo.meta["private"] and not authorized):
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def repo_url(self, repo: Repo) -> str:
        return f"{self.url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"


_API_REPO = r"/api/(?P<type>models|datasets)/(?P<repo>[^/]+/[^/]+)"
_GIT_REPO = r"/(?P<prefix>datasets/)?(?P<repo>[^/]+/[^/]+?)"


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer

    ROUTES = [
        ("GET", r"/api/whoami-v2", "whoami"),
        ("POST", r"/api/repos/create", "create_repo"),
        ("DELETE", r"/api/repos/delete", "delete_repo"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("GET", _API_REPO + r"(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
        ("GET", _API_REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", "tree"),
        ("POST", _API_REPO + r"/paths-info/(?P<rev>[^/]+)", "paths_info"),
        ("GET", _API_REPO + r"/refs", "refs"),
        ("GET", _API_REPO + r"/commits/(?P<rev>[^/]+)", "commits"),
        ("POST", _API_REPO + r"/branch/(?P<branch>[^/]+)", "create_branch"),
        ("DELETE", _API_REPO + r"/branch/(?P<branch>[^/]+)", "delete_branch"),
        ("POST", _API_REPO + r"/preupload/(?P<rev>[^/]+)", "preupload"),
        ("POST", _API_REPO + r"/commit/(?P<rev>[^/]+)", "commit"),
        ("POST", _API_REPO + r"/discussions", "create_discussion"),
        ("GET", _API_REPO + r"/discussions", "list_discussions"),
        ("GET", _API_REPO + r"/discussions/(?P<num>\d+)", "discussion"),
        ("POST", _GIT_REPO + r"\.git/info/lfs/objects/batch", "lfs_batch"),
        ("PUT", r"/lfs-upload/(?P<type>models|datasets)/(?P<repo>[^/]+/[^/]+)/(?P<oid>[0-9a-f]{64})", "lfs_upload"),
        ("POST", r"/lfs-verify/(?P<type>models|datasets)/(?P<repo>[^/]+/[^/]+)", "lfs_verify"),
        ("GET", _GIT_REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
        ("HEAD", _GIT_REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    ]
    _COMPILED = [(method, re.compile(pattern + r"/?"), name) for method, pattern, name in ROUTES]

    def log_message(self, format, *args):  # noqa: A002 - signature fixed by BaseHTTPRequestHandler
        """Silence per-request logging; `server.requests_seen` keeps the trail for tests."""

    # -- dispatch ----------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        self.server.requests_seen.append((method, split.path))
        try:
            self._body = self._read_body()
            for route_method, pattern, name in self._COMPILED:
                match = pattern.fullmatch(split.path)
                if route_method == method and match:
                    params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    getattr(self, f"handle_{name}")(**params)
                    return
            raise HubError(404, f"No route for {method} {split.path} in the local Hub")
        except HubError as err:
            self._send_json({"error": err.message, **err.extra}, status=err.status, error_code=err.error_code)
        except Exception as err:  # a server bug must reach the test as a 500, not a hung socket
            self._send_json({"error": f"local Hub internal error: {type(err).__name__}: {err}"}, status=500)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # -- request / response helpers ----------------------------------------------------------
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> dict:
        try:
            value = json.loads(self._body or b"{}")
        except json.JSONDecodeError as err:
            raise HubError(400, f"Request body is not valid JSON: {err}") from err
        if not isinstance(value, dict):
            raise HubError(400, "Request body must be a JSON object")
        return value

    @property
    def authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        return header.startswith("Bearer hf_") and len(header) > len("Bearer hf_")

    def _require_auth(self) -> None:
        if not self.authorized:
            raise HubError(401, "Invalid credentials in Authorization header")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None,
              error_code: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if error_code:
            self.send_header("X-Error-Code", error_code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, value, status: int = 200, headers: dict | None = None, error_code: str | None = None):
        if error_code is not None and status >= 400 and isinstance(value, dict):
            headers = {**(headers or {}), "X-Error-Message": value.get("error", "")}
        self._send(status, json.dumps(value).encode(), "application/json", headers, error_code)

    def _repo(self, type: str, repo: str) -> Repo:  # noqa: A002 - route group name
        return self.server.existing_repo(type[:-1], repo, self.authorized)

    def _git_repo(self, prefix: str | None, repo: str) -> Repo:
        return self.server.existing_repo("dataset" if prefix else "model", repo, self.authorized)

    # -- account and repo management ---------------------------------------------------------
    def handle_whoami(self):
        self._require_auth()
        self._send_json({
            "type": "user", "id": "0" * 24, "name": USER_NAME, "fullname": "Local Hub test user",
            "email": None, "orgs": [], "isPro": False, "canPay": False,
            "auth": {"type": "access_token", "accessToken": {"displayName": "local-test", "role": "write",
                                                             "createdAt": _now()}},
        })

    def handle_create_repo(self):
        self._require_auth()
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        name = payload.get("name")
        if not name:
            raise HubError(400, "create repo: 'name' is required")
        repo_id = f"{payload.get('organization') or USER_NAME}/{name}"
        repo = self.server.repo(repo_type, repo_id)
        private = payload.get("visibility", "public") == "private" or bool(payload.get("private"))
        with self.server.write_lock:
            if repo.exists():
                # the Hub's 409 carries the repo url: create_repo(exist_ok=True) reads it
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}",
                               extra={"url": self.server.repo_url(repo)})
            repo.folder.mkdir(parents=True, exist_ok=True)
            _write_json(repo.refs_path, {})
            files = {".gitattributes": repo.file_entry(DEFAULT_GITATTRIBUTES.encode())}
            commit_id = repo.write_commit([], files, "initial commit", "")
            repo.set_ref("refs/heads/main", commit_id)
            _write_json(repo.meta_path, {"id": repo_id, "type": repo_type, "private": private,
                                         "createdAt": _now()})
        self._send_json({"url": self.server.repo_url(repo), "name": repo_id, "id": repo_id})

    def handle_delete_repo(self):
        self._require_auth()
        payload = self._json_body()
        repo_id = f"{payload.get('organization') or USER_NAME}/{payload.get('name')}"
        repo = self.server.existing_repo(payload.get("type") or "model", repo_id, True)
        with self.server.write_lock:
            for path in sorted(repo.folder.rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()
            repo.folder.rmdir()
        self._send_json({})

    def handle_validate_yaml(self):
        payload = self._json_body()
        content = payload.get("content", "")
        try:
            metadata = _readme_metadata(content.encode())
        except yaml.YAMLError as err:
            raise HubError(400, f"Invalid YAML in README.md metadata: {err}") from err
        errors = _check_model_index(metadata or {})
        if errors:
            raise HubError(400, "Invalid model-index metadata: " + "; ".join(errors))
        warnings = [] if metadata else [{"message": "Empty or missing yaml metadata in repo card"}]
        self._send_json({"errors": [], "warnings": warnings})

    def handle_repo_info(self, type, repo, rev="main"):  # noqa: A002
        repository = self._repo(type, repo)
        commit_id = repository.resolve(rev)
        commit = repository.read_commit(commit_id)
        files = commit["files"]
        info = {
            "id": repository.repo_id, "_id": repository.repo_id, "author": repository.repo_id.split("/")[0],
            "sha": commit_id, "lastModified": commit["date"], "createdAt": repository.meta["createdAt"],
            "private": repository.meta["private"], "gated": False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": [],
            "siblings": [
                {"rfilename": path, "size": entry["size"], "blobId": entry["oid"],
                 **({"lfs": {"sha256": entry["sha256"], "size": entry["size"],
                             "pointerSize": len(lfs_pointer(entry["sha256"], entry["size"]))}}
                    if entry["lfs"] else {})}
                for path, entry in sorted(files.items())
            ],
        }
        if "README.md" in files:
            card_data = _readme_metadata(repository.read_object(files["README.md"]["sha256"])) or {}
            info["cardData"] = card_data
            info["tags"] = list(card_data.get("tags") or [])
            for key in ("library_name", "pipeline_tag"):
                if key in card_data:
                    info[key] = card_data[key]
        self._send_json(info)

    def handle_tree(self, type, repo, rev, path=""):  # noqa: A002
        repository = self._repo(type, repo)
        files = repository.read_commit(repository.resolve(rev))["files"]
        path = path.strip("/")
        if path and path not in {e["path"] for e in _tree_entries(files, "", recursive=True)
                                 if e["type"] == "directory"}:
            raise HubError(404, f"Path {path!r} is not a folder at revision {rev}", "EntryNotFound")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        entries = _tree_entries(files, path, recursive)
        start = int(self.query.get("cursor", ["0"])[0])
        page = entries[start:start + TREE_PAGE_SIZE]
        headers = {}
        if start + TREE_PAGE_SIZE < len(entries):
            next_url = (f"{self.server.url}/api/{type}/{repo}/tree/{quote(rev, safe='')}"
                        f"{'/' + quote(path) if path else ''}?recursive={recursive}"
                        f"&cursor={start + TREE_PAGE_SIZE}")
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._send_json(page, headers=headers)

    def handle_paths_info(self, type, repo, rev):  # noqa: A002
        repository = self._repo(type, repo)
        files = repository.read_commit(repository.resolve(rev))["files"]
        form = parse_qs(self._body.decode())
        if "paths" not in form and self._body.startswith(b"{"):
            form = {k: v if isinstance(v, list) else [v] for k, v in self._json_body().items()}
        folders = {e["path"]: e for e in _tree_entries(files, "", recursive=True) if e["type"] == "directory"}
        result = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in files:
                result.append(_file_entry(path, files[path]))
            elif path in folders:
                result.append(folders[path])
        self._send_json(result)

    def handle_refs(self, type, repo):  # noqa: A002
        repository = self._repo(type, repo)
        refs = repository.refs
        branches = [{"name": ref[len("refs/heads/"):], "ref": ref, "targetCommit": sha}
                    for ref, sha in sorted(refs.items()) if ref.startswith("refs/heads/")]
        prs = [{"name": ref[len("refs/"):], "ref": ref, "targetCommit": sha}
               for ref, sha in sorted(refs.items()) if ref.startswith("refs/pr/")]
        self._send_json({"branches": branches, "converts": [], "tags": [], "pullRequests": prs})

    def handle_commits(self, type, repo, rev):  # noqa: A002
        repository = self._repo(type, repo)
        self._send_json([
            {"id": c["id"], "title": c["title"], "message": c["message"], "date": c["date"],
             "authors": [{"user": name} for name in c["authors"]], "parents": c["parents"]}
            for c in repository.log(repository.resolve(rev))
        ])

    def handle_create_branch(self, type, repo, branch):  # noqa: A002
        self._require_auth()
        repository = self._repo(type, repo)
        start = self._json_body().get("startingPoint") or "main"
        with self.server.write_lock:
            if f"refs/heads/{branch}" in repository.refs:
                raise HubError(409, f"Branch {branch!r} already exists in {repository.repo_id}")
            if branch.startswith("refs/"):
                raise HubError(400, f"Invalid branch name {branch!r}")
            repository.set_ref(f"refs/heads/{branch}", repository.resolve(start))
        self._send_json({})

    def handle_delete_branch(self, type, repo, branch):  # noqa: A002
        self._require_auth()
        repository = self._repo(type, repo)
        with self.server.write_lock:
            refs = repository.refs
            if branch == "main" or f"refs/heads/{branch}" not in refs:
                raise HubError(400 if branch == "main" else 404, f"Cannot delete branch {branch!r}",
                               None if branch == "main" else "RevisionNotFound")
            del refs[f"refs/heads/{branch}"]
            _write_json(repository.refs_path, refs)
        self._send_json({})

    # -- uploads -----------------------------------------------------------------------------
    def handle_preupload(self, type, repo, rev):  # noqa: A002
        self._require_auth()
        repository = self._repo(type, repo)
        files = repository.read_commit(repository.resolve(rev))["files"]
        answers = []
        for item in self._json_body().get("files", []):
            path, size = item["path"], int(item["size"])
            lfs = size > LFS_THRESHOLD_BYTES or path.lower().endswith((".parquet", ".safetensors"))
            existing = files.get(path)
            if existing is None:
                oid = None
            else:
                oid = existing["sha256"] if existing["lfs"] else existing["oid"]
            answers.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                            "oid": oid})
        self._send_json({"files": answers, "commitOid": repository.resolve(rev)})

    def handle_lfs_batch(self, repo, prefix=None):
        self._require_auth()
        repository = self._git_repo(prefix, repo)
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, "Only LFS uploads go through the batch API of the local Hub; downloads use /resolve/.")
        if "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "The local Hub only offers the 'basic' LFS transfer")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            answer = {"oid": oid, "size": size, "authenticated": True}
            if not repository.has_object(oid):
                base = f"{self.server.url}"
                answer["actions"] = {
                    "upload": {"href": f"{base}/lfs-upload/{repository.repo_type}s/{repository.repo_id}/{oid}"},
                    "verify": {"href": f"{base}/lfs-verify/{repository.repo_type}s/{repository.repo_id}"},
                }
            objects.append(answer)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   "application/vnd.git-lfs+json")

    def handle_lfs_upload(self, type, repo, oid):  # noqa: A002
        repository = self.server.existing_repo(type[:-1], repo, authorized=True)
        actual = hashlib.sha256(self._body).hexdigest()
        if actual != oid:
            raise HubError(400, f"LFS upload to {oid} carried content with sha256 {actual}")
        repository.store_object(self._body)
        self._send(200, b"", "text/plain")

    def handle_lfs_verify(self, type, repo):  # noqa: A002
        self._require_auth()
        repository = self._repo(type, repo)
        payload = self._json_body()
        repository.lfs_entry(payload["oid"], int(payload["size"]))  # 400 if absent or of another size
        self._send_json({})

    def handle_commit(self, type, repo, rev):  # noqa: A002
        self._require_auth()
        repository = self._repo(type, repo)
        try:
            lines = [json.loads(line) for line in self._body.decode().splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise HubError(400, f"Commit payload is not NDJSON: {err}") from err
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "Commit payload must start with a 'header' line")
        header = lines[0]["value"]
        create_pr = self.query.get("create_pr", ["0"])[0] == "1"
        with self.server.write_lock:
            # with create_pr the commit goes on a new refs/pr/N that starts at `rev`
            head = repository.resolve(rev) if create_pr else repository.refs[repository.ref_name(rev)]
            parent = header.get("parentCommit")
            if parent is not None and parent != head:
                raise HubError(412, f"A commit has happened since {parent}. Please refresh and try again.")
            files = dict(repository.read_commit(head)["files"])
            for line in lines[1:]:  # every operation is checked before any ref moves or a PR opens
                self._apply_operation(repository, files, line)
            commit_id = repository.write_commit([head], files, header.get("summary") or "Upload",
                                                header.get("description", ""))
            if create_pr:
                num = self._open_pull_request(repository, header.get("summary", "Upload"),
                                              header.get("description", ""), head, rev)
                repository.set_ref(f"refs/pr/{num}", commit_id)
            else:
                repository.set_ref(repository.ref_name(rev), commit_id)
        repo_url = self.server.repo_url(repository)
        self._send_json({
            "success": True, "commitOid": commit_id, "commitUrl": f"{repo_url}/commit/{commit_id}",
            "pullRequestUrl": f"{repo_url}/discussions/{num}" if create_pr else None,
        })

    @staticmethod
    def _apply_operation(repository: Repo, files: dict, line: dict) -> None:
        key, value = line.get("key"), line.get("value", {})
        path = value.get("path", "")
        if key in ("file", "lfsFile") and (not path or path.startswith("/") or ".." in path.split("/")):
            raise HubError(400, f"Invalid path in commit: {path!r}")
        if key == "file":
            if value.get("encoding") != "base64":
                raise HubError(400, f"{path}: only base64 file content is supported")
            content = base64.b64decode(value["content"])
            if len(content) > MAX_REGULAR_FILE_BYTES:
                raise HubError(400, f"{path}: regular files over 10 MiB are rejected; upload it through LFS")
            files[path] = repository.file_entry(content)
        elif key == "lfsFile":
            if value.get("algo", "sha256") != "sha256":
                raise HubError(400, f"{path}: unsupported LFS hash {value.get('algo')!r}")
            files[path] = repository.lfs_entry(value["oid"], value.get("size"))
        elif key == "deletedFile":
            if path not in files:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del files[path]
        elif key == "deletedFolder":
            folder = path.rstrip("/") + "/"
            doomed = [p for p in files if p.startswith(folder)]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del files[p]
        else:
            raise HubError(400, f"Unknown commit operation {key!r}")

    # -- discussions / pull requests ---------------------------------------------------------
    def _open_pull_request(self, repository: Repo, title: str, description: str, base_commit: str,
                           base_revision: str) -> int:
        discussions = repository.discussions
        num = len(discussions) + 1
        base_ref = repository.ref_name(base_revision) if not re.fullmatch(r"[0-9a-f]{40}", base_revision) \
            else "refs/heads/main"
        discussions.append({"num": num, "title": title, "description": description, "isPullRequest": True,
                            "status": "draft", "createdAt": _now(), "base": base_ref})
        _write_json(repository.discussions_path, discussions)
        repository.set_ref(f"refs/pr/{num}", base_commit)
        return num

    def handle_create_discussion(self, type, repo):  # noqa: A002
        self._require_auth()
        repository = self._repo(type, repo)
        payload = self._json_body()
        title = (payload.get("title") or "").strip()
        if len(title) < 3:
            raise HubError(400, "Discussion title must be at least 3 characters long")
        with self.server.write_lock:
            if payload.get("pullRequest"):
                num = self._open_pull_request(repository, title, payload.get("description", ""),
                                              repository.resolve("main"), "main")
            else:
                discussions = repository.discussions
                num = len(discussions) + 1
                discussions.append({"num": num, "title": title, "description": payload.get("description", ""),
                                    "isPullRequest": False, "status": "open", "createdAt": _now()})
                _write_json(repository.discussions_path, discussions)
        self._send_json({"num": num, "url": f"{self.server.repo_url(repository)}/discussions/{num}"})

    def _discussion_json(self, repository: Repo, item: dict) -> dict:
        return {"num": item["num"], "title": item["title"], "status": item["status"],
                "isPullRequest": item["isPullRequest"], "createdAt": item["createdAt"],
                "author": {"name": USER_NAME}, "pinned": False, "numComments": 0,
                "repo": {"name": repository.repo_id, "type": repository.repo_type}}

    def handle_list_discussions(self, type, repo):  # noqa: A002
        repository = self._repo(type, repo)
        items = [self._discussion_json(repository, d) for d in repository.discussions]
        self._send_json({"discussions": items, "count": len(items), "start": 0, "numClosedDiscussions": 0})

    def handle_discussion(self, type, repo, num):  # noqa: A002
        repository = self._repo(type, repo)
        matches = [d for d in repository.discussions if d["num"] == int(num)]
        if not matches:
            raise HubError(404, f"Discussion {num} not found in {repository.repo_id}")
        item = matches[0]
        details = self._discussion_json(repository, item)
        details["events"] = [{"id": f"{item['num']:024x}", "type": "comment", "createdAt": item["createdAt"],
                              "author": {"name": USER_NAME},
                              "data": {"edited": False, "hidden": False,
                                       "latest": {"raw": item["description"], "author": {"name": USER_NAME}}}}]
        if item["isPullRequest"]:
            details["changes"] = {"base": item["base"]}
            details["filesWithConflicts"] = []
            details["diff"] = ""
        self._send_json(details)

    # -- downloads ---------------------------------------------------------------------------
    def handle_resolve(self, repo, rev, path, prefix=None):
        repository = self._git_repo(prefix, repo)
        commit_id = repository.resolve(rev)
        files = repository.read_commit(commit_id)["files"]
        if path not in files:
            self._send_json({"error": f"Entry not found: {path} at {rev}"}, status=404, error_code="EntryNotFound",
                            headers={"X-Repo-Commit": commit_id})
            return
        entry = files[path]
        headers = {"X-Repo-Commit": commit_id, "ETag": f'"{entry["oid"]}"', "Accept-Ranges": "bytes"}
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(entry["size"])})
        content = repository.read_object(entry["sha256"])
        status = 200
        range_header = self.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if not match or (not match.group(1) and not match.group(2)):
                raise HubError(416, f"Unsupported Range header {range_header!r}")
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else len(content) - 1, len(content) - 1)
            else:  # suffix range: the last N bytes
                start, end = max(len(content) - int(match.group(2)), 0), len(content) - 1
            if start >= len(content) and len(content) > 0:
                raise HubError(416, f"Range {range_header!r} starts past the end ({len(content)} bytes)")
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            content = content[start:end + 1]
            status = 206
        self._send(status, content, "application/octet-stream", headers)


def serve(port: int = 0, root: str | Path | None = None) -> HubServer:
    """Start a local Hub on 127.0.0.1:`port` (0 picks a free port) storing repos under `root`.

    Returns the running server: `server.url` for HF_ENDPOINT, `server.root`, `server.shutdown()`.
    """
    if root is None:
        import tempfile

        root = tempfile.mkdtemp(prefix="local_hub_")
    return HubServer(port, Path(root)).start()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the local Hub test server in the foreground.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--root", default="./local_hub_storage")
    args = parser.parse_args()
    server = serve(args.port, args.root)
    print(f"local Hub at {server.url} (storage {server.root}); HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
