"""The quality benchmark scripts (one per row of the quality table in BENCHMARKS.md) run end to end at their smoke
size and write the figures they print; the CPU and full sizes are the same code with more data and steps."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO_ROOT


def run_benchmark(name: str, output_dir, *extra, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / f"quality_{name}.py"), "--size", "smoke",
                             "--output_dir", str(output_dir), "--threads", "1", *map(str, extra)],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=900,
                            env={**__import__("os").environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0 or not check, result.stderr[-4000:]
    return result


def absolute_paths(value) -> list[str]:
    """Every string in a parsed JSON value that is an absolute path (or holds one: "/work/x" inside a sentence)."""
    if isinstance(value, dict):
        return [found for item in value.values() for found in absolute_paths(item)]
    if isinstance(value, list):
        return [found for item in value for found in absolute_paths(item)]
    if isinstance(value, str) and any(word.startswith(("/", "~")) or word[1:3] in (":\\", ":/")
                                      for word in value.split()):
        return [value]
    return []


def test_results_record_run_folders_relative_to_the_output_folder(tmp_path):
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from quality_common import relative_folder

    out = tmp_path / "bench"
    assert relative_folder(out / "model_ii" / "finetune", out) == "model_ii/finetune"
    assert relative_folder(str(out / "sr"), out) == "sr"
    assert relative_folder("in-process (scikit-learn)", out) == "in-process (scikit-learn)"
    assert absolute_paths({"figures": [{"folder": "model_ii/finetune"}, {"folder": "in-process (scikit-learn)"}]}) == []
    assert absolute_paths({"figures": [{"folder": "/work/runs/q_ii3/model_ii/finetune"}]}) != []
    for saved in sorted((REPO_ROOT / "benchmarks" / "results").glob("*.json")):  # the committed results too
        assert absolute_paths(json.loads(saved.read_text())) == [], saved.name


@pytest.mark.parametrize("row,saved,expected", [
    ("regression", "quality_regression_model_iii.json", {"mae_dex", "rmse_dex", "bias_dex"}),
    pytest.param("lens_finding", "quality_lens_finding.json", {"lens_mae/roc_auc", "resnet18/tpr_at_fpr_1e-3"},
                 marks=pytest.mark.slow),
    pytest.param("super_resolution", "quality_super_resolution.json", {"psnr_db", "bicubic_psnr_db"},
                 marks=pytest.mark.slow),
    pytest.param("classification", "quality_classification_model_ii.json",
                 {"mae_finetune/accuracy", "mae_linear_probe/roc_auc_micro", "resnet18/accuracy"},
                 marks=pytest.mark.slow),
])
def test_quality_row_smoke(tmp_path, row, saved, expected):
    result = run_benchmark(row, tmp_path)
    record = json.loads((tmp_path / saved).read_text())
    names = {figure["name"] for figure in record["figures"]}
    assert expected <= names and record["size"] == "smoke"
    for figure in record["figures"]:
        assert f"/{figure['name']} {figure['value']:.4f}" in result.stdout  # printed, one line per figure
    # no folder of this machine in the JSON: run folders are relative to --output_dir, and are there
    assert absolute_paths(record) == [] and str(tmp_path) not in json.dumps(record)
    assert all((tmp_path / f["folder"]).is_dir() for f in record["figures"] if f["folder"] != "in-process (scikit-learn)")
    if row == "classification":  # the Model II finetune answers the FM set's published micro-AUC
        published = {figure["name"]: figure["published"] for figure in record["figures"]}
        assert published["mae_finetune/roc_auc_micro"] == 0.97 and published["mae_linear_probe/roc_auc_micro"] == 0.58


def test_resume_reuses_finished_stages_and_continues_the_cut_off_one(tmp_path):
    folder = tmp_path / "regression_model_iii"
    run_benchmark("regression", tmp_path)  # a plain run: no checkpoints
    pretrained = (folder / "mae" / "model.safetensors").stat().st_mtime_ns
    first = json.loads((tmp_path / "quality_regression_model_iii.json").read_text())["figures"]

    resume = ("--resume", "true", "--save_steps", 2)
    result = run_benchmark("regression", tmp_path, *resume)  # checkpointing flags differ: still the same runs
    assert result.stdout.count("finished earlier with this command") == 2 and "resumed from" not in result.stderr
    assert json.loads((tmp_path / "quality_regression_model_iii.json").read_text())["figures"] == first

    (folder / "regressor" / "metrics.json").unlink()  # cut off before it finished, without a checkpoint: retrained
    result = run_benchmark("regression", tmp_path, *resume)
    assert f"reusing {folder / 'mae'}" in result.stdout and f"reusing {folder / 'regressor'}" not in result.stdout
    assert "resumed from" not in result.stderr
    assert sorted(p.name for p in (folder / "regressor" / "checkpoints").iterdir()) == ["step_00000002",
                                                                                        "step_00000004"]

    (folder / "regressor" / "metrics.json").unlink()  # as if the time limit struck after the step-4 checkpoint
    result = run_benchmark("regression", tmp_path, *resume)
    assert "at step 4" in result.stderr and "resumed from" in result.stderr
    assert (folder / "mae" / "model.safetensors").stat().st_mtime_ns == pretrained
    log = [json.loads(line) for line in (folder / "regressor" / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4, 5]  # step 5 trained once, nothing repeated
    second = json.loads((tmp_path / "quality_regression_model_iii.json").read_text())["figures"]
    assert [f["name"] for f in second] == [f["name"] for f in first]

    # another computation into the same folders: refused (it used to retrain over the seed-0 runs), nothing changed
    before = (folder / "mae" / "model.safetensors").read_bytes()
    other = run_benchmark("regression", tmp_path, *resume, "--seed", 1, check=False)
    assert other.returncode != 0 and "finished earlier with this command" not in other.stdout
    assert "holds a finished run of another configuration" in other.stderr and "seed: 0 -> 1" in other.stderr
    assert (folder / "mae" / "model.safetensors").read_bytes() == before


def test_quality_cost_counts_resnet18_like_the_literature_and_prints_every_row():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))  # not scripts/: its evaluate.py would shadow HF evaluate
    from quality_cost import step_flops

    from lens_hf.architectures import get_architecture

    resnet18 = get_architecture("resnet18").build

    # ResNet-18 at 224 px, 3 bands: 1.82 G multiply-adds forward (3.64 GFLOP); backward costs twice the forward
    per_image = step_flops(resnet18(224, 3, num_labels=1000), 224, 3, batch=1, kind="classification")
    assert abs(per_image / (3 * 3.64e9) - 1) < 0.03, per_image
    assert step_flops(resnet18(224, 3, num_labels=1000), 224, 3, batch=8, kind="classification") == 8 * per_image

    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "quality_cost.py"), "--size", "smoke",
                             "--tflops", "1"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split()[0] for line in result.stdout.splitlines()]
    assert rows == [f"quality_cost/smoke/{row}_pflop" for row in (
        "classification_model_i", "classification_model_ii", "classification_model_iii", "regression_model_iii",
        "super_resolution", "lens_finding", "all_rows")]


def test_a_stage_counts_as_finished_only_with_its_own_command_and_a_completed_run(tmp_path):
    from lens_hf.scripts.stages import STAGE_RECORD, finished_with, run_stage, stage_environment

    folder = tmp_path / "run"
    words = ["python", "-m", "lens_hf.scripts.finetune", "--max_steps", "5", "--output_dir", str(folder)]
    (folder / "logs").mkdir(parents=True)
    (folder / STAGE_RECORD).write_text(json.dumps({"command": words}))
    assert not finished_with(folder, words)  # no metrics.json: the run did not finish
    (folder / "metrics.json").write_text("{}")
    assert finished_with(folder, words)
    assert not finished_with(folder, [*words[:4], "6", *words[5:]])
    assert finished_with(folder, [*words, "--save_steps", "250", "--resume_from_checkpoint", "latest"])
    (folder / STAGE_RECORD).write_text("{not json")
    assert not finished_with(folder, words)

    # a rerun that fails (here: an unknown flag) leaves the folder unfinished, even though it was finished before
    (folder / STAGE_RECORD).write_text(json.dumps({"command": words}))
    with pytest.raises(SystemExit, match="failed"):
        run_stage("broken", "finetune.py", ["--no_such_flag", "1", "--output_dir", folder], stage_environment(1))
    assert not (folder / STAGE_RECORD).exists()


def test_labelled_subsets_are_balanced_nested_and_differ_by_seed():
    from lens_hf.data.splits import labelled_subset_indices

    labels = [0] * 50 + [1] * 30 + [2] * 20
    ten = labelled_subset_indices(labels, 10, seed=0)
    assert len(ten) == 30 and sorted(ten) == ten
    assert [sum(labels[i] == c for i in ten) for c in range(3)] == [10, 10, 10]
    assert set(labelled_subset_indices(labels, 5, seed=0)) <= set(ten)  # nested within a seed
    assert labelled_subset_indices(labels, 10, seed=1) != ten
    assert labelled_subset_indices(labels, 10, seed=0) == ten  # a function of (labels, k, seed) only
    with pytest.raises(ValueError, match="class 2 has 20 training rows, fewer than labels_per_class=25"):
        labelled_subset_indices(labels, 25, seed=0)


def test_label_efficiency_smoke(tmp_path):
    """The wiring of the label-efficiency row: every method on every subset (repeated subsets over two seeds),
    aggregated as mean +- sd, plotted, the targets printed, run folders relative to --output_dir."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from quality_label_efficiency import METHODS

    result = run_benchmark("label_efficiency", tmp_path)
    record = json.loads((tmp_path / "quality_label_efficiency_model_ii.json").read_text())
    assert set(record["results"]) == set(METHODS)
    for method in METHODS:
        assert set(record["results"][method]) == {"2", "all"}, method
        runs = record["per_seed"][method]["2"]
        assert len(runs) == 2 and len(record["per_seed"][method]["all"]) == 1
        accuracy = record["results"][method]["2"]["accuracy"]
        assert accuracy["mean"] == pytest.approx(np.mean([r["accuracy"] for r in runs]))
        assert accuracy["sd"] == pytest.approx(np.std([r["accuracy"] for r in runs], ddof=1))
        for folder in record["folders"][method]["2"]:
            assert folder == "in-process (scikit-learn)" or (tmp_path / folder / "metrics.json").exists()
        assert f"/{method}/2_per_class accuracy {accuracy['mean']:.4f}" in result.stdout
    # the two seeds trained on different labelled rows, each class-balanced
    configs = [json.loads((tmp_path / f / "run_config.json").read_text())["DataArguments"]
               for f in record["folders"]["resnet18_scratch"]["2"]]
    assert [(c["labels_per_class"], c["subset_seed"]) for c in configs] == [(2, 0), (2, 1)]
    assert (tmp_path / record["plot"]).stat().st_size > 10_000
    assert record["protocol"]["steps"] == {"2": 2, "all": 3}
    assert "target: accuracy at 100/class" in result.stdout
    assert absolute_paths(record) == [] and str(tmp_path) not in json.dumps(record)
    # cut off and started again with --resume: every finished stage is reused, the figures are the same
    again = run_benchmark("label_efficiency", tmp_path, "--resume")
    assert again.stdout.count("(finished earlier with this command") == 3 + 8 * 3
    assert json.loads((tmp_path / "quality_label_efficiency_model_ii.json").read_text())["results"] == record["results"]


def test_label_efficiency_ablation_filters():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from quality_label_efficiency import SIZES, LabelEfficiencyArguments, downstream_steps, subsets

    every = subsets(SIZES["cpu"])
    assert every == [(10, 0), (10, 1), (10, 2), (100, 0), (100, 1), (100, 2), (1000, 0), (None, 0)]
    chosen = LabelEfficiencyArguments(methods="mae_lora,resnet18_scratch", per_class="100,all")
    assert chosen.selected_methods() == ("mae_lora", "resnet18_scratch")
    assert chosen.selected_subsets(every) == [(100, 0), (100, 1), (100, 2), (None, 0)]
    with pytest.raises(ValueError, match="unknown \\['vgg'\\]"):
        LabelEfficiencyArguments(methods="vgg")
    # steps: 30 epochs of the labelled images, within [100, 500]
    assert [downstream_steps("cpu", n, min(64, n)) for n in (30, 300, 3000, 20000)] == [100, 141, 500, 500]
