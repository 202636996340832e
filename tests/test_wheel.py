"""lens-hf installs as a wheel: built from the project's files alone, installed into a fresh virtualenv (no
editable install, the source tree nowhere on sys.path), it builds a simulated dataset, pretrains, finetunes,
evaluates and renders a model card through its console scripts, `python -m` and `accelerate launch -m`.

The fresh virtualenv borrows the test environment's third-party packages (torch, transformers, ...) through a
.pth line naming their site-packages folder: a plain path line does not run the editable-install hooks that
folder holds, so `import lens_hf` can only find the wheel's copy (asserted)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers import REPO_ROOT
from huggingface_hub import ModelCard

PROJECT_FILES = ("setup.cfg", "pyproject.toml", "README.md", "lens_hf", "dataset_builders", "model_cards", "scripts")
TINY = ["--model_preset", "tiny", "--max_steps", "2", "--per_device_train_batch_size", "8", "--report_to", "none",
        "--save_steps", "0", "--disable_progress_bar", "true"]


def run(command, cwd, env, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of the fresh venv, its bin folder, environment, work folder, the wheel's file names)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in PROJECT_FILES:  # only what the package is made of: nothing else of the checkout can leak in
        copy = shutil.copytree if (REPO_ROOT / name).is_dir() else shutil.copy2
        copy(REPO_ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                                 if (REPO_ROOT / name).is_dir() else {}))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", HF_HOME=str(root / "hf_home"), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist",
                 source], cwd=root, env=env)
    # setuptools warns "Package would be ignored" of a data folder it may stop shipping (setup.cfg package data)
    assert "would be ignored" not in built.stderr, built.stderr[-3000:]
    (wheel,) = (root / "dist").glob("lens_hf-*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root, env=env)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel], cwd=root, env=env)
    fresh_site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root, env).stdout.strip()
    Path(fresh_site, "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = root / "work"
    work.mkdir()
    return python, venv / "bin", env, work, zipfile.ZipFile(wheel).namelist(), fresh_site


def test_the_wheel_holds_every_package_and_resource(installed):
    names = installed[4]
    source_packages = {p.parent.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "lens_hf").rglob("__init__.py")}
    assert {f"{package}/__init__.py" for package in source_packages} <= set(names)
    for name in ("dataset_builders", "model_cards", "scripts"):
        assert f"lens_hf/{name}/__init__.py" in names
    assert "lens_hf/dataset_builders/deeplense_sim/deeplense_sim.py" in names
    assert "lens_hf/dataset_builders/deeplense_sim/README.md" in names
    assert "lens_hf/model_cards/model_card.md" in names and "lens_hf/scripts/finetune.py" in names
    assert "lens_hf/metrics/classification/classification.py" in names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)


HASHED_BUILDERS = ("deeplense_sim", "lens_sr")
# One interpreter of the fresh venv answers every question that needs no training (each start costs seconds).
PROBE = f"""
import importlib.metadata, json, sys
import lens_hf, lens_hf.cards as cards, lens_hf.scripts.finetune as finetune
entry_points = {{ep.name: callable(ep.load()) for ep in importlib.metadata.distribution("lens-hf").entry_points
                if ep.group == "console_scripts"}}
from lens_hf.data.loading import builder_hash, builder_module
card = cards.render_model_card(repo_id="org/x", task="pretraining", config={{}}, training_args={{}},
                               dataset={{"id": "org/sim"}})
print(json.dumps({{"files": [lens_hf.__file__, cards.__file__, finetune.__file__], "sys_path": sys.path,
                  "pipeline_tag": card.data.pipeline_tag, "entry_points": entry_points,
                  "hashes": [builder_hash(builder_module(name)) for name in {HASHED_BUILDERS!r}]}}))
"""


@pytest.fixture(scope="module")
def probe(installed):
    python, _, env, work, _, _ = installed
    return json.loads(run([python, "-c", PROBE], work, env).stdout.splitlines()[-1])


def test_installed_wheel_runs_every_step_without_the_source_tree(installed, probe):
    python, bin_dir, env, work, _, fresh_site = installed
    assert all(path.startswith(fresh_site) for path in probe["files"]), probe["files"]
    inside_checkout = [entry for entry in probe["sys_path"] if entry.startswith(str(REPO_ROOT))]
    assert inside_checkout in ([], [sysconfig.get_paths()["purelib"]])  # only the borrowed third-party packages
    assert probe["pipeline_tag"] == "image-feature-extraction"  # the card template is found in the wheel
    commands = [f"lens-hf-{name}" for name in ("pretrain-mae", "pretrain-contrastive", "finetune", "train-sr",
                                                "evaluate", "push-to-hub", "build-dataset", "simulate", "demo")]
    assert probe["entry_points"] == dict.fromkeys(commands, True)  # each loads a callable of the installed package
    assert all((bin_dir / command).is_file() for command in commands)

    run([bin_dir / "lens-hf-build-dataset", "deeplense_sim", "--config", "model_ii", "--output_dir", "data",
         "--cache_dir", "cache", "--dataset_overrides", "n_train=32,n_validation=8,n_test=8,preset_overrides.image_size=32"],
        work, env)
    data = ["--dataset_name", str(work / "data"), "--per_device_eval_batch_size", "16"]
    run([bin_dir / "lens-hf-pretrain-mae", *data, *TINY, "--patch_size", "8", "--output_dir", "pre"], work, env)
    run([python, "-m", "lens_hf.scripts.finetune", *data, *TINY, "--mode", "finetune", "--model_name_or_path", "pre",
         "--output_dir", "clf"], work, env)
    evaluated = run([python, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
                     "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lens_hf.scripts.evaluate",
                     "--dataset_name", str(work / "data"), "--model_name_or_path", "clf", "--split", "test"], work, env)
    assert '"task": "classification"' in evaluated.stdout
    card = ModelCard.load(work / "clf" / "README.md")
    assert {r.dataset_split for r in card.data.eval_results} == {"validation", "test"}


def test_a_builder_hashes_the_same_installed_and_in_the_checkout(probe):
    """Each hashed file is named by its path inside its package, not by where the package happens to be."""
    from lens_hf.data.loading import builder_hash, builder_module

    assert probe["hashes"] == [builder_hash(builder_module(name)) for name in HASHED_BUILDERS]
