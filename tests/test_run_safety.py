"""Nothing lost, nothing wrong loaded: a run never replaces or continues another run unless told to, evaluate.py
never scores a classifier against other classes nor writes other data's figures over the run's own, a broken
saved model is an error instead of a model with random or NaN weights, and the NaN stop names a checkpoint that
is really good."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from helpers import digest, load_script
from safetensors.torch import load_file, save_file

from lens_hf.training.checkpoint import CheckpointError, last_good_checkpoint
from lens_hf.training.models import ModelLoadError
from lens_hf.training.run_folder import OutputDirError

RUN = ["--num_train", "32", "--num_validation", "8", "--num_test", "8", "--crop_size", "32", "--model_preset", "tiny",
       "--per_device_train_batch_size", "8", "--disable_progress_bar", "true", "--report_to", "none",
       "--max_steps", "4", "--save_steps", "2", "--save_total_limit", "5"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished MAE pretraining run and a classifier finetuned from it (tiny, 4 and 2 steps)."""
    root = tmp_path_factory.mktemp("runs")
    data = ["--cache_dir", str(root / "cache")]
    load_script("pretrain_mae.py").main([*RUN, *data, "--patch_size", "8", "--output_dir", str(root / "mae")])
    load_script("finetune.py").main([*RUN, *data, "--max_steps", "2", "--save_steps", "0", "--model_name_or_path",
                                     str(root / "mae"), "--output_dir", str(root / "classifier")])
    return root, data


def _copy(runs, name, target):
    root, _ = runs
    shutil.rmtree(root / target, ignore_errors=True)
    shutil.copytree(root / name, root / target)
    return root / target


def test_a_new_run_into_a_finished_run_is_refused_and_the_folder_is_unchanged(runs):
    root, data = runs
    folder = _copy(runs, "mae", "mae_again")
    before = digest(folder)
    with pytest.raises(OutputDirError, match=r"holds another run .*--overwrite_output_dir"):
        load_script("pretrain_mae.py").main([*RUN, *data, "--patch_size", "8", "--seed", "7",
                                             "--output_dir", str(folder)])
    assert digest(folder) == before


def test_resuming_a_finished_run_of_another_configuration_is_refused(runs):
    root, data = runs
    folder = _copy(runs, "mae", "mae_other")
    before = digest(folder)
    with pytest.raises(OutputDirError, match=r"another configuration.*RunArguments\.seed: 42 -> 7"):
        load_script("pretrain_mae.py").main([*RUN, *data, "--patch_size", "8", "--seed", "7", "--output_dir",
                                             str(folder), "--resume_from_checkpoint", "latest"])
    assert digest(folder) == before


def test_a_checkpoint_of_another_configuration_is_never_resumed(runs):
    """An interrupted run (checkpoints, no run_config.json) resumed with another learning rate: refused, naming the
    difference; the same command as the run's resumes."""
    root, data = runs
    folder = root / "interrupted"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(root / "mae" / "checkpoints" / "step_00000002", folder / "checkpoints" / "step_00000002")
    command = [*RUN, *data, "--patch_size", "8", "--output_dir", str(folder), "--resume_from_checkpoint", "latest"]
    with pytest.raises(CheckpointError, match=r"checkpoint of another run configuration.*learning_rate: None -> 0\.5"):
        load_script("pretrain_mae.py").main([*command, "--learning_rate", "0.5"])
    load_script("pretrain_mae.py").main(command)
    assert load_file(folder / "model.safetensors").keys() == load_file(root / "mae" / "model.safetensors").keys()
    assert all(torch.equal(load_file(folder / "model.safetensors")[k], v)
               for k, v in load_file(root / "mae" / "model.safetensors").items())  # resumed exactly: same weights


def test_overwrite_output_dir_replaces_the_run_and_keeps_none_of_its_checkpoints(runs):
    """Before, rotation deleted the new run's checkpoints (lower step numbers) and kept the old run's."""
    root, data = runs
    folder = _copy(runs, "mae", "mae_overwritten")
    (folder / "checkpoints" / "step_00000900").mkdir()
    shutil.copytree(folder / "checkpoints" / "step_00000004", folder / "checkpoints" / "step_00000900",
                    dirs_exist_ok=True)
    (folder / "notes.txt").write_text("mine")  # not a run file: kept
    load_script("pretrain_mae.py").main([*RUN, *data, "--patch_size", "8", "--seed", "7", "--max_steps", "2",
                                         "--output_dir", str(folder), "--overwrite_output_dir", "true"])
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["step_00000002"]
    record = json.loads((folder / "run_config.json").read_text())
    assert record["RunArguments"]["seed"] == 7 and (folder / "notes.txt").read_text() == "mine"
    assert [r["step"] for r in map(json.loads, (folder / "logs" / "train_log.jsonl").read_text().splitlines())
            if "loss" in r] == [1, 2]


