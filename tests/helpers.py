"""Small shared pieces of the test suite (tiny model configs, subprocess runners)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_DUMPS = Path(__file__).resolve().parent / "stack_dumps"

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


def write_learnable_axion_tree(root: Path, n_train: int = 48, n_test: int = 12) -> None:
    """DeepLenseSim axion files whose image tells the mass: a bright disk of radius 3 + 2.5 (log10 m + 24) px on
    Poisson noise (write_deeplense_model_tree's images are noise alone, which no regressor can read)."""
    import numpy as np

    from lens_hf.data.sample_layouts import save_axion_pair

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32] - 15.5
    for folder, count in (("Model_II", n_train), ("Model_II_test", n_test)):
        (root / folder / "axion").mkdir(parents=True)
        for index in range(count):
            log_mass = rng.uniform(-24, -22)
            image = rng.poisson(20.0, (32, 32)) + 200.0 * (np.hypot(yy, xx) < 3 + 2.5 * (log_mass + 24))
            save_axion_pair(root / folder / "axion" / f"sim_{index:06d}.npy", image.astype(np.float64), 10**log_mass)


def sample_data_arguments(root: Path) -> dict:
    """Small data sets in the real on-disk layouts under `root`, and the data arguments of the scripts that read
    them, by task: classification (Model II tree, 32 px), regression (learnable axion tree), lens_finding (npy
    layout, 3 bands) and super_resolution (16 -> 32 px pairs)."""
    from lens_hf.data.sample_layouts import write_deeplense_model_tree, write_lens_finding_tree, write_sr_tree

    write_deeplense_model_tree(root / "deeplense", n_per_class=16, n_test_per_class=4, image_size=32)
    write_sr_tree(root / "sr", n_pairs=24, lr_size=16)
    write_lens_finding_tree(root / "lens_finding", n_per_folder=12, image_size=32)
    write_learnable_axion_tree(root / "regression")
    cache = root / "cache"

    def builder(name, config, folder, overrides):
        return ["--dataset_name", name, *(["--dataset_config", config] if config else []), "--data_dir", root / folder,
                "--cache_dir", cache, "--dataset_overrides", overrides]

    return {
        "classification": builder("deeplense", "model_ii", "deeplense", "image_size=32,validation_fraction=0.3"),
        "regression": builder("deeplense", "regression_model_ii", "regression", "image_size=32"),
        "lens_finding": builder("lens_finding", "npy", "lens_finding", "image_size=32"),
        "super_resolution": builder("lens_sr", None, "sr", "lr_size=16,hr_size=32"),
    }


def builder_splits(cli: list):
    """The DatasetDict the scripts read for the data arguments `cli` (--dataset_name/config, --data_dir,
    --cache_dir, --dataset_overrides), loaded as the scripts load it."""
    from lens_hf.data import load_builder
    from lens_hf.training.arguments import parse_overrides

    options = dict(zip(map(str, cli[::2]), map(str, cli[1::2])))
    return load_builder(options["--dataset_name"], options.get("--dataset_config"), data_dir=options["--data_dir"],
                        cache_dir=options["--cache_dir"], **parse_overrides(options.get("--dataset_overrides")))


def load_script(name: str):
    """A script of scripts/ as a module, to call its `main(argv)` in this process (faster than a subprocess)."""
    import importlib.util

    module_name = "lens_hf_test_script_" + Path(name).stem
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, REPO_ROOT / "scripts" / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses resolve the script's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


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


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (read from /proc), parents before their children."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def run_script(script: str, *args, processes: int | None = None, check: bool = True, timeout: int = 300,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run scripts/<script> (or `script` itself when it is an absolute path) with plain python (processes=None) or
    under `accelerate launch` with 1 or 2 processes.

    A run that outlives `timeout` fails with the Python stack of every process it started (SIGUSR1 makes
    tests/stack_dumps/sitecustomize.py print them), so a hang in CI says where it hangs."""
    path = str(script) if Path(script).is_absolute() else str(REPO_ROOT / "scripts" / script)
    if processes is None:
        command = [sys.executable, path]
    else:
        launch = ["--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        options = ACCELERATE_TWO_PROCESSES if processes == 2 else launch
        if processes == 2:  # a fresh rendezvous port each launch: a lingering socket on 29500 must not hang a test
            options = [*options, "--main_process_port", str(free_port())]
        command = [sys.executable, "-m", "accelerate.commands.launch", *options, path]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(STACK_DUMPS)]),
                **(env or {})}
    arguments = [*command, *map(str, args)]
    process = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                               cwd=REPO_ROOT)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        started = [process.pid, *_descendants(process.pid)]
        for pid in started:  # one at a time, so the stacks do not interleave
            _signal(pid, signal.SIGUSR1)
            time.sleep(1.0)
        for pid in started:  # torchrun puts each worker in a session of its own: killpg alone would miss them
            _signal(pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"{script} still ran after {timeout} s; stacks of its processes follow.\n"
                             f"COMMAND: {arguments}\nSTDOUT:\n{stdout[-4000:]}\nSTDERR:\n{stderr[-16000:]}") from None
    finally:
        if process.poll() is None:
            for pid in [process.pid, *_descendants(process.pid)]:
                _signal(pid, signal.SIGKILL)
            process.wait()
    result = subprocess.CompletedProcess(arguments, process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed ({result.returncode}):\nSTDOUT:\n{result.stdout[-4000:]}\n"
                             f"STDERR:\n{result.stderr[-8000:]}")
    return result


def assert_resume_redoes_the_last_steps(script_main, arguments: list, root: Path, weights: str) -> None:
    """Run `script_main(arguments)` for 4 steps with checkpoints every 2 (into root/straight), copy its step-2
    checkpoint into a fresh folder, resume there, and check that steps 3-4 (losses) and the saved `weights` file
    are bit-identical to the uninterrupted run's."""
    import json
    import shutil

    import torch
    from safetensors.torch import load_file

    common = [*map(str, arguments), "--max_steps", "4", "--save_steps", "2", "--save_total_limit", "5"]
    straight, resumed = root / "straight", root / "resumed"
    script_main([*common, "--output_dir", str(straight)])
    shutil.copytree(straight / "checkpoints" / "step_00000002", resumed / "checkpoints" / "step_00000002")
    script_main([*common, "--output_dir", str(resumed), "--resume_from_checkpoint", "latest"])

    def losses(folder):
        log = [json.loads(x) for x in (folder / "logs" / "train_log.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in log if "loss" in r}

    assert sorted(losses(resumed)) == [3, 4]
    assert [losses(resumed)[s] for s in (3, 4)] == [losses(straight)[s] for s in (3, 4)]
    a, b = load_file(straight / weights), load_file(resumed / weights)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def digest(path) -> dict:
    """Every file under `path` (or the file itself) -> sha256 of its bytes: "unchanged" checks compare two."""
    import hashlib

    path = Path(path)
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}
