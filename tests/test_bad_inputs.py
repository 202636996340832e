"""A table of bad inputs and faults walked through the public commands, each with its exact outcome.

Every row runs a script's `main` through `lens_hf.scripts.console.run`, which is what the console scripts and
`python scripts/X.py` run, so the outcome is the command's: its exit status and the one line on stderr (or the
`SystemExit` message). Rows that must not change anything also compare every byte of the folder they point at
before and after. The library-level rows (the image processor) assert the exception and its message.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from helpers import digest, load_script
from safetensors.torch import load_file, save_file

from lens_hf.scripts.console import run

TINY = ["--num_train", "24", "--num_validation", "6", "--num_test", "6", "--crop_size", "32", "--model_preset",
        "tiny", "--per_device_train_batch_size", "8", "--disable_progress_bar", "true", "--report_to", "none",
        "--max_steps", "2", "--save_steps", "1", "--save_total_limit", "5"]


class Workspace:
    """Finished runs and data folders the rows start from; each row works on its own copies (`copy`)."""

    def __init__(self, root: Path):
        self.root = root
        self.cache = ["--cache_dir", str(root / "cache")]

    def copy(self, name: str, new: str) -> Path:
        target = self.root / "rows" / new
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.root / name, target, symlinks=True)
        return target

    def path(self, name: str) -> Path:
        target = self.root / "rows" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from lens_hf.data.sample_layouts import write_deeplense_model_tree

    root = tmp_path_factory.mktemp("bad_inputs")
    space = Workspace(root)
    load_script("pretrain_mae.py").main([*TINY, *space.cache, "--patch_size", "8", "--output_dir", str(root / "mae")])
    load_script("finetune.py").main([*TINY, *space.cache, "--save_steps", "0", "--model_name_or_path",
                                     str(root / "mae"), "--output_dir", str(root / "classifier")])
    write_deeplense_model_tree(root / "tree", image_size=32, n_per_class=3, n_test_per_class=2)
    assert load_script("build_dataset.py").main([
        "deeplense", "--config", "model_ii", "--data_dir", str(root / "tree"), "--dataset_overrides", "image_size=32",
        "--output_dir", str(root / "export"), "--cache_dir", str(root / "cache")]) == 0
    return space


@dataclass
class Row:
    """`prepare(ws) -> (script, argv)`; the outcome: exit status and a regex the message must match (searched);
    `unchanged(ws)` names a path whose bytes must not change."""

    id: str
    prepare: Callable
    status: int
    message: str
    unchanged: Callable | None = None
    patch: Callable | None = None  # (ws, monkeypatch) -> None, e.g. a full disk
    env: dict = field(default_factory=dict)


def pretrain(ws, folder, *extra):
    return "pretrain_mae", [*TINY, *ws.cache, "--patch_size", "8", "--output_dir", str(folder), *extra]


def finetune(ws, folder, *extra):
    return "finetune", [*TINY, *ws.cache, "--output_dir", str(folder), *extra]


def evaluate(folder, *extra):
    return "evaluate", ["--model_name_or_path", str(folder), *extra]


def damaged_checkpoint(ws, name: str, damage: Callable, *extra):
    """A copy of the MAE run's step-1 checkpoint in a fresh folder, damaged, resumed from."""
    folder = ws.path(name)
    shutil.rmtree(folder, ignore_errors=True)
    checkpoint = folder / "checkpoints" / "step_00000001"
    shutil.copytree(ws.root / "mae" / "checkpoints" / "step_00000001", checkpoint)
    damage(checkpoint)
    return pretrain(ws, folder, "--resume_from_checkpoint", "latest", *extra)


def damaged_model(ws, name: str, damage: Callable):
    folder = ws.copy("classifier", name)
    damage(folder)
    return evaluate(folder)


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


class Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_pickle(path: Path, marker: Path, how: str = "torch") -> None:
    with open(path, "wb") as handle:
        (torch.save if how == "torch" else pickle.dump)(Hostile(marker), handle)


def weights(folder: Path, edit: Callable) -> None:
    tensors = load_file(folder / "model.safetensors")
    save_file(edit(tensors), folder / "model.safetensors", metadata={"format": "pt"})


def with_nan(tensors: dict) -> dict:
    key = sorted(tensors)[0]
    tensors[key][...] = float("nan")
    return tensors


