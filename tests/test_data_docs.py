"""The python examples of docs/datasets.md run as written, in order, in an empty folder."""
import re


def test_datasets_doc_examples_run(repo_root, tmp_path, monkeypatch, capsys):
    text = (repo_root / "docs/datasets.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"docs/datasets.md python block {number}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "(1, 64, 64) float32" in printed
    assert "sim_000003.npy: not a readable .npy file" in printed
    assert "torch.Size([16, 1, 64, 64])" in printed
