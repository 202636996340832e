"""scripts/push_to_hub.py against a Hub that fails: HTTP 500, nothing listening, a server that accepts and never
answers, a bad repo id. Each ends with one line, in bounded time, and the run folder is byte-for-byte unchanged."""
import http.server
import json
import shutil
import socket
import threading
import time

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, ModelCard, constants, get_session

from helpers import load_script, run_script
from lens_hf import LensImageProcessor, LensMAEConfig, LensMAEForImageClassification
from lens_hf.hub import check_repo_id, hub_error_message, hub_timeout, push_folder_to_hub
from lens_hf.metrics import functional
from lens_hf.training.runner import refresh_model_card, write_metrics

SECRET = "hf_push_safety_secret_token"


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run folder as a training script leaves it: model, processor, metrics, run config, card, a checkpoint."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("saved") / "clf"
    config = LensMAEConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, num_labels=3, id2label={0: "axion", 1: "cdm", 2: "no_sub"},
                           lens_task="classification")
    model = LensMAEForImageClassification(config).eval()
    model.save_pretrained(folder)
    LensImageProcessor(size=16).save_pretrained(folder)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 30)
    write_metrics(folder, "classification", {"test": functional.classification_metrics(
        rng.dirichlet(np.ones(3), 30), labels, ["axion", "cdm", "no_sub"])}, {}, {})
    (folder / "run_config.json").write_text(json.dumps({"dataset": {"id": "org/sim", "config": "model_ii"},
                                                        "RunArguments": {"seed": 0}}))
    refresh_model_card(folder, model, "classification", repo_id="org/as-trained")
    (folder / "checkpoints" / "step_1").mkdir(parents=True)
    (folder / "checkpoints" / "step_1" / "state.txt").write_text("checkpoint")
    return folder


@pytest.fixture
def run_dir(saved_run, tmp_path):
    folder = tmp_path / "runs" / "clf"
    shutil.copytree(saved_run, folder)
    return folder


@pytest.fixture(scope="module")
def push():
    return load_script("push_to_hub.py")


