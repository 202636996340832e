"""Test-session set-up: one thread, an isolated HF cache, and a local Hub.

Everything Hub-shaped in the tests talks to a local HTTP server (tests/hub_server.py);
`HF_ENDPOINT` must be set before huggingface_hub is imported, so it is set here, at
collection time, on a port reserved for the session. No test can reach the real Hub.
"""
import os
import socket
import sys
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="lens_hf_tests_"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HUB_PORT = _free_port()
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["HF_HOME"] = str(_SESSION_DIR / "hf_home")
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_TOKEN"] = "hf_fake_test_token"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["MPLBACKEND"] = "Agg"

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def local_hub():
    """A local Hub HTTP server on the port HF_ENDPOINT already points at."""
    import hub_server

    server = hub_server.serve(port=HUB_PORT, root=_SESSION_DIR / "hub_storage")
    yield server
    server.shutdown()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
