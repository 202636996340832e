"""The task object: every run folder any script writes evaluates and publishes with the task it was trained for
(read from `config.lens_task`, never guessed), a new task is one object, the loss hook sees the Accelerator,
secrets never reach a file, re-evaluation with the recorded seed reproduces the stored figure, and a recipe
default never overrides what a user wrote in a file."""

import json
from pathlib import Path

import pytest
import torch
from helpers import load_script, sample_data_arguments, tiny_config
from huggingface_hub import HfApi, ModelCard

from lens_hf import LensImageProcessor, LensMAEForImageClassification
from lens_hf.data.sample_layouts import write_lens_finding_tree
from lens_hf.tasks import TASKS, LossContext, Task, get_task, task_of

TINY = ["--model_preset", "tiny", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
        "--disable_progress_bar", "true", "--save_steps", "0", "--report_to", "none"]
SECRET = "hf_lensHFsecretTOKEN0123456789"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return sample_data_arguments(tmp_path_factory.mktemp("task_data"))


# Every kind of run folder the scripts write: (name, script, data key, extra arguments, task recorded).
RUNS = [
    ("pretraining", "pretrain_mae.py", "classification", ["--patch_size", "8"], "pretraining"),
    ("resnet18", "finetune.py", "classification", ["--mode", "scratch", "--architecture", "resnet18"],
     "classification"),
    ("regression", "finetune.py", "regression", ["--task", "regression", "--mode", "scratch"], "regression"),
    ("lens_finding", "finetune.py", "lens_finding", ["--task", "lens_finding", "--mode", "scratch",
                                                     "--imbalance", "loss_weights"], "lens_finding"),
    ("super_resolution", "train_sr.py", "super_resolution", ["--patch_size", "4"], "super_resolution"),
    ("contrastive", "pretrain_contrastive.py", "classification", ["--backbone", "resnet18"], "contrastive"),
    # a LoRA adapter on the pretraining run above (RUNS are trained in this order)
    ("lora", "finetune.py", "classification", ["--mode", "lora", "--model_name_or_path", "{pretraining}"],
     "classification"),
]


@pytest.fixture(scope="module")
def run_folders(data, tmp_path_factory, local_hub):
    """One tiny run of each kind; the ResNet run is pushed to the local Hub with an explicit token."""
    root = tmp_path_factory.mktemp("task_runs")
    folders = {}
    for name, script, data_key, extra, _ in RUNS:
        out = root / name
        push = ["--push_to_hub", "true", "--hub_model_id", f"org/{name}", "--hub_token", SECRET] \
            if name == "resnet18" else []
        extra = [str(folders.get(word[1:-1], word)) if word.startswith("{") else word for word in extra]
        load_script(script).main([*map(str, data[data_key]), *TINY, *extra, *push, "--max_steps", "2",
                                  "--output_dir", str(out)])
        folders[name] = out
    return folders


@pytest.mark.parametrize("name,script,data_key,extra,task", RUNS, ids=[r[0] for r in RUNS])
def test_every_run_folder_evaluates_and_publishes_with_its_task(run_folders, data, local_hub, name, script,
                                                                 data_key, extra, task):
    folder = run_folders[name]
    assert json.loads((folder / "config.json").read_text())["lens_task"] == task
    summary = json.loads((folder / "metrics.json").read_text())["summary"]
    split = "test" if "test" in summary else "validation"  # the SR pairs have no test folder
    load_script("evaluate.py").main([*map(str, data[data_key]), "--model_name_or_path", str(folder),
                                     "--split", split])
    after = json.loads((folder / "metrics.json").read_text())
    assert after["task"] == task
    assert after["summary"][split] == pytest.approx(summary[split], rel=1e-6)  # same model, data, recorded seed
    headline = {key for key, _ in get_task(task).card.headline_metrics}
    assert headline <= set(after["summary"][split])
    adapter = ["--base_model_id", "org/pretraining-copy"] if name == "lora" else []  # its base is a local folder
    load_script("push_to_hub.py").main(["--run_dir", str(folder), "--repo_id", f"org/{name}-copy", *adapter])
    card = ModelCard.load(f"org/{name}-copy")
    assert {r.metric_type for r in card.data.eval_results} >= headline
    if name == "lora":  # an adapter repo loads through peft on its base model
        assert card.data.library_name == "peft" and card.data.base_model == "org/pretraining-copy"
        assert 'PeftModel.from_pretrained(base, "org/lora-copy")' in card.text
    else:
        assert f'{get_task(task).card.auto_class}.from_pretrained("org/{name}-copy")' in card.text


