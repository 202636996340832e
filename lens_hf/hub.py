"""Publishing a saved model folder to the Hugging Face Hub.

`push_folder_to_hub` checks, before anything leaves the machine, that the folder is what a Hub model
repo should be: a `config.json`, safetensors weights that open, no pickled weights (`.bin`, `.pt`,
... files run code when loaded), and every code file its `auto_map` names (so the repo loads with
`trust_remote_code=True` where lens_hf is not installed). Then it creates the repo if needed and
uploads the folder in one commit. Call it from the main process only.

huggingface_hub's shared HTTP client has no timeout for uploads (`create_repo`, commits, LFS), so a
server that accepts the connection and never answers hangs a push forever: `hub_timeout` bounds
every request, and `hub_error_message` turns what a failed call raises into one line.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Sequence

import httpx2
from huggingface_hub import CommitInfo, HfApi, constants, set_client_factory
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import _http, filter_repo_objects, validate_repo_id

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
ALWAYS_IGNORED = (".git/*", ".cache/huggingface/*")  # what upload_folder itself never uploads
CODE_CONFIG_FILES = ("config.json", "preprocessor_config.json", "processor_config.json")


class ModelFolderError(ValueError):
    """The folder is not fit to be pushed; the message names the file and what was expected."""


@contextlib.contextmanager
def hub_timeout(seconds: float | None):
    """Within the block, every request of huggingface_hub's shared client fails after `seconds` without
    progress (connect, each read, each write: a long upload that keeps sending is not cut). None or 0:
    leave the client as it is (no timeout)."""
    if not seconds:
        yield
        return
    if seconds < 0:
        raise ValueError(f"the Hub timeout must be positive seconds (or 0 for none), got {seconds}")
    previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) or _http.default_client_factory

    def client_with_timeout() -> httpx2.Client:
        client = previous()
        client.timeout = httpx2.Timeout(seconds)
        return client

    set_client_factory(client_with_timeout)  # closes the shared client; the next call builds one with a timeout
    try:
        yield
    finally:
        set_client_factory(previous)


def hub_error_message(error: BaseException, timeout: float | None = None, timeout_flag: str | None = None) -> str | None:
    """One line on why a Hub call failed (bad repo id, timeout, unreachable server, HTTP error), or None when
    `error` (or what it was raised from) is none of these. `timeout_flag`: the option to name for a timeout."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, HFValidationError):
            return str(error).splitlines()[0]
        if isinstance(error, httpx2.TimeoutException):
            waited = f"within {timeout:g} s" if timeout else "in time"
            hint = f" (on a slow link raise {timeout_flag})" if timeout_flag else ""
            return f"the Hub at {constants.ENDPOINT} did not answer {waited}{hint}"
        if isinstance(error, httpx2.TransportError):
            return f"cannot reach the Hub at {constants.ENDPOINT}: {error or type(error).__name__}"
        if isinstance(error, HfHubHTTPError):
            return (str(error).strip().splitlines() or [type(error).__name__])[0]
        error = error.__cause__ or error.__context__
    return None


def check_repo_id(repo_id: str | None, flag: str = "--repo_id") -> str:
    """A missing or malformed repo id as one clear `ValueError`, before anything is rendered or sent."""
    if not repo_id:
        raise ValueError(f"{flag} is required: the org/name of the Hub repo")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"{flag} {repo_id!r} is not a Hub repo id (org/name): {str(error).splitlines()[0]}") from None
    return repo_id


def files_to_upload(folder: Path, ignore_patterns: Sequence[str] | None = None) -> list[str]:
    """Relative POSIX paths `upload_folder(folder, ignore_patterns=...)` would upload."""
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(paths, ignore_patterns=[*ALWAYS_IGNORED, *(ignore_patterns or [])]))