def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def disk_full(ws, monkeypatch):
    """Every safetensors file written fails as on a full disk."""
    import safetensors.torch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", full, raising=False)


def build(ws, output, *extra):
    return "build_dataset", ["deeplense", "--config", "model_ii", "--data_dir", str(ws.root / "tree"),
                             "--dataset_overrides", "image_size=32", "--output_dir", str(output),
                             "--cache_dir", str(ws.root / "cache"), *extra]


ROWS = [
    # ------------------------------------------------------------------ command line and argument values
    Row("abbreviated-flag", lambda ws: finetune(ws, ws.path("a"), "--learning_rat", "1e-3"), 2,
        r"not used by the HfArgumentParser: \['--learning_rat'"),
    Row("crop-size-zero", lambda ws: finetune(ws, ws.path("a"), "--mode", "scratch", "--crop_size", "0"), 2,
        r"--crop_size must be >= 1, got 0"),
    Row("batch-size-zero", lambda ws: finetune(ws, ws.path("a"), "--per_device_train_batch_size", "0"), 2,
        r"--per_device_train_batch_size must be >= 1, got 0"),
    Row("learning-rate-nan", lambda ws: finetune(ws, ws.path("a"), "--learning_rate", "nan"), 2,
        r"--learning_rate must be >= 0, got nan"),
    Row("negative-num-train", lambda ws: finetune(ws, ws.path("a"), "--num_train", "-5"), 2,
        r"--num_train must be >= 0, got -5"),
    Row("gradient-accumulation-zero", lambda ws: finetune(ws, ws.path("a"), "--gradient_accumulation_steps", "0"), 2,
        r"--gradient_accumulation_steps must be >= 1, got 0"),
    Row("unknown-mode", lambda ws: finetune(ws, ws.path("a"), "--mode", "distill"), 2,
        r"--mode must be one of \('linear_probe', 'finetune', 'scratch', 'lora'\), got 'distill'"),
    Row("unknown-task", lambda ws: finetune(ws, ws.path("a"), "--task", "segmentation"), 2,
        r"--task must be one of .*got 'segmentation'"),
    Row("unknown-architecture", lambda ws: finetune(ws, ws.path("a"), "--architecture", "vgg"), 2,
        r"--architecture must be one of \('lens_mae', 'resnet18', 'resnet34', .*'convnext_tiny'\), got 'vgg'"),
    Row("lbfgs-without-probe", lambda ws: finetune(ws, ws.path("a"), "--probe_solver", "lbfgs"), 2,
        r"--probe_solver lbfgs fits a linear probe's head; it needs --mode linear_probe"),
    Row("merge-without-lora", lambda ws: finetune(ws, ws.path("a"), "--merge_adapter", "true"), 2,
        r"--merge_adapter merges a LoRA adapter; it needs --mode lora"),
    Row("finetune-without-model", lambda ws: finetune(ws, ws.path("a")), 1,
        r"--mode finetune needs --model_name_or_path \(a checkpoint: a run folder or a Hub id\)"),
    Row("unknown-tracker", lambda ws: finetune(ws, ws.path("a"), "--mode", "scratch", "--report_to", "wandb"), 2,
        r"report_to must be one of \('tensorboard', 'none'\), got 'wandb'"),
    Row("override-without-equals", lambda ws: finetune(ws, ws.path("a"), "--mode", "scratch", "--config_overrides",
                                                       "hidden_size"), 2,
        r"--config_overrides: expected comma-separated key=value pairs, got 'hidden_size'"),
    Row("override-unbalanced-bracket", lambda ws: finetune(ws, ws.path("a"), "--mode", "scratch",
                                                           "--dataset_overrides", "a=[1,2"), 2,
        r"--dataset_overrides: unbalanced '\[' in 'a=\[1,2'"),
    Row("override-misspelt-activation", lambda ws: finetune(ws, ws.path("a"), "--mode", "scratch",
                                                            "--config_overrides", "hidden_act=gelu_typo"), 2,
        r"hidden_act 'gelu_typo' is not an activation"),
    Row("override-layer-norm-eps-zero", lambda ws: finetune(ws, ws.path("a"), "--mode", "scratch",
                                                            "--config_overrides", "layer_norm_eps=0"), 2,
        r"layer_norm_eps must be a finite positive"),
    Row("yaml-unknown-key", lambda ws: ("finetune", [str(_file(ws, "run.yaml", "learning_rat: 0.001\n"))]), 2,
        r"run\.yaml: unknown argument\(s\) \['learning_rat'\]"),
    Row("yaml-not-yaml", lambda ws: ("finetune", [str(_file(ws, "broken.yaml", "a: [1, 2\n"))]), 2,
        r"broken\.yaml: not valid YAML"),
    Row("yaml-not-a-mapping", lambda ws: ("finetune", [str(_file(ws, "list.yaml", "- 1\n- 2\n"))]), 2,
        r"list\.yaml: expected a mapping of argument names to values, got list"),
    Row("unknown-dataset-config", lambda ws: finetune(ws, ws.path("a"), "--mode", "scratch", "--dataset_name",
                                                      str(ws.root / "export"), "--dataset_config", "model_iii"), 2,
        r"--dataset_config 'model_iii': the dataset folder .* has no such config; it has \['model_ii'\]"),
    # ------------------------------------------------------------------ model references and broken models
    Row("model-path-missing", lambda ws: finetune(ws, ws.path("a"), "--model_name_or_path", "./no/such/run"), 2,
        r"--model_name_or_path \./no/such/run: no such folder \(and not a Hub id"),
    Row("model-path-is-a-file", lambda ws: finetune(ws, ws.path("a"), "--model_name_or_path",
                                                    str(_file(ws, "weights.bin", "x"))), 2,
        r"weights\.bin is a file; give the run folder that holds config\.json"),
    Row("model-folder-without-config", lambda ws: finetune(ws, ws.path("a"), "--model_name_or_path",
                                                           str(_folder(ws, "empty_model"))), 2,
        r"empty_model has no config\.json: it is not a saved model folder"),
    Row("evaluate-missing-folder", lambda ws: evaluate("/nonexistent/run/folder"), 2,
        r"/nonexistent/run/folder: no such folder"),
    Row("weights-empty-file", lambda ws: damaged_model(ws, "w_empty", lambda f: write(f / "model.safetensors", b"")),
        2, r"w_empty: the weights cannot be loaded \(SafetensorError: .*header too small"),
    Row("weights-truncated", lambda ws: damaged_model(
        ws, "w_truncated", lambda f: write(f / "model.safetensors", (f / "model.safetensors").read_bytes()[:700])),
        2, r"w_truncated: the weights cannot be loaded \(SafetensorError"),
    Row("weights-partial", lambda ws: damaged_model(
        ws, "w_partial", lambda f: weights(f, lambda t: {k: t[k] for k in sorted(t)[::2]})),
        2, r"w_partial: \d+ weight\(s\) are missing from the saved files"),
    Row("weights-nan", lambda ws: damaged_model(ws, "w_nan", lambda f: weights(f, with_nan)), 2,
        r"w_nan: weight .* holds NaN or Inf values; the model cannot be used"),
    Row("weights-missing", lambda ws: damaged_model(ws, "w_missing", lambda f: (f / "model.safetensors").unlink()),
        2, r"w_missing has no model\.safetensors: the weights are missing"),
    Row("config-model-type-vit-mae", lambda ws: damaged_model(
        ws, "w_vitmae", lambda f: edit_json(f / "config.json", model_type="vit_mae")), 2,
        r"config\.json has model_type 'vit_mae'; LensMAEForImageClassification needs 'lens_mae'"),
    Row("config-not-json", lambda ws: damaged_model(
        ws, "w_config", lambda f: write(f / "config.json", b"{not json")), 2,
        r"the config file at '.*w_config/config\.json' is not a valid JSON file"),
    Row("run-config-not-json", lambda ws: damaged_model(
        ws, "w_runconfig", lambda f: write(f / "run_config.json", b"\xff\xfe")), 2,
        r"run_config\.json is not valid JSON"),
    Row("evaluate-unknown-split", lambda ws: evaluate(ws.copy("classifier", "e_split"), "--split", "holdout"), 1,
        r"split 'holdout' not in the dataset \(splits: \['train', 'validation', 'test'\]\)"),
    Row("evaluate-other-task", lambda ws: evaluate(ws.copy("classifier", "e_task"), "--task", "regression"), 2,
        r"was trained for task 'classification'; it cannot be evaluated as 'regression'"),
    Row("evaluate-other-classes", lambda ws: evaluate(ws.copy("classifier", "e_classes"), "--dataset_name",
                                                      str(_other_classes(ws))), 2,
        r"predicts the classes \['axion', 'cdm', 'no_sub'\]; the dataset's classes are \['no', 'sphere', 'vort'\]",
        unchanged=lambda ws: ws.root / "rows" / "e_classes"),
    # ------------------------------------------------------------------ run folders: nothing replaced, nothing mixed
    Row("new-run-over-finished-run", lambda ws: pretrain(ws, ws.copy("mae", "r_over"), "--seed", "5"), 2,
        r"r_over holds another run \(.*\): pass --resume_from_checkpoint latest to continue it, "
        r"--overwrite_output_dir to replace it", unchanged=lambda ws: ws.root / "rows" / "r_over"),
    Row("resume-finished-run-other-config", lambda ws: pretrain(ws, ws.copy("mae", "r_other"), "--seed", "5",
                                                                "--resume_from_checkpoint", "latest"), 2,
        r"holds a finished run of another configuration; .*RunArguments\.seed: 42 -> 5",
        unchanged=lambda ws: ws.root / "rows" / "r_other"),
    Row("resume-checkpoint-other-config", lambda ws: damaged_checkpoint(ws, "r_ckpt", lambda c: None,
                                                                        "--learning_rate", "0.25"), 2,
        r"step_00000001 is a checkpoint of another run configuration; .*learning_rate: None -> 0\.25"),
    Row("resume-from-a-folder-that-is-no-checkpoint", lambda ws: pretrain(
        ws, ws.path("r_nockpt"), "--resume_from_checkpoint", str(_folder(ws, "not_a_checkpoint"))), 2,
        r"resume_from_checkpoint='.*not_a_checkpoint' is not a complete checkpoint \(no trainer_state\.json\)"),
    Row("output-dir-is-a-file", lambda ws: pretrain(ws, _file(ws, "output_file", "x")), 2,
        r"--output_dir .*output_file exists and is not a folder"),
    Row("output-dir-under-a-file", lambda ws: pretrain(ws, _file(ws, "parent_file", "x") / "run"), 2,
        r"Not a directory"),
    Row("disk-full-while-saving", lambda ws: pretrain(ws, ws.path("r_full"), "--save_steps", "0"), 2,
        r"No space left on device", patch=disk_full),
    # ------------------------------------------------------------------ checkpoints: never executed, never half-read
    Row("checkpoint-hostile-optimizer", lambda ws: damaged_checkpoint(
        ws, "c_opt", lambda c: hostile_pickle(c / "optimizer.bin", ws.root / "pwned")), 2,
        r"optimizer\.bin cannot be loaded safely \(UnpicklingError", unchanged=lambda ws: _no_marker(ws)),
    Row("checkpoint-hostile-rng", lambda ws: damaged_checkpoint(
        ws, "c_rng", lambda c: hostile_pickle(c / "random_states_0.pkl", ws.root / "pwned", "pickle")), 2,
        r"random_states_0\.pkl cannot be loaded safely", unchanged=lambda ws: _no_marker(ws)),
    Row("checkpoint-custom-pickle", lambda ws: damaged_checkpoint(
        ws, "c_custom", lambda c: hostile_pickle(c / "custom_checkpoint_0.pkl", ws.root / "pwned")), 2,
        r"custom_checkpoint_0\.pkl is an unrestricted pickle \(accelerate's custom state\): lens-hf never loads one",
        unchanged=lambda ws: _no_marker(ws)),
    Row("checkpoint-trainer-state-not-json", lambda ws: damaged_checkpoint(
        ws, "c_state", lambda c: write(c / "trainer_state.json", b"{oops")), 2,
        r"trainer_state\.json is not valid JSON"),
    Row("checkpoint-trainer-state-negative", lambda ws: damaged_checkpoint(
        ws, "c_negative", lambda c: edit_json(c / "trainer_state.json", global_step=-1)), 2,
        r"trainer_state\.json must hold non-negative integers"),
    Row("checkpoint-scheduler-missing", lambda ws: damaged_checkpoint(
        ws, "c_sched", lambda c: (c / "scheduler_state.json").unlink()), 2,
        r"scheduler_state\.json is missing: the checkpoint is incomplete"),
    Row("checkpoint-rng-missing", lambda ws: damaged_checkpoint(
        ws, "c_rngmissing", lambda c: (c / "random_states_0.pkl").unlink()), 2,
        r"random_states_0\.pkl is missing: the checkpoint cannot restore this process's randomness"),
    Row("checkpoint-weights-missing", lambda ws: damaged_checkpoint(
        ws, "c_weights", lambda c: (c / "model.safetensors").unlink()), 2,
        r"has no model\*\.safetensors: the checkpoint's weights are missing"),
    Row("checkpoint-identity-missing", lambda ws: damaged_checkpoint(
        ws, "c_identity", lambda c: (c / "run_arguments.json").unlink()), 2,
        r"run_arguments\.json is missing: the checkpoint is incomplete"),
    Row("checkpoint-rng-truncated", lambda ws: damaged_checkpoint(
        ws, "c_rngtrunc", lambda c: write(c / "random_states_0.pkl", b"\x80\x04trunc")), 2,
        r"random_states_0\.pkl cannot be loaded safely"),
    # ------------------------------------------------------------------ exports
    Row("export-over-existing-export", lambda ws: build(ws, ws.copy("export", "x_again")), 1,
        r"x_again already holds an export of config 'model_ii'; pass --overwrite_output_dir",
        unchanged=lambda ws: ws.root / "rows" / "x_again"),
    Row("export-into-a-non-export-folder", lambda ws: build(ws, _folder(ws, "x_notes", {"notes.txt": "mine"})), 1,
        r"x_notes is not empty and holds no dataset export", unchanged=lambda ws: ws.root / "rows" / "x_notes"),
    Row("export-output-is-a-file", lambda ws: build(ws, _file(ws, "x_file", "x")), 1,
        r"x_file exists and is not a folder"),
    Row("export-locked", lambda ws: build(ws, ws.copy("export", "x_locked"), "--overwrite_output_dir", "true"), 1,
        r"another export into .*x_locked is running", patch=lambda ws, mp: _hold_lock(ws, mp, "x_locked"),
        unchanged=lambda ws: ws.root / "rows" / "x_locked"),
    Row("export-bad-repo-id", lambda ws: build(ws, ws.path("x_repo"), "--push_to_hub", "true", "--repo_id", "a/b/c"),
        2, r"--repo_id 'a/b/c' is not a Hub repo id \(org/name\)"),
    # ------------------------------------------------------------------ publishing
    Row("push-without-repo-id", lambda ws: ("push_to_hub", ["--run_dir", str(ws.copy("classifier", "p_norepo"))]),
        1, r"--repo_id is required: the org/name of the Hub repo", unchanged=lambda ws: ws.root / "rows" / "p_norepo"),
    Row("push-bad-repo-id", lambda ws: ("push_to_hub", ["--run_dir", str(ws.copy("classifier", "p_badrepo")),
                                                        "--repo_id", "org/has space"]), 1,
        r"--repo_id 'org/has space' is not a Hub repo id", unchanged=lambda ws: ws.root / "rows" / "p_badrepo"),
    Row("push-missing-run-dir", lambda ws: ("push_to_hub", ["--run_dir", "/no/such/run", "--repo_id", "org/x"]), 1,
        r"--run_dir /no/such/run does not exist or is not a folder"),
    Row("push-unreachable-hub", lambda ws: ("push_to_hub", ["--run_dir", str(ws.copy("classifier", "p_down")),
                                                            "--repo_id", "org/x", "--timeout", "5"]), 1,
        r"failed: cannot reach the Hub at http://127\.0\.0\.1:\d+: .*; .*p_down is unchanged",
        patch=lambda ws, mp: _unreachable_hub(mp), unchanged=lambda ws: ws.root / "rows" / "p_down"),
    Row("push-folder-with-a-pickle", lambda ws: ("push_to_hub", [
        "--run_dir", str(_with_file(ws.copy("classifier", "p_pickle"), "pytorch_model.bin", b"x")),
        "--repo_id", "org/x"]), 1, r"pytorch_model\.bin", unchanged=lambda ws: ws.root / "rows" / "p_pickle"),
    # ------------------------------------------------------------------ data readers: checked before read
    Row("data-npy-header-80GB", lambda ws: build_from(ws, bad_tree(ws, "d_header", lambda f: write_npy_header(
        f, (100000, 100000)))), 2, r"error: bad input data: .*d_header/Model_II/cdm/\S+\.npy: not a readable \.npy "
        r"file \(corrupt or truncated\): its header declares shape \(100000, 100000\) float64 "
        r"\(80,000,000,000 bytes\) but only 64 bytes follow it"),
    Row("data-hostile-axion-pickle", lambda ws: build_from(ws, bad_tree(ws, "d_pickle", lambda f: write_object_npy(
        f, Hostile(ws.root / "pwned")), "axion")), 2,
        r"d_pickle/Model_II/axion/\S+\.npy: refused to unpickle: the pickle references posix\.system",
        unchanged=lambda ws: _no_marker(ws)),
    Row("data-pickle-declaring-2GB", lambda ws: build_from(ws, bad_tree(ws, "d_bomb", lambda f: write_object_npy(
        f, ArrayOfObjects(2**28)), "axion")), 2,
        r"refused to unpickle: .*declares an array of shape \(268435456,\) object \(2,147,483,648 bytes\)"),
    Row("data-broken-symlink", lambda ws: build_from(ws, bad_tree(ws, "d_link", lambda f: f.symlink_to(
        f.with_name("gone.npy")))), 2, r"d_link/Model_II/cdm/\S+\.npy: broken symlink: its target .*gone\.npy does "
        r"not exist"),
    Row("data-skip-empties-class", lambda ws: build_from(ws, bad_tree(ws, "d_empty", lambda f: write(f, b"junk"),
                                                                      every=True), "--skip_bad_files", "true"), 2,
        r"d_empty/Model_II/cdm: all 3 file\(s\) of class 'cdm' in split '\w+' were bad and skipped|"
        r"d_empty/Model_II/cdm: class folder has no usable \.npy files: all 3 were bad and skipped"),
    Row("data-bologna-fractional-id", lambda ws: build_bologna(ws, "d_fraction", "100003", "100003.7"), 2,
        r"d_fraction/classifications\.csv: line \d+: ID '100003\.7' is not a non-negative integer"),
    Row("data-bologna-two-files-one-id", lambda ws: build_bologna(ws, "d_twice", None, None, twice=True), 2,
        r"d_twice/Band1/imageEUC_VIS-100003\.fits: maps to ID 100003, as .*imageEUC_VIS-0100003\.fits does; keep "
        r"one file per ID"),
    Row("data-bologna-not-utf8", lambda ws: build_bologna(ws, "d_utf8", "100003,", b"\xff,"), 2,
        r"d_utf8/classifications\.csv: line \d+: byte 0xff is not UTF-8 text \(save the catalogue as UTF-8\)"),
    # ------------------------------------------------------------------ simulation
    Row("simulate-into-non-empty-folder", lambda ws: ("simulate", ["--output_dir", str(_folder(
        ws, "s_full", {"keep.txt": "mine"})), "--num_images", "2"]), 2,
        r"s_full is not empty; pass --overwrite to write into it anyway",
        unchanged=lambda ws: ws.root / "rows" / "s_full"),
]


