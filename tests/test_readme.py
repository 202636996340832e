"""Every ```python block of README.md runs as written.

Each block runs on its own, in a fresh namespace (as a reader pastes it: a name one block defines cannot hide a
NameError in another), in a temporary working folder prepared with what the blocks read:

- `demo_output/lens-mae-classifier`: what `make demo` leaves there; here a tiny 3-class classifier
  (tests/helpers.py `tiny_config`) with a processor like the demo's (32 px centre crop, standardised pixels);
- the Hub repo `org/lens-mae-classifier`: that folder pushed to the local Hub server (tests/hub_server.py);
- `lens.npy`: a 64 x 64 image;
- `~/data/deeplense`: a small DeepLenseSim Model II tree (HOME points into the temporary folder).

A block that never mentions lens_hf runs in a fresh interpreter in which `import lens_hf` fails
(helpers.BLOCK_LENS_HF): the README offers those blocks for machines without lens_hf.

Marker for a block that cannot run here: its first line is `# your names: NAME, NAME`, naming what the reader must
supply (a Hub id, a file of theirs) that this test cannot stand in for. Such a block is only compiled, and each
NAME must occur in it. Prefer a block that runs: add what it reads to `prepare` below instead.
"""

import re

import numpy as np
from helpers import BLOCK_LENS_HF, run_python, tiny_config

from lens_hf.tasks import TASKS

YOUR_NAMES_MARKER = "# your names:"
CLASS_NAMES = ("axion", "cdm", "no_sub")


def python_blocks(repo_root) -> list[str]:
    text = (repo_root / "README.md").read_text()
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def prepare(folder, home, repo_id: str) -> None:
    """Write what the README blocks read into `folder` (the working folder) and `home` (`~`)."""
    import lens_hf  # noqa: F401
    from lens_hf import LensImageProcessor, LensMAEForImageClassification
    from lens_hf.data.sample_layouts import write_deeplense_model_tree
    from lens_hf.hub import push_folder_to_hub

    classifier = folder / "demo_output" / "lens-mae-classifier"
    config = tiny_config(image_size=32, patch_size=4, num_labels=3, id2label=dict(enumerate(CLASS_NAMES)))
    LensMAEForImageClassification(config).save_pretrained(classifier)
    LensImageProcessor(size=32, crop_size=32, normalization="standardize", image_mean=[0.1],
                       image_std=[0.2]).save_pretrained(classifier)
    push_folder_to_hub(classifier, repo_id)
    np.save(folder / "lens.npy", np.random.default_rng(0).random((64, 64)).astype(np.float32))
    write_deeplense_model_tree(home / "data" / "deeplense", n_per_class=4, n_test_per_class=2, image_size=64)


def test_readme_python_blocks_run_as_written(repo_root, tmp_path, monkeypatch, capsys, local_hub):
    blocks = python_blocks(repo_root)
    assert len(blocks) >= 5, "README.md python blocks not found"
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    prepare(work, home, "org/lens-mae-classifier")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    ran = 0
    for number, block in enumerate(blocks, start=1):
        name = f"README.md python block {number}"
        code = compile(block, name, "exec")
        if block.startswith(YOUR_NAMES_MARKER):
            names = [n.strip() for n in block.splitlines()[0][len(YOUR_NAMES_MARKER):].split(",") if n.strip()]
            assert names and all(n in block for n in names), (name, names)
            continue
        capsys.readouterr()
        if "lens_hf" not in block:  # offered for machines without lens_hf: run it where lens_hf cannot be imported
            run_python(BLOCK_LENS_HF + block, env={"HOME": str(home)}, cwd=work)
        else:
            registered = dict(TASKS)  # a block may register a task (the "Adding a task" example): undo it after
            try:
                exec(code, {"__name__": "__main__"})  # noqa: S102
            finally:
                TASKS.clear()
                TASKS.update(registered)
        printed = capsys.readouterr().out
        if "AutoModelForImageClassification" in block and "print(" in block:  # the quickstart prints a class
            assert printed.strip().splitlines()[-1] in CLASS_NAMES, (name, printed)
        ran += 1
    assert ran >= 5

