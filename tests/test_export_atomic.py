"""An export never destroys the previous one: disk full half-way, read-only folders, a second export running,
a folder that is not an export. Each refusal or failure is one `ExportError` naming the folder, and the folder
is byte-for-byte what it was."""
import errno
import itertools
import os
import subprocess
import sys
import textwrap

import datasets
import numpy as np
import pytest

from lens_hf.data import export as export_module
from lens_hf.data.export import ExportError, check_export_target, export_dataset, export_lock_path

FEATURES = datasets.Features({"image": datasets.Array3D((1, 4, 4), "float32"), "uid": datasets.Value("string")})


def make_dataset(seed: int, n: int = 40) -> datasets.DatasetDict:
    images = np.random.default_rng(seed).random((n, 1, 4, 4)).astype(np.float32)
    uids = [f"s{seed}-{i}" for i in range(n)]
    full = datasets.Dataset.from_dict({"image": images, "uid": uids}, features=FEATURES)
    return datasets.DatasetDict({"train": full.select(range(n // 2)), "test": full.select(range(n // 2, n))})


def snapshot(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(out) -> list:
    """Temporary siblings (`.out.tmp-*`, `.out.old-*`) or a lock file an export left behind."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


_CACHES = itertools.count()


def uids(folder, tmp_path, config="default") -> dict:
    """The uids per split `load_dataset` reads now (a fresh cache: the files, not an earlier read of them)."""
    back = datasets.load_dataset(str(folder), config, cache_dir=str(tmp_path / f"cache-{next(_CACHES)}"))
    return {split: back[split][:]["uid"] for split in back}


@pytest.fixture
def exported(tmp_path):
    """A first export (several shards per split) and what it holds."""
    out = tmp_path / "out"
    old = make_dataset(seed=1)
    export_dataset(old, out, max_shard_size=600)
    assert len(list((out / "data").glob("train-*.parquet"))) > 1
    return out, {split: old[split][:]["uid"] for split in old}


def test_disk_full_half_way_keeps_the_previous_export_loadable(exported, tmp_path, monkeypatch):
    out, old_uids = exported
    before = snapshot(out)
    real_to_parquet = datasets.Dataset.to_parquet
    calls = []

    def fill_the_disk(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # the second shard: one new shard is already on disk
            with open(path, "wb") as partial:
                partial.write(b"PAR1 half a shard")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_to_parquet(self, path, *args, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "to_parquet", fill_the_disk)
    with pytest.raises(ExportError) as failure:
        export_dataset(make_dataset(seed=2), out, max_shard_size=600, overwrite=True)
    assert str(failure.value) == (f"could not write the export to {out}: No space left on device; "
                                  "the previous export is unchanged")
    assert "\n" not in str(failure.value)
    monkeypatch.undo()
    assert snapshot(out) == before
    assert uids(out, tmp_path) == old_uids
    assert leftovers(out) == []


def test_disk_full_on_a_first_export_leaves_nothing(tmp_path, monkeypatch):
    def no_space(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(datasets.Dataset, "to_parquet", no_space)
    out = tmp_path / "fresh"
    with pytest.raises(ExportError, match=r"fresh: No space left on device; nothing was written there$"):
        export_dataset(make_dataset(seed=3), out)
    assert not out.exists() and leftovers(out) == []


def test_an_existing_config_is_never_replaced_without_overwrite(exported, tmp_path):
    out, old_uids = exported
    before = snapshot(out)
    with pytest.raises(ExportError, match=rf"^{out} already holds an export of config 'default'; pass "
                                          r"--overwrite_output_dir \(overwrite=True\) to replace it$"):
        export_dataset(make_dataset(seed=2), out)
    with pytest.raises(ExportError, match="already holds an export of config 'default'"):
        check_export_target(out, "default")
    assert snapshot(out) == before and leftovers(out) == []
    check_export_target(out, "other")  # another config may be added beside it
    export_dataset(make_dataset(seed=2), out, overwrite=True)
    assert uids(out, tmp_path) == {split: make_dataset(seed=2)[split][:]["uid"] for split in ("train", "test")}
    assert leftovers(out) == []


def test_a_folder_that_is_not_an_export_is_refused_then_kept_beside_with_overwrite(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "README.md").write_text("# my notes\n")
    (out / "keep.txt").write_text("mine")
    before = snapshot(out)
    with pytest.raises(ExportError, match=rf"^{out} is not empty and holds no dataset export \(no README.md with "
                                          r"configs:\); choose an empty folder or pass --overwrite_output_dir"):
        export_dataset(make_dataset(seed=1), out)
    assert snapshot(out) == before
    export_dataset(make_dataset(seed=1), out, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"  # told to write into it: other files are carried over
    assert uids(out, tmp_path)["train"] == make_dataset(seed=1)["train"][:]["uid"]
    empty = tmp_path / "empty"
    empty.mkdir()
    export_dataset(make_dataset(seed=1), empty)  # an empty folder is no export to protect


def test_read_only_folder_is_a_one_line_error(exported, tmp_path):
    out, old_uids = exported
    before = snapshot(out)
    out.chmod(0o555)
    try:
        with pytest.raises(ExportError, match=rf"^{out} is read-only; make it writable or choose another output "
                                              "folder$"):
            export_dataset(make_dataset(seed=2), out, overwrite=True)
    finally:
        out.chmod(0o755)
    assert snapshot(out) == before and leftovers(out) == []


def test_unwritable_parent_is_a_one_line_error(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(export_module.tempfile, "mkdtemp", denied)
    with pytest.raises(ExportError, match=r"could not write the export to .*locked_out: Permission denied; "
                                          "nothing was written there$"):
        export_dataset(make_dataset(seed=1), tmp_path / "locked_out")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ExportError, match=r"a_file exists and is not a folder"):
        export_dataset(make_dataset(seed=1), tmp_path / "a_file")


def test_a_held_lock_refuses_a_second_export_naming_the_folder(exported, tmp_path):
    out, old_uids = exported
    before = snapshot(out)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, sys, time
            handle = os.open({str(export_lock_path(out))!r}, os.O_RDWR | os.O_CREAT)
            fcntl.flock(handle, fcntl.LOCK_EX)
            print("locked", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ExportError, match=rf"^another export into {out} is running \(it holds "
                                              rf"{export_lock_path(out)}\); wait for it to finish$"):
            export_dataset(make_dataset(seed=2), out, overwrite=True)
    finally:
        holder.communicate("", timeout=30)
    assert snapshot(out) == before
    export_dataset(make_dataset(seed=2), out, overwrite=True)  # the lock is free again
    assert leftovers(out) == []


def test_two_exports_at_once_never_interleave(tmp_path, repo_root):
    """Both start together: each ends with its own complete export or with the lock refusal, never a mix."""
    out = tmp_path / "race"
    code = textwrap.dedent("""
        import sys
        import datasets, numpy as np
        from lens_hf.data.export import ExportError, export_dataset
        seed = int(sys.argv[1])
        n = 400
        features = datasets.Features({"x": datasets.Value("int64"), "uid": datasets.Value("string")})
        ds = datasets.Dataset.from_dict({"x": list(range(n)), "uid": [f"s{seed}-{i}" for i in range(n)]},
                                        features=features)
        sys.stdin.readline()  # start together
        try:
            export_dataset(ds, sys.argv[2], max_shard_size=300, overwrite=True)
        except ExportError as error:
            print(f"refused: {error}")
        else:
            print("exported")
    """)
    env = {**os.environ, "PYTHONPATH": str(repo_root), "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    runs = [subprocess.Popen([sys.executable, "-c", code, str(seed), str(out)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for seed in (1, 2)]
    for run in runs:
        run.stdin.write("go\n")
        run.stdin.flush()
    results = [run.communicate(timeout=300) for run in runs]
    for run, (stdout, stderr) in zip(runs, results):
        assert run.returncode == 0, stderr[-3000:]
        assert stdout.strip() == "exported" or stdout.startswith(f"refused: another export into {out} "), stdout
    assert any(stdout.strip() == "exported" for stdout, _ in results)
    rows = uids(out, tmp_path)["train"]
    assert len(rows) == 400 and len({uid.split("-")[0] for uid in rows}) == 1  # one export's rows, not a mix
    assert leftovers(out) == []


def test_the_two_rename_fallback_swaps_and_puts_the_old_export_back_on_failure(exported, tmp_path, monkeypatch):
    """Where RENAME_EXCHANGE is missing (not Linux, old kernels, some filesystems)."""
    out, old_uids = exported
    monkeypatch.setattr(export_module, "_rename_exchange", lambda source, destination: False)
    before = snapshot(out)
    real_replace = os.replace

    def second_rename_fails(source, destination):
        if str(source).startswith(str(out.parent / f".{out.name}.tmp-")):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_replace(source, destination)

    monkeypatch.setattr(export_module.os, "replace", second_rename_fails)
    with pytest.raises(ExportError, match="Input/output error; the previous export is unchanged"):
        export_dataset(make_dataset(seed=2), out, overwrite=True)
    monkeypatch.setattr(export_module.os, "replace", real_replace)
    assert snapshot(out) == before and leftovers(out) == []
    export_dataset(make_dataset(seed=2), out, overwrite=True)
    assert uids(out, tmp_path)["test"] == make_dataset(seed=2)["test"][:]["uid"]
    assert leftovers(out) == []


def test_a_symlinked_output_folder_stays_a_link(exported, tmp_path):
    out, _ = exported
    link = tmp_path / "link"
    link.symlink_to(out, target_is_directory=True)
    export_dataset(make_dataset(seed=2), link, overwrite=True)
    assert link.is_symlink() and uids(link, tmp_path)["train"] == make_dataset(seed=2)["train"][:]["uid"]
    assert leftovers(out) == [] and leftovers(link) == []


def test_lock_path_is_beside_the_folder(tmp_path):
    assert export_lock_path(tmp_path / "out") == tmp_path / ".out.lock"
