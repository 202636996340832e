"""Small shared pieces of the test suite (tiny model configs, subprocess runners)."""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    decoder_hidden_size=32,
    decoder_num_hidden_layers=1,
    decoder_num_attention_heads=2,
    decoder_intermediate_size=64,
    image_size=32,
    patch_size=8,
)


def tiny_config(**overrides):
    from lens_hf import LensMAEConfig

    return LensMAEConfig(**{**TINY, **overrides})


# A meta-path hook that makes `import lens_hf` fail, so a subprocess proves the Hub copy of the code is enough.
BLOCK_LENS_HF = """
import sys, importlib.abc
class _BlockLensHF(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "lens_hf" or name.startswith("lens_hf."):
            raise ImportError("lens_hf is blocked in this test process")
        return None
sys.meta_path.insert(0, _BlockLensHF())
sys.path = [p for p in sys.path if p not in ("", ".", %(repo)r)]
""" % {"repo": str(REPO_ROOT)}


def run_python(code: str, env: dict | None = None, cwd=None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter; raise with its output if it fails."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed ({result.returncode}):\nSTDOUT:\n{result.stdout}\nSTDERR:\n{result.stderr}")
    return result


ACCELERATE_TWO_PROCESSES = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                            "--dynamo_backend", "no"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_script(script: str, *args, processes: int | None = None, check: bool = True, timeout: int = 300,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run scripts/<script> with plain python (processes=None) or under `accelerate launch` with 1 or 2 processes."""
    path = str(REPO_ROOT / "scripts" / script)
    if processes is None:
        command = [sys.executable, path]
    else:
        launch = ["--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        options = ACCELERATE_TWO_PROCESSES if processes == 2 else launch
        if processes == 2:  # a fresh rendezvous port each launch: a lingering socket on 29500 must not hang a test
            options = [*options, "--main_process_port", str(free_port())]
        command = [sys.executable, "-m", "accelerate.commands.launch", *options, path]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    result = subprocess.run([*command, *map(str, args)], capture_output=True, text=True, env=full_env,
                            cwd=REPO_ROOT, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed ({result.returncode}):\nSTDOUT:\n{result.stdout[-4000:]}\n"
                             f"STDERR:\n{result.stderr[-8000:]}")
    return result