def _read_json_object(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise ModelFolderError(f"{path} must hold a JSON object, got {type(value).__name__}.")
    return value


def _auto_map_modules(config: dict) -> set[str]:
    """Module files (`modeling_x.py`) named by the `auto_map` of a config."""
    modules = set()
    for reference in (config.get("auto_map") or {}).values():
        for item in reference if isinstance(reference, (list, tuple)) else [reference]:
            if isinstance(item, str) and "--" not in item:  # "repo--module.Class" points at another repo
                modules.add(item.rsplit(".", 1)[0].replace(".", "/") + ".py")
    return modules


def _check_safetensors(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            handle.keys()
    except Exception as err:  # safetensors raises its own error types for truncated or foreign files
        raise ModelFolderError(f"{path} is not a readable safetensors file: {err}") from err


def check_model_folder(folder: str | Path, ignore_patterns: Sequence[str] | None = None) -> list[str]:
    """Validate a model folder for the Hub and return the files that would be uploaded.

    Raises `ModelFolderError` when config.json is missing or invalid, no safetensors weights
    are present (or one does not open, or a shard of the index is missing), a pickled weight file
    would be uploaded, or a code file named by an `auto_map` is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"Model folder {folder} does not exist or is not a directory.")
    files = files_to_upload(folder, ignore_patterns)
    pickles = [f for f in files if f.lower().endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise ModelFolderError(
            f"{folder} holds pickled file(s) {pickles}: loading a pickle runs arbitrary code, so lens_hf pushes "
            "safetensors weights only. Re-save with `save_pretrained` (safetensors), delete them, or exclude "
            "them with `ignore_patterns` (e.g. ['checkpoint-*/*', '*.bin']).")
    if "config.json" not in files:
        raise ModelFolderError(f"{folder / 'config.json'} is missing: save the model with `save_pretrained` "
                               "so the repo has its config.")
    if "model_type" not in _read_json_object(folder / "config.json"):
        raise ModelFolderError(f"{folder / 'config.json'} has no 'model_type'; it is not a transformers config.")
    weights = [f for f in files if f.endswith(".safetensors")]
    if not weights:
        raise ModelFolderError(f"{folder} has no .safetensors weights (e.g. model.safetensors); "
                               "save the model with `save_pretrained`.")
    for name in files:
        if name.endswith(".safetensors.index.json"):
            index = _read_json_object(folder / name)
            missing = sorted(set(index.get("weight_map", {}).values()) - set(files))
            if missing:
                raise ModelFolderError(f"{folder / name} lists shard(s) {missing} that are not in the folder.")
    for name in weights:
        _check_safetensors(folder / name)
    for config_name in CODE_CONFIG_FILES:
        if config_name in files:
            missing = sorted(_auto_map_modules(_read_json_object(folder / config_name)) - set(files))
            if missing:
                raise ModelFolderError(
                    f"{folder / config_name} has an auto_map naming {missing}, which the folder lacks: the Hub "
                    "copy would not load with trust_remote_code=True. Save with the classes registered "
                    "(`import lens_hf` before `save_pretrained`).")
    return files


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload model with lens-hf",
    create_pr: bool = False,
    ignore_patterns: Sequence[str] | None = None,
    revision: str | None = None,
    timeout: float | None = None,
) -> CommitInfo:
    """Check `folder` (see `check_model_folder`), create `repo_id` if needed and upload it in one commit.

    Returns the `CommitInfo`: a `str` equal to the commit URL, with `.oid` and, for `create_pr=True`,
    `.pr_url`. `private` applies only when the repo is created. `timeout`: seconds any request may wait
    (see `hub_timeout`); None waits forever, as huggingface_hub does.
    """
    validate_repo_id(repo_id)
    check_model_folder(folder, ignore_patterns)
    api = HfApi(token=token)
    with hub_timeout(timeout):
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        return api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            commit_message=commit_message,
            create_pr=create_pr,
            ignore_patterns=list(ignore_patterns) if ignore_patterns else None,
            revision=revision,
        )
