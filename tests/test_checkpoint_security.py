"""Resuming never runs code from a checkpoint: a hostile pickle in any slot (optimizer, RNG state, accelerate's
custom state) is refused with the file's name before anything is unpickled without restriction, and a damaged
JSON state or a missing file is a one-line error naming it, not a silent resume with other randomness."""

import json
import os
import pickle
import shutil

import pytest
import torch
from helpers import load_script

from lens_hf.training.checkpoint import CheckpointError

RUN = ["--num_train", "32", "--num_validation", "8", "--num_test", "8", "--crop_size", "32", "--model_preset", "tiny",
       "--patch_size", "8", "--per_device_train_batch_size", "8", "--disable_progress_bar", "true", "--report_to",
       "none", "--max_steps", "4", "--save_steps", "2", "--save_total_limit", "5"]


class Hostile:
    """Unpickling this runs a shell command (what an attacker would put in a shared checkpoint)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    data = ["--cache_dir", str(root / "cache")]
    load_script("pretrain_mae.py").main([*RUN, *data, "--output_dir", str(root / "run")])
    return root, data, root / "run" / "checkpoints" / "step_00000002"


def _resume_copy(finished, name, damage):
    root, data, checkpoint = finished
    out = root / name
    shutil.rmtree(out, ignore_errors=True)
    target = out / "checkpoints" / checkpoint.name
    shutil.copytree(checkpoint, target)
    damage(target)
    return lambda: load_script("pretrain_mae.py").main([*RUN, *data, "--output_dir", str(out),
                                                        "--resume_from_checkpoint", "latest"])


@pytest.mark.parametrize("slot,how", [
    ("optimizer.bin", "pickle"), ("optimizer.bin", "torch.save"), ("random_states_0.pkl", "pickle"),
    ("random_states_0.pkl", "torch.save"), ("custom_checkpoint_0.pkl", "torch.save"),
])
def test_a_hostile_pickle_in_any_slot_is_refused_and_never_runs(finished, tmp_path, slot, how):
    marker = tmp_path / "pwned"

    def damage(folder):
        with open(folder / slot, "wb") as handle:
            if how == "pickle":
                pickle.dump(Hostile(marker), handle)
            else:
                torch.save(Hostile(marker), handle)

    resume = _resume_copy(finished, f"hostile_{slot}_{how}".replace(".", "_"), damage)
    with pytest.raises(CheckpointError, match=slot.replace(".", r"\.")):
        resume()
    assert not marker.exists()


@pytest.mark.parametrize("slot,content,message", [
    ("trainer_state.json", b"{not json", "trainer_state.json is not valid JSON"),
    ("trainer_state.json", b'{"global_step": -3, "epoch": 0, "batches_in_epoch": 0}', "non-negative integers"),
    ("scheduler_state.json", b"\xff\xfe", "scheduler_state.json is not valid JSON"),
    ("scheduler_state.json", None, "scheduler_state.json is missing"),
    ("random_states_0.pkl", None, "random_states_0.pkl is missing"),
    ("model.safetensors", None, "no model\\*.safetensors"),
    ("random_states_0.pkl", b"truncated", "random_states_0.pkl cannot be loaded safely"),
])
def test_a_damaged_checkpoint_is_a_clear_error_naming_the_file(finished, slot, content, message):
    def damage(folder):
        if content is None:
            (folder / slot).unlink()
        else:
            (folder / slot).write_bytes(content)

    resume = _resume_copy(finished, f"damaged_{slot}_{len(content or b'')}".replace(".", "_"), damage)
    with pytest.raises(CheckpointError, match=message):
        resume()


def test_checkpoints_keep_the_schedule_as_json_and_resume_exactly(finished):
    root, data, checkpoint = finished
    assert not list(checkpoint.glob("custom_checkpoint_*"))
    state = json.loads((checkpoint / "scheduler_state.json").read_text())
    assert state["last_epoch"] == 2 and state["_step_count"] == 3
    resume = _resume_copy(finished, "intact", lambda folder: None)
    resume()
    log = lambda folder: [json.loads(x) for x in (folder / "logs" / "train_log.jsonl").read_text().splitlines()]  # noqa: E731
    whole = {r["step"]: (r["loss"], r["lr"]) for r in log(root / "run") if "loss" in r}
    again = {r["step"]: (r["loss"], r["lr"]) for r in log(root / "intact") if "loss" in r}
    assert again == {step: whole[step] for step in (3, 4)}  # the lr schedule continued where it stopped


def test_an_abbreviated_flag_is_an_error_as_in_a_file(tmp_path):
    """argparse would take `--learning_rat` for `--learning_rate`; the YAML rejects the same key, so does the CLI."""
    from lens_hf.training import RunArguments, parse_arguments

    with pytest.raises(ValueError, match=r"not used by the HfArgumentParser: \['--learning_rat'"):
        parse_arguments((RunArguments,), ["--learning_rat", "1e-3"])
    (tmp_path / "run.yaml").write_text("learning_rat: 0.001\n")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['learning_rat'\]"):
        parse_arguments((RunArguments,), [str(tmp_path / "run.yaml")])
    assert parse_arguments((RunArguments,), ["--learning_rate", "1e-3"])[0].learning_rate == 1e-3


def test_an_unknown_config_of_a_dataset_folder_is_an_error(tmp_path):
    """--dataset_config model_iii on an export that holds only its default config used to train on that one and
    record model_iii in the card."""
    from lens_hf.data import export_dataset, load_builder
    from lens_hf.training import DataArguments
    from lens_hf.training.data import load_task_dataset

    dataset = load_builder("deeplense_sim", "model_ii", seed=0, cache_dir=str(tmp_path / "cache"), n_train=6,
                           n_validation=3, n_test=3)
    export_dataset(dataset, tmp_path / "export")
    args = DataArguments(dataset_name=str(tmp_path / "export"), dataset_config="model_iii")
    with pytest.raises(ValueError, match=r"--dataset_config 'model_iii': the dataset folder .* has no such config; "
                                         r"it has \['default'\]"):
        load_task_dataset(args, "classification")
    loaded = load_task_dataset(DataArguments(dataset_name=str(tmp_path / "export")), "classification")
    assert loaded["train"].num_rows == 6


@pytest.mark.parametrize("field,value,message", [
    ("layer_norm_eps", 0.0, "layer_norm_eps must be a finite positive"),
    ("layer_norm_eps", float("nan"), "layer_norm_eps must be a finite positive"),
    ("regression_target_std", float("nan"), "regression_target_std must be a finite positive"),
    ("regression_target_std", 0.0, "regression_target_std must be a finite positive"),
    ("regression_target_mean", float("inf"), "regression_target_mean must be a finite number"),
    ("intermediate_size", 0, "intermediate_size must be >= 1"),
    ("decoder_hidden_size", 0, "decoder_hidden_size must be >= 1"),
    ("num_hidden_layers", -2, "num_hidden_layers must be >= 1"),
    ("hidden_act", "gelu_typo", "hidden_act 'gelu_typo' is not an activation"),
    ("initializer_range", -0.1, "initializer_range must be a finite non-negative"),
])
def test_config_values_that_would_give_nan_are_refused(field, value, message):
    from helpers import tiny_config

    with pytest.raises(ValueError, match=message):
        tiny_config(**{field: value})


@pytest.mark.parametrize("ratio", [1.0, -0.1, float("nan")])
def test_a_mask_ratio_outside_the_unit_interval_at_forward_time_is_refused(ratio):
    from helpers import tiny_config

    from lens_hf import LensMAEModel

    model = LensMAEModel(tiny_config()).eval()
    with pytest.raises(ValueError, match="mask_ratio must be in \\[0, 1\\)"):
        model(pixel_values=torch.rand(1, 1, 32, 32), mask_ratio=ratio)
