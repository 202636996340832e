"""docs/metrics_and_cards.md: its Python examples run as written, in order, against the local Hub."""
import re
import subprocess
import sys

FRESH_PROCESS_MARKER = "# run in a fresh Python process"


def _python_blocks(repo_root):
    text = (repo_root / "docs" / "metrics_and_cards.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_documented_examples_run(local_hub, repo_root, tmp_path, monkeypatch):
    blocks = _python_blocks(repo_root)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        if block.startswith(FRESH_PROCESS_MARKER):
            run = subprocess.run([sys.executable, "-c", block], cwd=repo_root, capture_output=True, text=True,
                                 timeout=120)
            assert run.returncode == 0, run.stderr[-3000:]
            assert "hello ['Upload hello.txt with huggingface_hub', 'initial commit']" in run.stdout
        else:
            exec(compile(block, "docs/metrics_and_cards.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "run" / "README.md").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "plots").iterdir()) == [
        "confusion.png", "loss.png", "mae.png", "mass.png", "roc.png", "sr.png"]
    assert namespace["commit"].startswith(f"{local_hub.url}/org/lens-mae-classifier/commit/")