def test_evaluating_a_classifier_on_other_classes_is_refused(runs, tmp_path):
    from lens_hf.data import export_dataset, load_builder

    root, data = runs
    folder = _copy(runs, "classifier", "classifier_classes")
    before = digest(folder)
    other = load_builder("deeplense_sim", "model_ii", seed=0, cache_dir=str(root / "cache"), n_train=4,
                         n_validation=2, n_test=4)
    other = other.cast_column("label", __import__("datasets").ClassLabel(names=["no", "sphere", "vort"]))
    export_dataset(other, tmp_path / "common_test")
    with pytest.raises(ValueError, match=r"predicts the classes \['axion', 'cdm', 'no_sub'\]; the dataset's classes "
                                         r"are \['no', 'sphere', 'vort'\]"):
        load_script("evaluate.py").main(["--model_name_or_path", str(folder), "--dataset_name",
                                         str(tmp_path / "common_test")])
    assert digest(folder) == before


def test_an_evaluation_on_other_data_is_stored_beside_the_runs_own(runs):
    """Evaluated on a larger test set, the figures go under evaluations[...] with their own plots; the run's
    test figures, plots and card stay; the same data again replaces only its own entry."""
    root, data = runs
    folder = _copy(runs, "classifier", "classifier_other_data")
    own = json.loads((folder / "metrics.json").read_text())
    card, plots = (folder / "README.md").read_bytes(), digest(folder / "plots")
    evaluate = load_script("evaluate.py").main
    evaluate(["--model_name_or_path", str(folder), "--num_test", "16"])
    evaluate(["--model_name_or_path", str(folder), "--num_test", "12"])
    evaluate(["--model_name_or_path", str(folder), "--num_test", "16"])
    record = json.loads((folder / "metrics.json").read_text())
    assert record["summary"] == own["summary"] and record["full"] == own["full"]
    assert digest(folder / "plots") == plots
    new_card = (folder / "README.md").read_text()
    own_part = card.decode().split("## Evaluation")[1].split("###")[0].strip()
    assert own_part in new_card  # the run's own table is unchanged; the other data has its own table
    other_table = new_card.split("### On other data")[1].split("\n###")[0]
    assert "deeplense_sim (model_ii) test #2" in other_table and "Examples evaluated" in other_table
    assert "deeplense_sim (model_ii) test: 16; deeplense_sim (model_ii) test #2: 12" in other_table
    # the same dataset, config and split at other sizes would merge into the run's own model-index entry
    index = ModelCard.load(folder / "README.md").data.eval_results
    assert [(r.dataset_split, r.metric_value) for r in index] == [
        (split, round(own["summary"][split][metric], 6)) for split in ("validation", "test")
        for metric in ("accuracy", "roc_auc_micro", "roc_auc_macro")]
    assert sorted(record["evaluations"]) == ["deeplense_sim (model_ii) test", "deeplense_sim (model_ii) test #2"]
    first, second = (record["evaluations"][k] for k in sorted(record["evaluations"]))
    assert (first["data"]["num_test"], second["data"]["num_test"]) == (16, 12)
    assert len({json.dumps(first["full"]), json.dumps(second["full"])}) == 2
    for entry in (first, second):
        assert entry["plots"] and all((folder / p).is_file() and p.startswith("evaluations/")
                                      for p in entry["plots"].values())
    # without data flags the run's own data: its test figures are recomputed equal, in place
    evaluate(["--model_name_or_path", str(folder)])
    again = json.loads((folder / "metrics.json").read_text())
    assert again["summary"]["test"] == pytest.approx(own["summary"]["test"])


def _damaged(runs, name, damage):
    folder = _copy(runs, "classifier", name)
    damage(folder)
    return folder


def _nan_weight(folder):
    weights = load_file(folder / "model.safetensors")
    key = sorted(weights)[0]
    weights[key][...] = float("nan")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def _half_the_weights(folder):
    weights = load_file(folder / "model.safetensors")
    save_file({k: weights[k] for k in sorted(weights)[::2]}, folder / "model.safetensors", metadata={"format": "pt"})


def _model_type(folder):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "vit_mae"}))


@pytest.mark.parametrize("name,damage,message", [
    ("empty", lambda f: (f / "model.safetensors").write_bytes(b""), "the weights cannot be loaded .*header"),
    ("truncated", lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:900]),
     "the weights cannot be loaded"),
    ("partial", _half_the_weights, r"weight\(s\) are missing from the saved files"),
    ("nan", _nan_weight, "holds NaN or Inf values"),
    ("vit_mae", _model_type, "config.json has model_type 'vit_mae'; LensMAEForImageClassification needs 'lens_mae'"),
    ("no_weights", lambda f: (f / "model.safetensors").unlink(), "has no model.safetensors"),
])
def test_a_broken_saved_model_is_refused_by_evaluate_and_finetune(runs, name, damage, message):
    root, data = runs
    folder = _damaged(runs, f"broken_{name}", damage)
    with pytest.raises(ModelLoadError, match=message):
        load_script("evaluate.py").main(["--model_name_or_path", str(folder)])
    with pytest.raises(ModelLoadError, match=message):
        load_script("finetune.py").main([*RUN, *data, "--max_steps", "1", "--model_name_or_path", str(folder),
                                         "--output_dir", str(root / f"from_broken_{name}")])


