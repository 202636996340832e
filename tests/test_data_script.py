"""scripts/build_dataset.py: command line -> Parquet + README (+ push), and its bad-input exits."""
import importlib.util
import os
import subprocess
import sys

import datasets
import numpy as np
import pytest
import yaml

from lens_hf.data.sample_layouts import write_bologna_tree, write_class_folders


@pytest.fixture(scope="module")
def script(repo_root):
    spec = importlib.util.spec_from_file_location("build_dataset_script", repo_root / "scripts/build_dataset.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the script's annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture
def foundation_tree(tmp_path):
    return write_class_folders(tmp_path / "fm", ("axion", "cdm", "no_sub"), (64, 64), n_per_class=5)


def test_builds_and_exports_with_dataset_overrides(script, foundation_tree, tmp_path, capsys):
    out = tmp_path / "out"
    status = script.main(
        [
            "deeplense", "--config", "foundation", "--data_dir", str(foundation_tree), "--output_dir", str(out),
            "--cache_dir", str(tmp_path / "cache"), "--dataset_overrides", "seed=4,validation_fraction=0.25,test_fraction=0.25",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    back = datasets.load_dataset(str(out))
    assert f"train {back['train'].num_rows} rows" in printed
    assert sum(split.num_rows for split in back.values()) == 15
    provenance = yaml.safe_load((out / "README.md").read_text().split("---")[1])["lens_hf"]["foundation"]
    assert provenance["seed"] == 4 and provenance["validation_fraction"] == 0.25


def test_bad_file_exits_2_naming_it_then_skip_bad_files_counts_it(script, foundation_tree, tmp_path, capsys):
    bad = foundation_tree / "cdm/cdm_00003.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    argv = ["deeplense", "--config", "foundation", "--data_dir", str(foundation_tree), "--output_dir", str(tmp_path / "o"),
            "--cache_dir", str(tmp_path / "cache")]
    assert script.main(argv) == 2
    assert f"{bad}: not a readable .npy file" in capsys.readouterr().err
    assert script.main(argv + ["--skip_bad_files"]) == 0
    printed = capsys.readouterr().out
    assert "skipped 1 bad file(s):" in printed and str(bad) in printed
    assert sum(s.num_rows for s in datasets.load_dataset(str(tmp_path / "o")).values()) == 14


def test_dataset_overrides_use_the_training_scripts_syntax(script, tmp_path):
    """build_dataset reads --dataset_overrides with the same parser as the training scripts' flag of that name."""
    from lens_hf.training.arguments import parse_overrides

    text = "n_train=10,bands=[Band1,Band2],regression=true,pixel_scale_arcsec=0.05"
    arguments = script.parse_command_line(["deeplense", "--output_dir", str(tmp_path), "--dataset_overrides", text])
    assert parse_overrides(arguments.dataset_overrides) == {
        "n_train": 10, "bands": ("Band1", "Band2"), "regression": True, "pixel_scale_arcsec": 0.05}
    bad = script.parse_command_line(["deeplense", "--output_dir", str(tmp_path), "--dataset_overrides", "n_train"])
    with pytest.raises(ValueError, match="--dataset_overrides: expected comma-separated key=value pairs, got 'n_train'"):
        script.build(bad)


def test_argument_errors(script, tmp_path):
    with pytest.raises(ValueError, match="--push_to_hub needs --repo_id"):
        script.parse_command_line(["deeplense", "--output_dir", str(tmp_path), "--push_to_hub"])
    with pytest.raises(ValueError, match="--output_dir is required"):
        script.parse_command_line(["deeplense"])
    with pytest.raises(ValueError, match="name a builder .*'deeplense'"):
        script.parse_command_line(["--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="unknown builder 'deeplens'; available"):
        script.build(script.parse_command_line(["deeplens", "--output_dir", str(tmp_path)]))


def test_yaml_file_of_arguments_with_override(script, foundation_tree, tmp_path):
    config = tmp_path / "build.yaml"
    config.write_text(yaml.safe_dump({
        "builder": "deeplense", "config": "foundation", "data_dir": str(foundation_tree),
        "output_dir": str(tmp_path / "wrong"), "cache_dir": str(tmp_path / "cache"),
    }))
    assert script.main([str(config), "--output_dir", str(tmp_path / "right")]) == 0
    assert (tmp_path / "right/README.md").exists() and not (tmp_path / "wrong").exists()


def test_push_to_local_hub_then_load_by_repo_id(script, tmp_path, local_hub):
    root = write_bologna_tree(tmp_path / "bo", object_ids=range(40, 52), image_size=15)
    status = script.main(
        ["lens_finding", "--config", "bologna", "--data_dir", str(root), "--output_dir", str(tmp_path / "out"),
         "--cache_dir", str(tmp_path / "cache"), "--dataset_overrides", "image_size=15",
         "--push_to_hub", "--repo_id", "lens-tester/bologna-tiny"]
    )
    assert status == 0
    local = datasets.load_dataset(str(tmp_path / "out"))
    hub = datasets.load_dataset("lens-tester/bologna-tiny")
    for split in local:
        np.testing.assert_array_equal(local[split].with_format("numpy")[:]["image"], hub[split].with_format("numpy")[:]["image"])
        assert local[split][:]["uid"] == hub[split][:]["uid"]
    assert hub["train"].features["einstein_area"] == datasets.Value("float32")
    assert 'load_dataset("lens-tester/bologna-tiny")' in (tmp_path / "out/README.md").read_text()


def test_command_line_entry_point_runs(repo_root, foundation_tree, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    done = subprocess.run(
        [sys.executable, str(repo_root / "scripts/build_dataset.py"), "deeplense", "--config", "foundation",
         "--data_dir", str(foundation_tree), "--output_dir", str(tmp_path / "cli"), "--cache_dir", str(tmp_path / "cache")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "deeplense/foundation:" in done.stdout
    assert (tmp_path / "cli/README.md").exists()
