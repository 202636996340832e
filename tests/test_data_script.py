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


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(err: str) -> str:
    """The one line a failure prints (datasets' progress bars aside)."""
    lines = [line for line in err.splitlines() if line.strip() and not line.rstrip().endswith("/s]")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_an_existing_export_is_refused_before_building_unless_overwrite_output_dir(
        script, foundation_tree, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    argv = ["deeplense", "--config", "foundation", "--data_dir", str(foundation_tree), "--output_dir", str(out),
            "--cache_dir", str(tmp_path / "cache")]
    assert script.main(argv) == 0
    before = _snapshot(out)
    capsys.readouterr()
    real_prepare = script.prepare_builder
    monkeypatch.setattr(script, "prepare_builder", lambda *a, **k: pytest.fail("refused only after the build"))
    assert script.main(argv + ["--dataset_overrides", "seed=9"]) == 1
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: {out} already holds an export of config 'foundation'; pass --overwrite_output_dir "
        "(overwrite=True) to replace it")
    assert _snapshot(out) == before
    monkeypatch.setattr(script, "prepare_builder", real_prepare)
    assert script.main(argv + ["--dataset_overrides", "seed=9", "--overwrite_output_dir"]) == 0
    provenance = yaml.safe_load((out / "README.md").read_text().split("---")[1])["lens_hf"]["foundation"]
    assert provenance["seed"] == 9
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []


def test_disk_full_exits_1_with_one_line_and_the_old_export_still_loads(script, foundation_tree, tmp_path, capsys,
                                                                         monkeypatch):
    import errno

    out = tmp_path / "out"
    argv = ["deeplense", "--config", "foundation", "--data_dir", str(foundation_tree), "--output_dir", str(out),
            "--cache_dir", str(tmp_path / "cache")]
    assert script.main(argv) == 0
    old = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "read1"))
    before = _snapshot(out)
    capsys.readouterr()
    real_to_parquet = datasets.Dataset.to_parquet
    written = []

    def disk_fills(self, path, *args, **kwargs):
        written.append(path)
        if len(written) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_to_parquet(self, path, *args, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "to_parquet", disk_fills)
    assert script.main(argv + ["--dataset_overrides", "seed=5", "--overwrite_output_dir"]) == 1
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: could not write the export to {out}: No space left on device; the previous export is unchanged")
    monkeypatch.undo()
    assert _snapshot(out) == before
    again = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "read2"))
    assert {s: again[s][:]["uid"] for s in again} == {s: old[s][:]["uid"] for s in old}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []


def test_a_second_build_into_a_locked_folder_exits_1_naming_it(script, foundation_tree, tmp_path, capsys):
    import fcntl

    from lens_hf.data.export import export_lock_path

    out = tmp_path / "busy"
    handle = os.open(export_lock_path(out), os.O_RDWR | os.O_CREAT)
    fcntl.flock(handle, fcntl.LOCK_EX)  # what a running export holds
    try:
        status = script.main(["deeplense", "--config", "foundation", "--data_dir", str(foundation_tree),
                              "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache")])
    finally:
        os.close(handle)
    assert status == 1
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: another export into {out} is running (it holds {export_lock_path(out)}); wait for it to finish")
    assert not out.exists()


@pytest.mark.parametrize("repo_id, message", [
    ("a/b/c", "--repo_id 'a/b/c' is not a Hub repo id (org/name): Repo id must be in the form 'repo_name' or "
              "'namespace/repo_name': 'a/b/c'. Use `repo_type` argument if needed."),
    ("org/bad name", "--repo_id 'org/bad name' is not a Hub repo id (org/name): Repo id must use alphanumeric"),
])
def test_a_bad_repo_id_is_one_line_before_anything_is_built(script, tmp_path, capsys, repo_id, message):
    assert script.main(["deeplense", "--config", "foundation", "--output_dir", str(tmp_path / "never"),
                        "--push_to_hub", "--repo_id", repo_id]) == 2
    assert _one_error_line(capsys.readouterr().err).startswith(f"error: {message}")
    assert not (tmp_path / "never").exists()


def test_a_failed_push_exits_1_and_keeps_the_export(script, foundation_tree, tmp_path, capsys, monkeypatch):
    import socket

    from huggingface_hub import constants

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    out = tmp_path / "out"
    status = script.main(["deeplense", "--config", "foundation", "--data_dir", str(foundation_tree),
                          "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"),
                          "--push_to_hub", "--repo_id", "lens-tester/unreachable", "--hub_timeout", "5"])
    assert status == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: push to lens-tester/unreachable failed: cannot reach the Hub at "
                           f"http://127.0.0.1:{port}: ")
    assert line.endswith(f"; the export in {out} is kept")
    assert sum(s.num_rows for s in datasets.load_dataset(str(out), cache_dir=str(tmp_path / "read")).values()) == 15