def test_finetuning_from_an_encoder_may_add_a_head_but_not_lose_the_encoder(runs):
    """The pretraining folder has no classifier head (new, allowed) but an encoder tensor removed is an error."""
    from lens_hf import LensMAEForImageClassification
    from lens_hf.training.models import load_checked

    root, _ = runs
    model = load_checked(LensMAEForImageClassification, root / "mae", new_head=True, num_labels=3)
    assert torch.equal(model.vit.embeddings.projection.weight,
                       load_file(root / "mae" / "model.safetensors")["vit.embeddings.projection.weight"])
    folder = _copy(runs, "mae", "mae_without_a_block")
    weights = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in weights.items() if ".layers.1." not in k}, folder / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"vit\.layers\.1\."):
        load_checked(LensMAEForImageClassification, folder, new_head=True, num_labels=3)


@pytest.mark.parametrize("reference,message", [
    ("./outputs/no-such-run", "no such folder"),
    ("/nonexistent/a/b", "no such folder"),
    ("", "--model_name_or_path is empty"),
])
def test_a_model_path_that_does_not_exist_is_named(reference, message):
    with pytest.raises(ModelLoadError, match=message):
        load_script("evaluate.py").main(["--model_name_or_path", reference])


def _checkpoint(folder: Path, step: int, finite: bool = True):
    path = folder / "checkpoints" / f"step_{step:08d}"
    path.mkdir(parents=True)
    weight = torch.ones(3) * (1.0 if finite else float("nan"))
    save_file({"w": weight}, path / "model.safetensors")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "epoch": 0, "batches_in_epoch": step}))
    return path


def test_the_last_good_checkpoint_has_finite_weights_and_finite_losses_after_it(tmp_path):
    """Checkpoint 6 was saved right before the loss went NaN at step 7 (its weights produced it); checkpoint 8
    has NaN weights: the last good one is 4, and both are named with the reason."""
    good = _checkpoint(tmp_path, 4)
    _checkpoint(tmp_path, 6)
    _checkpoint(tmp_path, 8, finite=False)
    losses = {1: 1.0, 2: 0.9, 3: 0.8, 4: 0.8, 5: 1e9, 6: 1e12, 7: float("nan")}
    path, passed_over = last_good_checkpoint(tmp_path, losses)
    assert path == good
    assert passed_over == ["step_00000008: model.safetensors: tensor w is not finite",
                           "step_00000006: the loss at step 7 is not finite"]
    assert last_good_checkpoint(tmp_path, {7: float("nan"), 3: float("inf")}) == (None, [
        "step_00000008: model.safetensors: tensor w is not finite", "step_00000006: the loss at step 3 is not finite",
        "step_00000004: the loss at step 3 is not finite"])


def test_the_nan_stop_names_a_checkpoint_whose_weights_are_good(tmp_path, capsys):
    """A learning rate of 1e4 blows the weights up within a few steps; the stop (checkpoints every step) names a
    checkpoint whose weights are finite and whose next logged loss is finite, and passes over the newer ones."""
    with pytest.raises(SystemExit):
        load_script("pretrain_mae.py").main([*RUN, "--patch_size", "8", "--cache_dir", str(tmp_path / "cache"),
                                             "--learning_rate", "1e4", "--max_steps", "40", "--save_steps", "1",
                                             "--save_total_limit", "40", "--output_dir", str(tmp_path / "run")])
    message = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ERROR: non-finite loss")][0]
    named = message.split("Last good checkpoint: ")[1].split(" ")[0].rstrip(".")
    assert named != "none", message
    logged = {r["step"]: r["loss"] for r in map(json.loads, (tmp_path / "run" / "logs" / "train_log.jsonl")
                                                .read_text().splitlines()) if "loss" in r}
    step = int(Path(named).name.split("_")[1])
    assert all(torch.isfinite(t).all() for t in load_file(Path(named) / "model.safetensors").values())
    assert step + 1 in logged and all(v == v and abs(v) != float("inf") for s, v in logged.items() if s <= step + 1)
    newest = sorted((tmp_path / "run" / "checkpoints").iterdir())[-1]
    assert newest.name != Path(named).name and f"{newest.name}: " in message  # the newest was not good
