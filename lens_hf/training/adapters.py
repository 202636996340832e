"""LoRA adapters through peft: wrap a pretrained LensMAE classifier, save the run folder as an adapter (plus the
head's config), load it back, and merge it into a plain model.

An adapter run folder holds `adapter_config.json` + `adapter_model.safetensors` (the low-rank matrices and the
head, trained via `modules_to_save`; `base_model_name_or_path` names the pretrained encoder), `config.json` (the
classifier config with its task, `lens_task`), the processor, metrics and card. `--merge_adapter` adds
`merged/`: the adapter folded into the weights, a model plain `from_pretrained` loads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .models import load_checked

ADAPTER_CONFIG = "adapter_config.json"
MERGED_FOLDER = "merged"
# What LensMAE calls the linears of its transformer blocks (transformers 5 names such as `query`/`value` match
# nothing here): the fused attention input `qkv`, its output `proj`, and the MLP's `fc1`/`fc2`.
LENS_MAE_LORA_TARGETS = ("qkv", "proj", "fc1", "fc2")
# The classifier head trains in full and is saved with the adapter.
LENS_MAE_HEAD_MODULES = ("head_norm", "classifier")


def wrap_with_lora(model, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                   target_modules=LENS_MAE_LORA_TARGETS, use_rslora: bool = False,
                   modules_to_save=LENS_MAE_HEAD_MODULES):
    """`model` wrapped by peft's LoRA: adapters on every module whose name ends in one of `target_modules`,
    the modules in `modules_to_save` trained in full, everything else frozen. A target that matches no module is
    an error (a misspelled or transformers-4 name would otherwise train nothing there)."""
    from peft import LoraConfig, get_peft_model

    targets = [t.strip() for t in (target_modules.split(",") if isinstance(target_modules, str) else target_modules)
               if t.strip()]
    if not targets:
        raise ValueError("LoRA needs at least one target module")
    if rank < 1:
        raise ValueError(f"the LoRA rank must be >= 1, got {rank}")
    names = [name for name, _ in model.named_modules()]
    unmatched = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if unmatched:
        linears = sorted({n.split(".")[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
        raise ValueError(f"LoRA target modules {unmatched} match no module of {type(model).__name__}; its linear "
                         f"layers are named {linears}")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                        use_rslora=use_rslora, modules_to_save=list(modules_to_save), bias="none")
    return get_peft_model(model, config)


def is_adapter_folder(path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_settings(path) -> dict:
    """The adapter's peft config (rank, alpha, targets, base model) as saved in `adapter_config.json`."""
    file = Path(path) / ADAPTER_CONFIG
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{file} is not valid JSON ({error})") from None


def load_adapter_model(path, model_class, trust_remote_code: bool = False, base_model: str | None = None):
    """An adapter run folder as a peft model: the base (`base_model_name_or_path` of its adapter config, or
    `base_model`) loaded with the folder's own classifier config, then the adapter and head on top."""
    from peft import PeftModel
    from transformers import AutoConfig

    path = Path(path)
    base = base_model or adapter_settings(path).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{path / ADAPTER_CONFIG} names no base model (base_model_name_or_path)")
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} has an adapter but no config.json: the classifier's config (labels, head, task) "
                         "is saved beside the adapter by finetune.py --mode lora")
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    model = load_checked(  # the base must load completely; its head comes from the adapter folder
        model_class, base, new_head=True, config=config, trust_remote_code=trust_remote_code)
    return PeftModel.from_pretrained(model, str(path))


def is_adapter_model(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def save_adapter_folder(model, output_dir) -> None:
    """The adapter files, the classifier config (with its task) and, for a model with Hub code, that code (the
    config's `auto_map` names it) in `output_dir`."""
    from transformers.dynamic_module_utils import custom_object_save

    base = model.get_base_model()
    model.save_pretrained(output_dir)
    if getattr(base, "_auto_class", None) is not None:
        custom_object_save(base, output_dir, config=base.config)
    base.config.save_pretrained(output_dir)


def merge_adapter_folder(run_folder, model_class, trust_remote_code: bool = False) -> Path:
    """Fold the adapter of `run_folder` into the base weights and save the result, with the processor, as
    `run_folder/merged/`: a plain model that `from_pretrained` loads. An existing merged model is never
    replaced."""
    run_folder = Path(run_folder)
    target = run_folder / MERGED_FOLDER
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} already holds a merged model; remove it to merge again")
    merged = load_adapter_model(run_folder, model_class, trust_remote_code).merge_and_unload()
    merged.save_pretrained(target)
    for name in ("preprocessor_config.json", "image_processing_lens.py"):
        if (run_folder / name).exists():
            shutil.copy2(run_folder / name, target / name)
    return target
