"""The python examples of docs/simulation.md run as written, in order, and print what the doc says."""
import re


def test_simulation_doc_examples_run_and_print_what_they_claim(repo_root, tmp_path, monkeypatch, capsys):
    text = (repo_root / "docs/simulation.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for number, block in enumerate(blocks, start=1):
        capsys.readouterr()
        exec(compile(block, f"docs/simulation.md python block {number}", "exec"), namespace)
        printed = capsys.readouterr().out.splitlines()
        # a print(...) line's output is its trailing "  # ..." comment, else the "# ..." line after it
        lines = block.splitlines() + [""]
        claimed = []
        for line, following in zip(lines, lines[1:]):
            if not line.startswith("print("):
                continue
            if "  # " in line:
                claimed.append(line.split("  # ", 1)[1])
            elif following.startswith("# "):
                claimed.append(following[2:])
        for claim in claimed:
            assert claim.strip() in "\n".join(printed), (number, claim, printed)
