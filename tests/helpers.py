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
