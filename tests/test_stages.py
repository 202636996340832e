"""scripts/stages.py, the runner of the demo and the quality benchmarks: stages run as `python -m lens_hf.scripts.X`
(so they work from an installed wheel) and a secret among a stage's arguments is never printed or recorded."""

import json

from lens_hf.scripts.stages import STAGE_RECORD, finished_with, run_stage, shown, stage_environment

TOKEN = "hf_stageSECRET0123456789"


def test_secret_values_are_hidden_in_what_is_shown():
    words = ["python", "-m", "lens_hf.scripts.finetune", "--hub_token", TOKEN, "--api_key", "abc", "--max_steps", "3",
             "--hub_model_id", "org/x", "--note", f"token={TOKEN}"]
    assert shown(words) == ["python", "-m", "lens_hf.scripts.finetune", "--hub_token", "***", "--api_key", "***",
                            "--max_steps", "3", "--hub_model_id", "org/x", "--note", "***"]
    # the `--flag=value` spelling, and a secret-named flag given no value (the next word is a flag, not a secret)
    assert shown(["--hub_token=abc", "--password=", f"--note={TOKEN}", "--max_steps=3", "--use_auth_token",
                  "--max_steps", "3"]) == ["--hub_token=***", "--password=***", "--note=***", "--max_steps=3",
                                           "--use_auth_token", "--max_steps", "3"]


def test_a_stage_runs_the_installed_module_and_records_no_secret(tmp_path, capsys):
    folder = tmp_path / "run"
    run_stage("help", "simulate.py", ["--preset", "model_ii", "--num_images", "3", "--image_size", "16",
                                      "--disable_progress_bar", "true", "--output_dir", folder,
                                      "--preset_overrides", "noise=false"], stage_environment(1))
    printed = capsys.readouterr().out
    assert "$ python -m lens_hf.scripts.simulate --preset model_ii" in printed
    record = json.loads((folder / STAGE_RECORD).read_text())["command"]
    assert record[:3] == ["python", "-m", "lens_hf.scripts.simulate"]
    (folder / "metrics.json").write_text("{}")
    secret = ["python", "-m", "lens_hf.scripts.simulate", "--hub_token", TOKEN, "--output_dir", str(folder)]
    (folder / STAGE_RECORD).write_text(json.dumps({"command": shown(secret)}))
    assert TOKEN not in (folder / STAGE_RECORD).read_text()
    assert finished_with(folder, secret)  # the hidden record still identifies the same command