def build_from(ws, data_dir: Path, *extra):
    return "build_dataset", ["deeplense", "--config", "model_ii", "--data_dir", str(data_dir), "--dataset_overrides",
                             "image_size=32", "--output_dir", str(data_dir.with_name(data_dir.name + "_export")),
                             "--cache_dir", str(ws.root / "cache"), *extra]


def bad_tree(ws, name: str, damage: Callable, class_folder: str = "cdm", every: bool = False) -> Path:
    """A copy of the DeepLense tree with the first (or `every`) training file of a class replaced by `damage`."""
    tree = ws.copy("tree", name)
    files = sorted((tree / "Model_II" / class_folder).iterdir())
    for path in files if every else files[:1]:
        path.unlink()
        damage(path)
    return tree


def write_npy_header(path: Path, shape) -> None:
    """A .npy whose header claims `shape` float64 but which holds 64 bytes."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False, "shape": shape})
        handle.write(bytes(64))


def write_object_npy(path: Path, payload) -> None:
    """An object-array .npy (as DeepLenseSim's axion files are) whose pickle is `payload`."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": (2,)})
        pickle.dump(payload, handle, protocol=3)


class ArrayOfObjects:
    """A few-hundred-byte pickle asking numpy for an object array of `length` items (8 bytes each)."""

    def __init__(self, length):
        self.length = length

    def __reduce__(self):
        try:  # numpy >= 2
            from numpy._core.multiarray import _reconstruct
        except ImportError:  # numpy 1.x
            from numpy.core.multiarray import _reconstruct
        return _reconstruct, (np.ndarray, (self.length,), np.dtype("O"))


def build_bologna(ws, name: str, old, new, twice: bool = False):
    """build_dataset on a small Bologna folder whose catalogue has `old` replaced by `new` (text or bytes), or with
    a second FITS file whose name parses to an existing ID (`twice`)."""
    from lens_hf.data.sample_layouts import write_bologna_tree

    root = ws.path(name)
    shutil.rmtree(root, ignore_errors=True)
    write_bologna_tree(root, image_size=9)
    catalogue = root / "classifications.csv"
    if old is not None:
        data = catalogue.read_bytes()
        assert old.encode() in data
        catalogue.write_bytes(data.replace(old.encode(), new if isinstance(new, bytes) else new.encode(), 1))
    if twice:
        shutil.copy(root / "Band1/imageEUC_VIS-100003.fits", root / "Band1/imageEUC_VIS-0100003.fits")
    return "build_dataset", ["lens_finding", "--config", "bologna", "--data_dir", str(root), "--dataset_overrides",
                             "image_size=9", "--output_dir", str(root.with_name(name + "_export")),
                             "--cache_dir", str(ws.root / "cache")]


def _file(ws, name: str, text: str) -> Path:
    path = ws.path(name)
    path.write_text(text)
    return path


def _folder(ws, name: str, files: dict | None = None) -> Path:
    path = ws.path(name)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    for file, text in (files or {}).items():
        (path / file).write_text(text)
    return path


def _with_file(folder: Path, name: str, data: bytes) -> Path:
    (folder / name).write_bytes(data)
    return folder


def _other_classes(ws) -> Path:
    """An export whose classes are the common test set's (no, sphere, vort)."""
    import datasets

    from lens_hf.data import export_dataset, load_builder

    target = ws.path("common_classes")
    if not target.exists():
        data = load_builder("deeplense_sim", "model_ii", seed=0, cache_dir=str(ws.root / "cache"), n_train=4,
                            n_validation=2, n_test=4)
        export_dataset(data.cast_column("label", datasets.ClassLabel(names=["no", "sphere", "vort"])), target)
    return target


def _no_marker(ws) -> Path:
    """The marker a hostile pickle would create: it must not exist (and so never changes)."""
    return ws.root / "pwned"


def _hold_lock(ws, monkeypatch, name):
    import fcntl

    from lens_hf.data.export import export_lock_path

    lock = export_lock_path(ws.root / "rows" / name)
    handle = open(lock, "a+")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    monkeypatch.setattr(Row, "_held_lock", handle, raising=False)  # released when the row ends


def _unreachable_hub(monkeypatch):
    import socket

    from huggingface_hub import constants

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")


def test_the_table_has_at_least_sixty_rows():
    assert len(ROWS) + len(PROCESSOR_ROWS) >= 60, len(ROWS) + len(PROCESSOR_ROWS)
    assert len({row.id for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_a_bad_input_has_its_exact_outcome(ws, row, capsys, monkeypatch):
    script, argv = row.prepare(ws)
    watched = row.unchanged(ws) if row.unchanged else None
    before = digest(watched) if watched is not None and watched.exists() else None
    if row.patch:
        row.patch(ws, monkeypatch)
    for name, value in row.env.items():
        monkeypatch.setenv(name, value)
    module = load_script(f"{script}.py")
    with pytest.raises(SystemExit) as stopped:
        run(module.main, argv, command=script)
    code = stopped.value.code
    err = capsys.readouterr().err
    if isinstance(code, str):  # SystemExit("message"): Python prints it and exits 1
        status, message = 1, code
        assert "\n" not in code.strip(), code
    else:  # the command's own one-line report: `<script>: error: ...` (build_dataset: `error: ...`)
        status = code
        lines = [line for line in err.splitlines() if line.startswith((f"{script}: error: ", "error: "))]
        assert len(lines) == 1 or status == 0, f"{row.id}: expected one error line, stderr: {err[-2000:]}"
        message = lines[0] if lines else ""
    assert status == row.status, f"{row.id}: status {status}, message: {message or err[-2000:]}"
    assert re.search(row.message, message), f"{row.id}: {message or err[-2000:]}"
    assert "Traceback" not in err
    if watched is not None:
        after = digest(watched) if watched.exists() else None
        assert after == before, f"{row.id}: {watched} changed"


# ------------------------------------------------------------------------------------------- the image processor
def _processor(**kwargs):
    from lens_hf import LensImageProcessor

    return LensImageProcessor(size=32, **kwargs)


def _pil(mode: str, bands: int = 3):
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (32, 32, bands), dtype=np.uint8).squeeze(), mode=mode)


def _json_processor(tmp: Path, **fields):
    from lens_hf import LensImageProcessor

    _processor().save_pretrained(tmp)
    edit_json(tmp / "preprocessor_config.json", **fields)
    return LensImageProcessor.from_pretrained(tmp)


IMAGE = np.random.default_rng(0).random((32, 32))
PROCESSOR_ROWS = [
    ("rgb-array-for-one-band", lambda: _processor()(np.zeros((64, 64, 3))),
     r"Image 0 has shape \(64, 64, 3\): 3 bands in the last axis but num_channels=1"),
    ("rgba-array-for-one-band", lambda: _processor()(np.zeros((64, 64, 4))), r"4 bands in the last axis"),
    ("three-planes-ambiguous", lambda: _processor()(np.zeros((3, 64, 64))),
     r"Array of shape \(3, 64, 64\) is ambiguous for num_channels=1.*input_data_format='none'"),
    ("three-band-image-channels-first", lambda: _processor()(np.zeros((3, 64, 64)), input_data_format="channels_first"),
     r"has 3 band\(s\), expected num_channels=1"),
    ("none-layout-with-band-axis", lambda: _processor()(np.zeros((3, 1, 64, 64)), input_data_format="none"),
     r"input_data_format='none' is for \(N, H, W\) batches"),
    ("unknown-layout-name", lambda: _processor()(IMAGE, input_data_format="hwc"),
     r"input_data_format must be one of"),
    ("pil-rgb-for-one-band", lambda: _processor()(_pil("RGB")),
     r"PIL image in mode 'RGB' with 3 bands but num_channels=1; convert it first, e.g. image.convert\('L'\)"),
    ("nan-image", lambda: _processor()(np.full((32, 32), np.nan)), r"contains NaN or Inf pixels"),
    ("object-array-image", lambda: _processor()(np.array([[object()]] * 4, dtype=object)),
     r"got an object array; expected numeric pixels"),
    ("empty-list", lambda: _processor()([]), r"empty list of images"),
    ("crop-larger-than-image", lambda: _processor()(np.zeros((32, 48)), crop_size=40),
     r"crop_size=40 is larger than the image \(32x48\)"),
    ("crop-size-zero", lambda: _processor(crop_size=0), r"crop_size must be a positive integer, got 0"),
    ("crop-size-zero-per-call", lambda: _processor()(IMAGE, crop_size=0), r"crop_size must be a positive integer"),
    ("size-zero", lambda: __import__("lens_hf").LensImageProcessor(size=0),
     r"size must be a positive integer, got 0"),
    ("image-std-nan", lambda: _processor(normalization="standardize", image_mean=[0.0], image_std=[float("nan")]),
     r"image_std must be finite numbers"),
    ("image-std-zero", lambda: _processor(normalization="standardize", image_mean=[0.0], image_std=[0.0]),
     r"image_std must be positive"),
    ("image-mean-inf-in-json", lambda: _json_processor(Path(__import__("tempfile").mkdtemp()), image_mean=[float("inf")]),
     r"image_mean must be finite numbers"),
    ("image-std-nan-in-json", lambda: _json_processor(Path(__import__("tempfile").mkdtemp()), image_std=[float("nan")],
                                                      normalization="standardize", image_mean=[0.0]),
     r"image_std must be finite numbers"),
    ("unknown-normalization", lambda: _processor(normalization="zscore"), r"normalization must be one of"),
]


@pytest.mark.parametrize("call,message", [(c, m) for _, c, m in PROCESSOR_ROWS], ids=[i for i, _, _ in PROCESSOR_ROWS])
def test_a_bad_image_or_processor_setting_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
