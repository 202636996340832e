"""LensMAE configuration: a ViTMAE variant sized for small, few-band astronomical images.

Self-contained (transformers and huggingface_hub only) so a Hub copy loads with
`trust_remote_code=True` where lens_hf is not installed.
"""

import dataclasses
import math
import difflib
from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

# Keys transformers itself may hand to a config's __init__ (from config.json or from_pretrained kwargs).
# Anything else that is not a field is a typo or a foreign config, and is rejected with a clear error.
_TRANSFORMERS_KWARGS = {
    "num_labels",
    "name_or_path",
    "_name_or_path",
    "output_attentions",
    "attn_implementation",
    "_attn_implementation",
    "_attn_implementation_internal",
    "experts_implementation",
    "_experts_implementation_internal",
    "torch_dtype",
    "_commit_hash",
    "per_layer_config",
    "auto_map",
    "model_type",
    "custom_pipelines",
    "tie_word_embeddings",
    "use_cache",
}


def valid_patch_sizes(image_size: int) -> list[int]:
    """Patch sizes that tile `image_size` exactly (1 and the image itself excluded)."""
    return [p for p in range(2, image_size) if image_size % p == 0]


@strict(accept_kwargs=True)
class LensMAEConfig(PreTrainedConfig):
    r"""
    Configuration of the LensMAE models: a masked-autoencoder vision transformer (He et al. 2022) for strong-lensing
    images, with heads for classification/regression and super-resolution.

    Args:
        hidden_size (`int`, *optional*, defaults to 192):
            Width of the encoder.
        num_hidden_layers (`int`, *optional*, defaults to 6):
            Number of encoder blocks.
        num_attention_heads (`int`, *optional*, defaults to 3):
            Attention heads per encoder block; must divide `hidden_size`.
        intermediate_size (`int`, *optional*, defaults to 768):
            Width of the encoder MLPs.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the MLPs.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout after attention and MLP outputs.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout on attention weights.
        drop_path_rate (`float`, *optional*, defaults to 0.0):
            Stochastic depth, rising linearly to this rate over the encoder blocks (0.1 is the finetune recipe).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Std of the truncated-normal init of linear layers.
        layer_norm_eps (`float`, *optional*, defaults to 1e-6):
            LayerNorm epsilon.
        image_size (`int`, *optional*, defaults to 64):
            Side of the (square) input image in pixels. 150 works with patch 5, 6, 10 or 15.
        patch_size (`int`, *optional*, defaults to 8):
            Side of a patch; must divide `image_size`.
        num_channels (`int`, *optional*, defaults to 1):
            Bands of the input image.
        qkv_bias (`bool`, *optional*, defaults to `True`):
            Bias on the query/key/value projection.
        decoder_hidden_size (`int`, *optional*, defaults to 128):
            Width of the MAE decoder.
        decoder_num_hidden_layers (`int`, *optional*, defaults to 2):
            Blocks of the MAE decoder.
        decoder_num_attention_heads (`int`, *optional*, defaults to 4):
            Attention heads of the MAE decoder.
        decoder_intermediate_size (`int`, *optional*, defaults to 512):
            MLP width of the MAE decoder.
        mask_ratio (`float`, *optional*, defaults to 0.75):
            Fraction of patches masked during pretraining.
        norm_pix_loss (`bool`, *optional*, defaults to `False`):
            Reconstruct per-patch normalised pixels (MAE paper, Table 3).
        reconstruction_loss (`str`, *optional*, defaults to `"mse"`):
            `"mse"`, `"l1"` or `"smooth_l1"`: the pixel loss on masked patches. L1 resists the "predict dark
            everywhere" collapse that MSE shows on near-empty lensing patches.
        classifier_mode (`str`, *optional*, defaults to `"finetune"`):
            `"finetune"`: pooled tokens, LayerNorm, Linear, whole network trained. `"linear_probe"`: the encoder is
            frozen and the head is BatchNorm1d without affine parameters then Linear (MAE linear-probe protocol).
        classifier_head_norm (`str`, *optional*, defaults to `"layernorm"`):
            Normalisation of the pooled features in `"finetune"` mode: `"layernorm"` (MAE) or `"batchnorm"`, which
            standardises each feature across the batch; on near-identical lensing images (same lens, the class in
            a sub-pixel change of the ring) it removes the image-independent part that otherwise swamps the signal.
        classifier_pooling (`str`, *optional*, defaults to `"mean"`):
            `"mean"` over patch tokens or the `"cls"` token.
        classifier_dropout (`float`, *optional*, defaults to 0.0):
            Dropout before the classifier Linear.
        regression_target_mean (`float`, *optional*, defaults to 0.0):
            Regression only: the head predicts standardised targets and outputs `raw * std + mean`, so logits are in
            physical units (e.g. log10 m/eV around -23) while the loss stays well conditioned.
        regression_target_std (`float`, *optional*, defaults to 1.0):
            Regression only: the scale of the targets (see `regression_target_mean`).
        sr_scale (`int`, *optional*, defaults to 2):
            Super-resolution factor: a `image_size` input gives a `image_size * sr_scale` output.
        sr_hidden_channels (`int`, *optional*, defaults to 64):
            Channels of the sub-pixel convolution head.
        sr_residual (`bool`, *optional*, defaults to `True`):
            Predict a correction added to the bicubic upsampling of the input, rather than the image itself.
        sr_loss (`str`, *optional*, defaults to `"l1"`):
            `"l1"` or `"mse"` against the high-resolution `labels`.
        check_finite_inputs (`bool`, *optional*, defaults to `True`):
            Raise on NaN/Inf pixels instead of propagating them into the loss.
        lens_task (`str`, *optional*):
            The lens-hf task the model was trained for (`"pretraining"`, `"classification"`, `"regression"`,
            `"lens_finding"`, `"super_resolution"`); set by the lens-hf scripts, read back by evaluation and the
            model card (a two-class classifier and a lens finder share a head).
        lens_contrastive (`dict`, *optional*):
            For an encoder pretrained contrastively (SimCLR): its NT-Xent temperature, projection size and view
            augmentation, recorded so an evaluation draws the same views. Set by `pretrain_contrastive.py`.
        decision_threshold (`float`, *optional*):
            Lens finding: the P(lens) at and above which an image is called a lens, chosen by the lens-hf training
            run as the F1 maximum on the validation split; `scripts/evaluate.py` scores other splits at it.

    Example:

    ```python
    >>> from lens_hf.models.lens_mae import LensMAEConfig, LensMAEForPreTraining
    >>> config = LensMAEConfig(image_size=150, patch_size=10)
    >>> model = LensMAEForPreTraining(config)
    ```"""

    model_type = "lens_mae"

    hidden_size: int = 192
    num_hidden_layers: int = 6
    num_attention_heads: int = 3
    intermediate_size: int = 768
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    drop_path_rate: float | int = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6
    image_size: int = 64
    patch_size: int = 8
    num_channels: int = 1
    qkv_bias: bool = True
    decoder_hidden_size: int = 128
    decoder_num_hidden_layers: int = 2
    decoder_num_attention_heads: int = 4
    decoder_intermediate_size: int = 512
    mask_ratio: float | int = 0.75
    norm_pix_loss: bool = False
    reconstruction_loss: Literal["mse", "l1", "smooth_l1"] = "mse"
    classifier_mode: Literal["finetune", "linear_probe"] = "finetune"
    classifier_head_norm: Literal["layernorm", "batchnorm"] = "layernorm"
    classifier_pooling: Literal["mean", "cls"] = "mean"
    classifier_dropout: float | int = 0.0
    regression_target_mean: float | int = 0.0
    regression_target_std: float | int = 1.0
    sr_scale: int = 2
    sr_hidden_channels: int = 64
    sr_residual: bool = True
    sr_loss: Literal["l1", "mse"] = "l1"
    check_finite_inputs: bool = True
    lens_task: str | None = None
    lens_contrastive: dict | None = None
    decision_threshold: float | None = None

    def __post_init__(self, **kwargs):
        self._reject_unknown_kwargs(kwargs)
        super().__post_init__(**kwargs)
        self._check_geometry()

    def _reject_unknown_kwargs(self, kwargs: dict) -> None:
        fields = {f.name for f in dataclasses.fields(self) if not f.name.startswith("_")}
        generation_keys = _generation_parameter_names()
        for key in kwargs:
            if key in _TRANSFORMERS_KWARGS or key in generation_keys:
                continue
            close = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.75)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise ValueError(
                f"LensMAEConfig got an unknown field `{key}`.{hint} Valid fields: {', '.join(sorted(fields))}."
            )

    def _check_geometry(self) -> None:
        def positive(name):
            if getattr(self, name) < 1:
                raise ValueError(f"LensMAEConfig.{name} must be >= 1, got {getattr(self, name)}.")

        for name in ("image_size", "patch_size", "num_channels", "hidden_size", "num_hidden_layers", "sr_scale",
                     "intermediate_size", "decoder_hidden_size", "decoder_num_hidden_layers",
                     "decoder_intermediate_size", "sr_hidden_channels"):
            positive(name)
        for name, low in (("layer_norm_eps", "positive"), ("initializer_range", "non-negative"),
                          ("regression_target_mean", None), ("regression_target_std", "positive")):
            value = getattr(self, name)
            if not math.isfinite(value) or (low == "positive" and value <= 0) or (low == "non-negative" and value < 0):
                raise ValueError(f"LensMAEConfig.{name} must be a finite{' ' + low if low else ''} number, got {value}.")
        from transformers.activations import ACT2FN

        if self.hidden_act not in ACT2FN:
            raise ValueError(f"LensMAEConfig.hidden_act {self.hidden_act!r} is not an activation transformers knows "
                             f"(e.g. gelu, relu, silu).")
        if self.image_size % self.patch_size != 0 or self.patch_size >= self.image_size:
            raise ValueError(
                f"LensMAEConfig: patch_size={self.patch_size} does not tile image_size={self.image_size}. "
                f"Valid patch sizes for {self.image_size} px: {valid_patch_sizes(self.image_size)}."
            )
        for width, heads, prefix in (
            (self.hidden_size, self.num_attention_heads, ""),
            (self.decoder_hidden_size, self.decoder_num_attention_heads, "decoder_"),
        ):
            if heads < 1 or width % heads != 0:
                raise ValueError(
                    f"LensMAEConfig: {prefix}hidden_size={width} must be divisible by "
                    f"{prefix}num_attention_heads={heads}."
                )
        if self.decision_threshold is not None and not 0.0 <= self.decision_threshold <= 1.0:
            raise ValueError(f"LensMAEConfig.decision_threshold is a probability in [0, 1], got "
                             f"{self.decision_threshold}.")
        if self.regression_target_std <= 0:
            raise ValueError(f"LensMAEConfig.regression_target_std must be > 0, got {self.regression_target_std}.")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"LensMAEConfig.mask_ratio must be in [0, 1), got {self.mask_ratio}.")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate", "classifier_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"LensMAEConfig.{name} must be in [0, 1), got {getattr(self, name)}.")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def _generation_parameter_names() -> set:
    try:
        from transformers import GenerationConfig

        return set(GenerationConfig._get_default_generation_params())
    except Exception:  # older/newer transformers without the private helper
        return set()


__all__ = ["LensMAEConfig", "valid_patch_sizes"]
