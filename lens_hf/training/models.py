"""Building the model a script trains: from a checkpoint (folder or Hub id) or fresh from a size preset; and
loading a saved model so that a broken one is an error, never a model with random or non-finite weights."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PretrainedConfig

from ..models.lens_mae import LensMAEConfig
from .arguments import parse_overrides
from .recipes import MODEL_PRESETS


def fresh_config(model_args, image_size: int, num_channels: int, **fields) -> LensMAEConfig:
    """A new LensMAEConfig: preset size, then the data geometry, then `fields`, then --config_overrides."""
    if model_args.model_preset not in MODEL_PRESETS:
        raise ValueError(f"model_preset must be one of {sorted(MODEL_PRESETS)}, got {model_args.model_preset!r}")
    values = {**MODEL_PRESETS[model_args.model_preset], "image_size": image_size, "num_channels": num_channels}
    values.update({k: v for k, v in fields.items() if v is not None})
    values.update(config_overrides(LensMAEConfig, model_args.config_overrides))
    return _strict(LensMAEConfig, values)


class ModelLoadError(ValueError):
    """A saved model that cannot be used as it is: the message names the folder and what is wrong."""


def _known_class(name: str):
    """The lens_hf or transformers model class called `name` (None for another library's)."""
    import transformers

    from ..models.lens_mae import modeling_lens_mae

    return getattr(modeling_lens_mae, name, None) or getattr(transformers, name, None)


def check_model_reference(name_or_path) -> None:
    """A `--model_name_or_path` is an existing local folder or a Hub id (`name` or `org/name`); a path that does
    not exist is said to be one, instead of the Hub client's "Repo id must be in the form ..."."""
    text = str(name_or_path or "")
    if not text:
        raise ModelLoadError("--model_name_or_path is empty: give a run folder or a Hub id (org/name)")
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"--model_name_or_path {text} is a file; give the run folder that holds config.json")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"--model_name_or_path {text} has no config.json: it is not a saved model folder")
        return
    looks_local = text.startswith(("/", ".", "~")) or text.count("/") > 1 or "\\" in text
    if looks_local:
        raise ModelLoadError(f"--model_name_or_path {text}: no such folder (and not a Hub id, which is name or org/name)")


def check_finite(model, where: str) -> None:
    """Every parameter and buffer of `model` is finite (a NaN weight would give NaN predictions silently)."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelLoadError(f"{where}: weight {name} holds NaN or Inf values; the model cannot be used")


def load_checked(model_class, path, *, new_head: bool = False, **kwargs):
    """`model_class.from_pretrained(path, **kwargs)` that refuses a broken model: a config of another model type,
    a weights file that cannot be read, weights that are missing (with `new_head`, only weights outside the base
    model may be missing: the task head a finetune adds to a pretrained encoder), and non-finite weights.
    transformers would load all of these with only a load report, the missing tensors left random."""
    where = str(path)
    check_model_reference(path)
    try:
        config_dict, _ = PretrainedConfig.get_config_dict(path, trust_remote_code=kwargs.get("trust_remote_code", False))
    except OSError:
        raise
    except Exception as error:  # a config.json that is not JSON, ...
        raise ModelLoadError(f"{where}/config.json cannot be read ({type(error).__name__}: {error})") from None
    found = config_dict.get("model_type")
    for needs in (model_class, *map(_known_class, config_dict.get("architectures") or [])):
        expected = getattr(getattr(needs, "config_class", None), "model_type", None)  # None for Auto classes
        if expected and found != expected and "config" not in kwargs:
            raise ModelLoadError(f"{where}/config.json has model_type {found!r}; {needs.__name__} needs {expected!r}")
    if Path(path).is_dir() and not any(Path(path).glob("model*.safetensors")) and not any(Path(path).glob("*.bin")):
        raise ModelLoadError(f"{where} has no model.safetensors: the weights are missing")
    try:
        model, info = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
    except (OSError, ModelLoadError):
        raise
    except Exception as error:  # safetensors' header errors, size mismatches, ...
        raise ModelLoadError(f"{where}: the weights cannot be loaded ({type(error).__name__}: "
                             f"{str(error).splitlines()[0][:300]})") from None
    missing = list(info.get("missing_keys", []))
    if new_head and hasattr(model, type(model).base_model_prefix):  # a head on a base model: only the head is new
        prefix = type(model).base_model_prefix + "."
        missing = [k for k in missing if k.startswith(prefix)]
    if missing:
        raise ModelLoadError(f"{where}: {len(missing)} weight(s) are missing from the saved files, e.g. "
                             f"{sorted(missing)[:3]}; a partial or foreign model.safetensors would leave them random")
    if info.get("mismatched_keys"):
        raise ModelLoadError(f"{where}: weights of the wrong shape: {list(info['mismatched_keys'])[:3]}")
    check_finite(model, where)
    return model


def pretrained(model_class, model_args, **config_fields):
    """`model_class.from_pretrained(model_name_or_path)` with config fields (and --config_overrides) applied; the
    encoder must load completely and finitely (`load_checked`), the task head may be new."""
    fields = {k: v for k, v in config_fields.items() if v is not None}
    fields.update(config_overrides(model_class.config_class, model_args.config_overrides))
    return load_checked(model_class, model_args.model_name_or_path, new_head=True,
                        trust_remote_code=model_args.trust_remote_code, **fields)


def config_overrides(config_class, text: str | None) -> dict:
    """`--config_overrides` for `config_class`: a whole number given for a float field (`layer_norm_eps=0`) is that
    float, as the config's strict type check needs."""
    values = parse_overrides(text, "--config_overrides")
    defaults = config_class() if values else None
    for key, value in values.items():
        if isinstance(getattr(defaults, key, None), float) and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
    return values


def _strict(config_class, values: dict):
    """`config_class(**values)`, a strict-dataclass type error (huggingface_hub's) as a ValueError naming the field."""
    from huggingface_hub.errors import StrictDataclassError

    try:
        return config_class(**values)
    except StrictDataclassError as error:
        raise ValueError(f"{config_class.__name__}: {' '.join(str(error).split())}") from None