def test_a_token_never_reaches_a_file(run_folders):
    """The ResNet run was given --hub_token and pushed with it: no local file and no pushed file holds it."""
    folder = run_folders["resnet18"]
    leaked = [str(p) for p in folder.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []
    record = json.loads((folder / "run_config.json").read_text())
    assert "hub_token" not in record["RunArguments"] and record["RunArguments"]["hub_model_id"] == "org/resnet18"
    api = HfApi()
    pushed = [f.rfilename for f in api.list_repo_tree("org/resnet18", recursive=True) if hasattr(f, "rfilename")]
    assert "run_config.json" in pushed
    for name in pushed:
        path = api.hf_hub_download("org/resnet18", name)
        assert SECRET.encode() not in Path(path).read_bytes(), name


def test_re_evaluation_uses_the_recorded_seed(run_folders, data):
    """Pretraining scores masked patches: evaluate.py defaults to the run's seed, so it reproduces the stored
    masked-patch MSE exactly; another seed draws other masks and gives another number."""
    folder = run_folders["pretraining"]
    stored = json.loads((folder / "metrics.json").read_text())["summary"]["test"]["masked_mse"]
    evaluate = load_script("evaluate.py")
    again = evaluate.main([*map(str, data["classification"]), "--model_name_or_path", str(folder), "--split", "test",
                           "--refresh_card", "false"])
    assert again["test"]["masked_mse"] == stored
    other = evaluate.main([*map(str, data["classification"]), "--model_name_or_path", str(folder), "--split", "test",
                           "--seed", "1", "--output_dir", str(folder.parent / "pretraining_seed1")])
    assert other["test"]["masked_mse"] != stored


@pytest.fixture(scope="module")
def three_band_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("three_band")
    write_lens_finding_tree(root, n_per_folder=10, image_size=32)
    return ["--dataset_name", "lens_finding", "--dataset_config", "npy", "--data_dir", str(root),
            "--cache_dir", str(root / "cache"), "--dataset_overrides", "image_size=32"]


@pytest.mark.parametrize("lens_task,expected,absent", [
    ("classification", {"accuracy", "roc_auc_micro", "roc_auc_macro"}, {"tpr_at_fpr_1e-2"}),
    ("lens_finding", {"roc_auc", "average_precision", "tpr_at_fpr_1e-2"}, {"roc_auc_micro"}),
])
def test_a_two_class_model_evaluates_as_the_task_it_was_trained_for(tmp_path, three_band_data, lens_task, expected,
                                                                    absent):
    """num_labels == 2 used to mean "lens finder"; the recorded task decides now."""
    folder = tmp_path / "model"
    config = tiny_config(num_channels=3, num_labels=2, id2label={0: "nonlens", 1: "lens"},
                         label2id={"nonlens": 0, "lens": 1}, lens_task=lens_task)  # the dataset's classes
    torch.manual_seed(0)
    LensMAEForImageClassification(config).save_pretrained(folder)
    LensImageProcessor(size=32, num_channels=3).save_pretrained(folder)
    (folder / "metrics.json").write_text(json.dumps({"task": lens_task}))
    metrics = load_script("evaluate.py").main([*three_band_data, "--model_name_or_path", str(folder),
                                               "--split", "test"])
    assert expected <= set(metrics["test"]) and not absent & set(metrics["test"])
    first_headline = get_task(lens_task).card.headline_metrics[0][0]
    assert ModelCard.load(folder / "README.md").data.eval_results[0].metric_type == first_headline


def test_a_model_without_a_recorded_task_is_an_error_not_a_guess(tmp_path, three_band_data):
    folder = tmp_path / "untagged"
    config = tiny_config(num_channels=3, num_labels=2)
    LensMAEForImageClassification(config).save_pretrained(folder)
    LensImageProcessor(size=32, num_channels=3).save_pretrained(folder)
    evaluate = load_script("evaluate.py")
    with pytest.raises(ValueError, match="has no `lens_task` field"):
        evaluate.main([*three_band_data, "--model_name_or_path", str(folder), "--split", "test"])
    metrics = evaluate.main([*three_band_data, "--model_name_or_path", str(folder), "--split", "test",
                             "--task", "lens_finding"])
    assert "roc_auc" in metrics["test"]
    with pytest.raises(ValueError, match="unknown task 'segmentation'"):
        evaluate.main([*three_band_data, "--model_name_or_path", str(folder), "--task", "segmentation"])


def test_task_registry_is_complete_and_task_of_reads_the_config():
    assert set(TASKS) == {"pretraining", "classification", "regression", "lens_finding", "super_resolution",
                          "contrastive"}
    for name, task in TASKS.items():
        assert task.name == name and get_task(name) is task and get_task(task) is task
        assert task.card.headline_metrics and task.card.auto_class.startswith("AutoModel")
        assert task.metric_module in __import__("lens_hf.metrics", fromlist=["x"]).METRIC_NAMES
    assert task_of(tiny_config(lens_task="regression")) is TASKS["regression"]
    assert task_of({"lens_task": "pretraining"}) is TASKS["pretraining"]
    with pytest.raises(ValueError, match="lens_task"):
        task_of(tiny_config())


class CountingTask(Task):
    """A task added by a user: its loss gathers every rank's loss through the context's Accelerator and records
    what it saw, which is all a contrastive loss needs."""

    name = "classification_with_context"
    target_column = "label"
    has_classes = True
    card = TASKS["classification"].card
    seen: list = []

    def loss(self, model, batch, context: LossContext):
        assert isinstance(context.generator, torch.Generator)
        loss = model(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss
        gathered = context.accelerator.gather(loss.detach().reshape(1))
        self.seen.append((context.accelerator.num_processes, tuple(gathered.shape)))
        return loss

    def compute_metrics(self, outputs, class_names=None):
        return TASKS["classification"].compute_metrics(outputs, class_names)


def test_a_new_task_is_one_object(data, tmp_path, monkeypatch):
    """Registered in TASKS, a Task subclass trains through the ordinary runner, its name is saved in the config,
    and evaluation reads it back."""
    from lens_hf.training import DataArguments, ModelArguments, RunArguments, parse_arguments, run_training
    from lens_hf.training.evaluation import load_saved_model
    from lens_hf.training.models import fresh_config

    task = CountingTask()
    monkeypatch.setitem(TASKS, task.name, task)
    data_args, model_args, run_args = parse_arguments(
        (DataArguments, ModelArguments, RunArguments),
        [*map(str, data["classification"]), *TINY, "--max_steps", "3", "--output_dir", str(tmp_path / "new")])

    def build_model(info, recipe_config):
        names = info.class_names
        return LensMAEForImageClassification(fresh_config(model_args, info.image_size, info.num_channels,
                                                          num_labels=len(names), id2label=dict(enumerate(names))))

    metrics = run_training(task=task.name, data_args=data_args, model_args=model_args, run_args=run_args,
                           build_model=build_model)
    assert task.seen == [(1, (1,))] * 3  # the loss hook ran every step with the Accelerator in its context
    assert "accuracy" in metrics["test"]
    model, loaded_task = load_saved_model(tmp_path / "new")
    assert loaded_task is task and model.config.lens_task == task.name


def test_a_file_value_beats_the_recipe_default(data, tmp_path):
    """train_sr's recipe says normalization none; a YAML file saying minmax wins (it used to be overwritten)."""
    config = tmp_path / "sr.yaml"
    config.write_text("normalization: minmax\n")
    train_sr = load_script("train_sr.py")
    arguments = [*map(str, data["super_resolution"]), *TINY, "--patch_size", "4", "--max_steps", "1"]
    train_sr.main([str(config), *arguments, "--output_dir", str(tmp_path / "from_file")])
    train_sr.main([*arguments, "--output_dir", str(tmp_path / "recipe")])
    read = lambda name: json.loads((tmp_path / name / "preprocessor_config.json").read_text())["normalization"]  # noqa: E731
    assert read("from_file") == "minmax" and read("recipe") == "none"


def test_a_learning_rate_of_zero_is_zero(data, tmp_path):
    """`--learning_rate 0` used to fall back to the base-lr rule (`0 or ...`) and train anyway."""
    out = tmp_path / "frozen"
    load_script("finetune.py").main([*map(str, data["classification"]), *TINY, "--mode", "scratch", "--max_steps", "2",
                                     "--learning_rate", "0", "--output_dir", str(out)])
    assert json.loads((out / "run_config.json").read_text())["derived"]["learning_rate"] == 0.0