def snapshot(run_dir) -> dict:
    """Every file's bytes, plus the names beside the run folder (a staging copy left behind would show)."""
    files = {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    return {"files": files, "beside": sorted(p.name for p in run_dir.parent.iterdir())}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Always500(http.server.BaseHTTPRequestHandler):
    def _fail(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b'{"error": "internal error"}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _fail

    def log_message(self, *args):
        pass


@pytest.fixture
def server_500():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Always500)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_server():
    """Accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join(5)
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.fixture
def endpoint(monkeypatch):
    """Point this process's huggingface_hub at another server for one test."""
    def use(url):
        monkeypatch.setattr(constants, "ENDPOINT", url)
        return url
    return use


def test_http_500_leaves_the_run_folder_unchanged_with_one_line(push, run_dir, server_500, endpoint):
    endpoint(server_500)
    before = snapshot(run_dir)
    with pytest.raises(SystemExit) as failure:
        push.main(["--run_dir", str(run_dir), "--repo_id", "org/will-fail", "--token", SECRET])
    message = str(failure.value.code)
    assert message.startswith(f"push of {run_dir} to org/will-fail failed: Server error '500 Internal Server Error' for url ")
    assert message.endswith(f"; {run_dir} is unchanged") and "\n" not in message and SECRET not in message
    assert snapshot(run_dir) == before
    assert not [p for p in run_dir.parent.parent.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_an_unreachable_hub_leaves_the_run_folder_unchanged(push, run_dir, endpoint):
    url = endpoint(f"http://127.0.0.1:{free_port()}")
    before = snapshot(run_dir)
    with pytest.raises(SystemExit, match=rf"^push of {run_dir} to org/x failed: cannot reach the Hub at {url}: "
                                         rf".*Connection refused; {run_dir} is unchanged$"):
        push.main(["--run_dir", str(run_dir), "--repo_id", "org/x"])
    assert snapshot(run_dir) == before


def test_a_hub_that_never_answers_times_out_in_bounded_time(push, run_dir, silent_server, endpoint):
    url, accepted = silent_server
    endpoint(url)
    before = snapshot(run_dir)
    outcome = {}

    def run():
        try:
            push.main(["--run_dir", str(run_dir), "--repo_id", "org/silent", "--timeout", "1"])
        except SystemExit as error:
            outcome["message"] = str(error.code)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), "push_to_hub still waits on a server that never answers"
    assert accepted, "the push never reached the silent server"
    assert outcome["message"] == (f"push of {run_dir} to org/silent failed: the Hub at {url} did not answer within "
                                  f"1 s (on a slow link raise --timeout); {run_dir} is unchanged")
    assert elapsed < 15, elapsed  # model load + card render + one 1 s timeout
    assert snapshot(run_dir) == before


def test_the_command_line_prints_one_line_when_the_hub_never_answers(run_dir, silent_server):
    url, _ = silent_server
    before = snapshot(run_dir)
    result = run_script("push_to_hub.py", "--run_dir", run_dir, "--repo_id", "org/silent-cli", "--timeout", "1",
                        check=False, timeout=240, env={"HF_ENDPOINT": url})
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == (f"push of {run_dir} to org/silent-cli failed: the Hub at {url} did not answer within 1 s "
                         f"(on a slow link raise --timeout); {run_dir} is unchanged"), result.stderr[-3000:]
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("argv, message", [
    (["--repo_id", "a/b/c"], "--repo_id 'a/b/c' is not a Hub repo id (org/name): Repo id must be in the form "
                             "'repo_name' or 'namespace/repo_name': 'a/b/c'. Use `repo_type` argument if needed."),
    (["--repo_id", "org/has space"], "--repo_id 'org/has space' is not a Hub repo id (org/name): Repo id must use "
                                     "alphanumeric chars, '-', '_' or '.'."),
    (["--repo_id", ""], "--repo_id is required: the org/name of the Hub repo"),
    ([], "--repo_id is required: the org/name of the Hub repo"),
    (["--repo_id", "org/x", "--base_model_id", "../local"], "--base_model_id '../local' is not a Hub repo id"),
], ids=["three-parts", "space", "empty", "missing", "bad-base-id"])
def test_bad_or_missing_ids_are_one_line_errors_before_anything_changes(push, run_dir, endpoint, argv, message):
    endpoint(f"http://127.0.0.1:{free_port()}")  # nothing may be sent anyway
    before = snapshot(run_dir)
    with pytest.raises(SystemExit) as failure:
        push.main(["--run_dir", str(run_dir), *argv])
    assert str(failure.value.code).startswith(message) and "\n" not in str(failure.value.code)
    assert snapshot(run_dir) == before


def test_a_missing_or_absent_run_dir_is_one_line(push, tmp_path):
    with pytest.raises(SystemExit, match="^--run_dir is required: a folder written by a lens_hf training script$"):
        push.main(["--repo_id", "org/x"])
    with pytest.raises(SystemExit, match=rf"^--run_dir {tmp_path / 'nowhere'} does not exist or is not a folder$"):
        push.main(["--run_dir", str(tmp_path / "nowhere"), "--repo_id", "org/x"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="config.json is missing"):
        push.main(["--run_dir", str(tmp_path / "empty"), "--repo_id", "org/x"])


def test_a_successful_push_replaces_only_the_local_card_and_only_afterwards(push, run_dir, local_hub):
    before = snapshot(run_dir)
    push.main(["--run_dir", str(run_dir), "--repo_id", "org/push-safety"])
    after = snapshot(run_dir)
    changed = {name for name in before["files"] if before["files"][name] != after["files"].get(name)}
    assert changed == {"README.md"} and set(after["files"]) == set(before["files"])
    assert after["beside"] == before["beside"]  # no staging copy left beside the run folder
    local_card = (run_dir / "README.md").read_text()
    assert 'from_pretrained("org/push-safety"' in local_card
    assert ModelCard.load("org/push-safety").content == ModelCard.load(run_dir / "README.md").content
    assert not any(f.startswith("checkpoints/") for f in HfApi().list_repo_files("org/push-safety"))


def test_hub_timeout_bounds_the_shared_client_and_restores_it():
    with hub_timeout(3):
        assert get_session().timeout.read == 3
    assert get_session().timeout.read is None  # huggingface_hub's own default again
    with hub_timeout(None):
        assert get_session().timeout.read is None
    with pytest.raises(ValueError, match="positive seconds"):
        with hub_timeout(-1):
            pass


def test_library_push_validates_the_repo_id_before_the_folder_or_the_hub(tmp_path):
    with pytest.raises(ValueError, match="Repo id must be in the form"):
        push_folder_to_hub(tmp_path / "nowhere", "a/b/c")
    with pytest.raises(ValueError, match=r"^--repo_id is required"):
        check_repo_id(None)
    assert check_repo_id("org/fine") == "org/fine"
    assert hub_error_message(RuntimeError("unrelated")) is None


@pytest.fixture(scope="module")
def adapter_run(saved_run, tmp_path_factory):
    """A LoRA run folder (finetune.py --mode lora leaves one) whose adapter applies to a local base folder."""
    from lens_hf.training.adapters import save_adapter_folder, wrap_with_lora

    root = tmp_path_factory.mktemp("adapter")
    base = LensMAEForImageClassification.from_pretrained(saved_run)
    folder = root / "lora"
    save_adapter_folder(wrap_with_lora(base, rank=2), folder)
    for name in ("metrics.json", "run_config.json", "preprocessor_config.json", "image_processing_lens.py"):
        shutil.copy(saved_run / name, folder / name)
    return folder


def test_an_adapter_push_changes_no_local_file_failing_or_not(push, adapter_run, tmp_path, server_500, endpoint,
                                                               local_hub):
    run_dir = tmp_path / "runs" / "lora"
    shutil.copytree(adapter_run, run_dir)
    before = snapshot(run_dir)
    hub = constants.ENDPOINT
    endpoint(server_500)
    with pytest.raises(SystemExit, match=rf"failed: Server error '500 .*; {run_dir} is unchanged$"):
        push.main(["--run_dir", str(run_dir), "--repo_id", "org/lora-fails", "--base_model_id", "org/lens-base"])
    assert snapshot(run_dir) == before
    endpoint(hub)
    push.main(["--run_dir", str(run_dir), "--repo_id", "org/lora-pushed", "--base_model_id", "org/lens-base"])
    assert snapshot(run_dir) == before  # the adapter's card and config name the Hub base only in the pushed copy
    assert ModelCard.load("org/lora-pushed").data.base_model == "org/lens-base"
