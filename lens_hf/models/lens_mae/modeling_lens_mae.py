"""LensMAE: a masked-autoencoder ViT for strong-lensing images, with classification and super-resolution heads.

The architecture follows ViTMAE (He et al. 2022, facebookresearch/mae) but every module is defined here, so the
saved key layout is ours and stable: transformers 5 renames ViTMAE's modules on save/load through a conversion
mapping keyed by class name, and a head that does not share those names silently loads random encoder weights.
Self-contained (torch, transformers and the sibling configuration only) so a Hub copy runs without lens_hf.
Every forward returns its `ModelOutput`; `return_dict=False` (as a keyword) or `config.return_dict=False` gives
`output.to_tuple()` instead (fields that are None left out), through transformers' `can_return_tuple`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import ImageClassifierOutput, ImageSuperResolutionOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_lens_mae import LensMAEConfig


@dataclass
class LensMAEModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, 1 + kept_patches, hidden_size)`):
            Encoder output, CLS token first. Without masking `kept_patches` is every patch, in raster order.
        mask (`torch.FloatTensor` of shape `(batch_size, num_patches)`):
            1 where a patch was masked out, 0 where it was kept.
        ids_restore (`torch.LongTensor` of shape `(batch_size, num_patches)`):
            Permutation that puts the shuffled tokens back in raster order.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            Input of every block and the final output, when `output_hidden_states=True`.
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            Attention weights of every block, when `output_attentions=True` (eager attention only).
    """

    last_hidden_state: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_restore: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class LensMAEForPreTrainingOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`):
            Reconstruction loss averaged over masked patches.
        logits (`torch.FloatTensor` of shape `(batch_size, num_patches, patch_size**2 * num_channels)`):
            Predicted pixels of every patch (in `norm_pix_loss` units when that is set).
        mask (`torch.FloatTensor` of shape `(batch_size, num_patches)`):
            1 where a patch was masked out.
        ids_restore (`torch.LongTensor` of shape `(batch_size, num_patches)`):
            Permutation that restores raster order.
        hidden_states, attentions: as in [`LensMAEModelOutput`] (encoder only).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_restore: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def sincos_position_embedding(grid_size: int, dim: int, with_cls: bool = True) -> torch.Tensor:
    """Fixed 2-D sine-cosine embedding of a square patch grid, (1 + grid², dim), zero row for the CLS token."""
    if dim % 4 != 0:
        raise ValueError(f"Position-embedding width must be divisible by 4, got {dim}.")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(
        torch.arange(grid_size, dtype=torch.float64), torch.arange(grid_size, dtype=torch.float64), indexing="ij"
    )
    by_col = cols.flatten()[:, None] * omega[None]
    by_row = rows.flatten()[:, None] * omega[None]
    table = torch.cat([by_col.sin(), by_col.cos(), by_row.sin(), by_row.cos()], dim=1)
    if with_cls:
        table = torch.cat([torch.zeros(1, dim, dtype=torch.float64), table], dim=0)
    return table.float().unsqueeze(0)


def patchify(pixel_values: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, num_patches, patch_size**2 * C), patches in raster order, channels last in a patch."""
    batch, channels, height, width = pixel_values.shape
    grid_h, grid_w = height // patch_size, width // patch_size
    x = pixel_values.reshape(batch, channels, grid_h, patch_size, grid_w, patch_size)
    x = x.permute(0, 2, 4, 3, 5, 1)
    return x.reshape(batch, grid_h * grid_w, patch_size * patch_size * channels)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """Inverse of [`patchify`] for a square grid."""
    batch, num_patches, _ = patches.shape
    grid = int(round(math.sqrt(num_patches)))
    if grid * grid != num_patches:
        raise ValueError(f"unpatchify needs a square number of patches, got {num_patches}.")
    x = patches.reshape(batch, grid, grid, patch_size, patch_size, channels)
    x = x.permute(0, 5, 1, 3, 2, 4)
    return x.reshape(batch, channels, grid * patch_size, grid * patch_size)


LENS_MAE_AUTO_CLASSES = {
    "AutoModel": "LensMAEModel",
    "AutoModelForPreTraining": "LensMAEForPreTraining",
    "AutoModelForImageClassification": "LensMAEForImageClassification",
    "AutoModelForImageToImage": "LensMAEForSuperResolution",
}


class LensMAEEmbeddings(nn.Module):
    """Patch projection, fixed sine-cosine positions, optional random masking, CLS token."""

    def __init__(self, config: LensMAEConfig):
        super().__init__()
        self.config = config
        self.patch_size = config.patch_size
        self.num_patches = config.num_patches
        self.projection = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embeddings = nn.Parameter(
            torch.zeros(1, self.num_patches + 1, config.hidden_size), requires_grad=False
        )

    def check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        config = self.config
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must be (batch, channels, height, width), got shape {tuple(pixel_values.shape)}."
            )
        if pixel_values.shape[1] != config.num_channels:
            raise ValueError(
                f"pixel_values has {pixel_values.shape[1]} channel(s) but the model expects "
                f"num_channels={config.num_channels} (shape {tuple(pixel_values.shape)})."
            )
        if pixel_values.shape[2] != config.image_size or pixel_values.shape[3] != config.image_size:
            raise ValueError(
                f"pixel_values is {pixel_values.shape[2]}x{pixel_values.shape[3]} px but the model expects "
                f"{config.image_size}x{config.image_size}; resize with LensImageProcessor(size={config.image_size})."
            )
        if config.check_finite_inputs and not torch.isfinite(pixel_values).all():
            bad = (~torch.isfinite(pixel_values)).flatten(1).any(1).nonzero().flatten().tolist()
            raise ValueError(f"pixel_values contains NaN or Inf pixels (batch indices {bad[:10]}).")

    def forward(
        self, pixel_values: torch.Tensor, mask_ratio: float = 0.0, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.check_pixel_values(pixel_values)
        tokens = self.projection(pixel_values.to(self.projection.weight.dtype)).flatten(2).transpose(1, 2)
        tokens = tokens + self.position_embeddings[:, 1:, :]
        tokens, mask, ids_restore = self.random_masking(tokens, mask_ratio, noise)
        cls = (self.cls_token + self.position_embeddings[:, :1, :]).expand(tokens.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1), mask, ids_restore

    def random_masking(
        self, tokens: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep the patches with the smallest `noise`; `noise` fixes the mask, for reproducible evaluation."""
        batch, length, dim = tokens.shape
        if noise is None and mask_ratio == 0.0:
            ids_restore = torch.arange(length, device=tokens.device).expand(batch, -1)
            return tokens, tokens.new_zeros(batch, length), ids_restore
        if noise is None:
            noise = torch.rand(batch, length, device=tokens.device)
        elif noise.shape != (batch, length):
            raise ValueError(f"noise must have shape (batch, num_patches)=({batch}, {length}), got {tuple(noise.shape)}.")
        len_keep = int(length * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise.to(tokens.device), dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        kept = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))
        mask = tokens.new_ones(batch, length)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return kept, mask, ids_restore


def eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Attention as two matmuls and a softmax, with as few full-size (length x length) copies as possible: the
    scale goes on the query, the softmax runs in the input dtype (its CPU and CUDA kernels accumulate in float32 for
    bf16/fp16 anyway) and dropout only when it drops something."""
    weights = torch.matmul(query * scaling, key.transpose(-1, -2))
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1)
    if dropout > 0.0 and module.training:
        weights = F.dropout(weights, p=dropout, training=True)
    return torch.matmul(weights, value).transpose(1, 2), weights


def prefers_math_attention(query: torch.Tensor) -> bool:
    """True where the matmul-softmax path beats torch's SDPA kernel: training in bf16 on a CPU. Measured (one
    thread, default LensMAE, 64 px / patch 4, batch 32): a bf16 train step takes 357 ms with it against 541 ms
    through SDPA's CPU flash kernel, whose backward dominates; fp32 and inference stay faster through SDPA."""
    return query.device.type == "cpu" and query.dtype == torch.bfloat16 and torch.is_grad_enabled() and query.requires_grad


class LensMAEAttention(nn.Module):
    """Multi-head self-attention with one fused qkv projection (fewer kernel launches than three)."""

    def __init__(self, config: LensMAEConfig, hidden_size: int, num_heads: int):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.dropout = config.attention_probs_dropout_prob
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor, output_attentions: bool = False):
        batch, length, width = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        implementation = self.config._attn_implementation or "sdpa"
        if output_attentions or (implementation == "sdpa" and prefers_math_attention(query)):
            implementation = "eager"
        attention = eager_attention
        if implementation != "eager":
            attention = ALL_ATTENTION_FUNCTIONS[implementation]
        context, weights = attention(
            self,
            query,
            key,
            value,
            None,
            scaling=self.scaling,
            dropout=self.dropout if self.training else 0.0,
        )
        return self.proj(context.reshape(batch, length, width)), weights


class LensMAEDropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class LensMAELayer(GradientCheckpointingLayer):
    """Pre-norm transformer block."""

    def __init__(self, config: LensMAEConfig, hidden_size: int, num_heads: int, mlp_size: int, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.attention = LensMAEAttention(config, hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(hidden_size, mlp_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(mlp_size, hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.drop_path = LensMAEDropPath(drop_path)

    def forward(self, hidden_states: torch.Tensor, output_attentions: bool = False):
        attended, weights = self.attention(self.norm1(hidden_states), output_attentions=output_attentions)
        hidden_states = hidden_states + self.drop_path(self.dropout(attended))
        mlp = self.fc2(self.act(self.fc1(self.norm2(hidden_states))))
        hidden_states = hidden_states + self.drop_path(self.dropout(mlp))
        return hidden_states, weights


class LensMAEPreTrainedModel(PreTrainedModel):
    config_class = LensMAEConfig
    config: LensMAEConfig
    base_model_prefix = "vit"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["LensMAEEmbeddings", "LensMAELayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Like `PreTrainedModel.save_pretrained`, but a folder with remote code maps *every* LensMAE Auto class,
        so e.g. `AutoModel` (features) loads from a pretraining or classifier folder without lens_hf."""
        if self._auto_class is not None:
            module = type(self).__module__.split(".")[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            for auto_class, class_name in LENS_MAE_AUTO_CLASSES.items():
                auto_map.setdefault(auto_class, f"{module}.{class_name}")
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """MAE initialisation: xavier-uniform linears (patch projection included), fixed sine-cosine positions."""
        std = self.config.initializer_range
        head_std = getattr(module, "_lens_mae_init_std", None)
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            if head_std is not None:
                # Heads start small (MAE: 2e-5 for finetune, 0.01 for the probe; 0 for the SR correction) so the
                # pretrained features / the bicubic baseline dominate the first steps.
                init.trunc_normal_(module.weight, std=head_std) if head_std > 0 else init.zeros_(module.weight)
            else:
                init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm1d):
            if module.affine:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            if module.running_mean is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, LensMAEEmbeddings):
            grid = self.config.image_size // self.config.patch_size
            init.copy_(module.position_embeddings, sincos_position_embedding(grid, module.position_embeddings.shape[-1]))
            init.normal_(module.cls_token, std=std)
        elif isinstance(module, LensMAEDecoder):
            grid = self.config.image_size // self.config.patch_size
            init.copy_(module.position_embeddings, sincos_position_embedding(grid, module.position_embeddings.shape[-1]))
            init.normal_(module.mask_token, std=std)


class LensMAEModel(LensMAEPreTrainedModel):
    """The LensMAE encoder. Without `mask_ratio`/`noise` it sees every patch: the feature extractor of the heads."""

    _keys_to_ignore_on_load_unexpected = [r"decoder\."]  # loading a pretraining checkpoint drops its decoder

    def __init__(self, config: LensMAEConfig):
        super().__init__(config)
        self.embeddings = LensMAEEmbeddings(config)
        rates = torch.linspace(0, config.drop_path_rate, config.num_hidden_layers).tolist()
        self.layers = nn.ModuleList(
            LensMAELayer(config, config.hidden_size, config.num_attention_heads, config.intermediate_size, rate)
            for rate in rates
        )
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.projection

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> LensMAEModelOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, image_size, image_size)`):
                Images, normalised by [`LensImageProcessor`].
            noise (`torch.FloatTensor` of shape `(batch_size, num_patches)`, *optional*):
                Fixes which patches are masked (the smallest `1 - mask_ratio` fraction are kept).
            mask_ratio (`float`, *optional*):
                Fraction of patches to drop. Defaults to 0 (features of the whole image), or to
                `config.mask_ratio` when `noise` is given.
        """
        if pixel_values is None:
            raise ValueError("LensMAEModel needs pixel_values.")
        output_hidden_states = output_hidden_states or self.config.output_hidden_states
        output_attentions = bool(output_attentions or self.config.output_attentions)
        if mask_ratio is None:
            mask_ratio = self.config.mask_ratio if noise is not None else 0.0
        if not 0.0 <= mask_ratio < 1.0:  # NaN too: every patch hidden, or a NaN count, is no forward pass
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        hidden_states, mask, ids_restore = self.embeddings(pixel_values, mask_ratio=mask_ratio, noise=noise)
        all_hidden, all_attentions = [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden_states)
            hidden_states, weights = layer(hidden_states, output_attentions)
            if output_attentions:
                all_attentions.append(weights)
        hidden_states = self.layernorm(hidden_states)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        output = LensMAEModelOutput(
            last_hidden_state=hidden_states,
            mask=mask,
            ids_restore=ids_restore,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )
        return output


class LensMAEDecoder(nn.Module):
    """The light MAE decoder: re-inserts mask tokens and predicts every patch's pixels."""

    def __init__(self, config: LensMAEConfig):
        super().__init__()
        width = config.decoder_hidden_size
        self.embed = nn.Linear(config.hidden_size, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position_embeddings = nn.Parameter(torch.zeros(1, config.num_patches + 1, width), requires_grad=False)
        self.layers = nn.ModuleList(
            LensMAELayer(config, width, config.decoder_num_attention_heads, config.decoder_intermediate_size, 0.0)
            for _ in range(config.decoder_num_hidden_layers)
        )
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.pred = nn.Linear(width, config.patch_size**2 * config.num_channels)

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.embed(latent)
        batch, kept, width = x.shape
        num_masked = ids_restore.shape[1] + 1 - kept
        patches = torch.cat([x[:, 1:, :], self.mask_token.expand(batch, num_masked, -1)], dim=1)
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, width))
        x = torch.cat([x[:, :1, :], patches], dim=1) + self.position_embeddings
        for layer in self.layers:
            x, _ = layer(x)
        return self.pred(self.norm(x))[:, 1:, :]


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-patch pixel loss, (B, N, P) -> (B, N)."""
    if kind == "mse":
        return (prediction - target).pow(2).mean(dim=-1)
    if kind == "l1":
        return (prediction - target).abs().mean(dim=-1)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(prediction, target, reduction="none").mean(dim=-1)
    raise ValueError(f"Unknown reconstruction_loss {kind!r}; expected 'mse', 'l1' or 'smooth_l1'.")


class LensMAEForPreTraining(LensMAEPreTrainedModel):
    """LensMAE encoder + decoder trained to reconstruct masked patches."""

    def __init__(self, config: LensMAEConfig):
        super().__init__(config)
        self.vit = LensMAEModel(config)
        self.decoder = LensMAEDecoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.vit.embeddings.projection

    def patchify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return patchify(pixel_values, self.config.patch_size)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        return unpatchify(patches, self.config.patch_size, self.config.num_channels)

    def pixel_targets(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Patchified targets (normalised per patch under `norm_pix_loss`), with the mean/std to undo it."""
        target = self.patchify(pixel_values)
        if not self.config.norm_pix_loss:
            return target, None, None
        mean = target.mean(dim=-1, keepdim=True)
        std = (target.var(dim=-1, keepdim=True) + 1.0e-6) ** 0.5
        return (target - mean) / std, mean, std

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> LensMAEForPreTrainingOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, image_size, image_size)`):
                Images to reconstruct.
            noise (`torch.FloatTensor` of shape `(batch_size, num_patches)`, *optional*):
                Makes the mask deterministic: the patches with the smallest noise are kept.
            mask_ratio (`float`, *optional*, defaults to `config.mask_ratio`):
                Fraction of patches masked.
        """
        mask_ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        encoded = self.vit(
            pixel_values,
            noise=noise,
            mask_ratio=mask_ratio,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.decoder(encoded.last_hidden_state, encoded.ids_restore)
        target, _, _ = self.pixel_targets(pixel_values.to(logits.dtype))
        per_patch = reconstruction_loss(logits, target, self.config.reconstruction_loss)
        mask = encoded.mask
        loss = (per_patch * mask).sum() / mask.sum().clamp(min=1.0)
        output = LensMAEForPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=mask,
            ids_restore=encoded.ids_restore,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output

    @torch.no_grad()
    def reconstruct(self, pixel_values: torch.Tensor, noise: torch.Tensor | None = None,
                    mask_ratio: float | None = None) -> dict[str, torch.Tensor]:
        """Images for an MAE figure: the masked input, the prediction in pixel units, and the visible+predicted paste
        (at `mask_ratio`, default `config.mask_ratio`)."""
        output = self(pixel_values, noise=noise, mask_ratio=mask_ratio, return_dict=True)
        target, mean, std = self.pixel_targets(pixel_values.to(output.logits.dtype))
        prediction = output.logits if mean is None else output.logits * std + mean
        mask = output.mask.unsqueeze(-1)
        patches = self.patchify(pixel_values.to(prediction.dtype))
        return {
            "masked": self.unpatchify(patches * (1 - mask)),
            "prediction": self.unpatchify(prediction),
            "pasted": self.unpatchify(patches * (1 - mask) + prediction * mask),
            "mask": self.unpatchify(mask.expand_as(patches)),
            "loss": output.loss,
        }


class LensMAEForImageClassification(LensMAEPreTrainedModel):
    """LensMAE encoder + a classification/regression head.

    `config.classifier_mode="finetune"`: pooled tokens -> LayerNorm -> Linear, everything trained.
    `config.classifier_mode="linear_probe"`: the encoder is frozen (and kept in eval mode); pooled tokens ->
    BatchNorm1d(affine=False) -> Linear. `num_labels=1` with `problem_type="regression"` regresses a scalar
    (e.g. log10 of the axion mass); `num_labels=2` is the lens finder.
    """

    _keys_to_ignore_on_load_unexpected = [r"decoder\."]

    def __init__(self, config: LensMAEConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.vit = LensMAEModel(config)
        if config.classifier_mode == "linear_probe":
            self.head_norm = nn.BatchNorm1d(config.hidden_size, affine=False, eps=1e-6)
        elif config.classifier_head_norm == "batchnorm":
            self.head_norm = nn.BatchNorm1d(config.hidden_size, eps=1e-6)
        else:
            self.head_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.head_dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.classifier._lens_mae_init_std = 2e-5 if config.classifier_mode == "finetune" else 0.01
        self.post_init()
        if config.classifier_mode == "linear_probe":
            self.vit.requires_grad_(False)

    @property
    def is_linear_probe(self) -> bool:
        return self.config.classifier_mode == "linear_probe"

    def train(self, mode: bool = True):
        super().train(mode)
        if self.is_linear_probe:
            self.vit.eval()  # frozen features: no dropout / drop-path noise
        return self

    def pool(self, last_hidden_state: torch.Tensor) -> torch.Tensor:
        if self.config.classifier_pooling == "cls":
            return last_hidden_state[:, 0]
        return last_hidden_state[:, 1:].mean(dim=1)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, image_size, image_size)`):
                Images, normalised by [`LensImageProcessor`].
            labels (`torch.LongTensor` of shape `(batch_size,)` or `torch.FloatTensor` for regression, *optional*):
                Class indices in `[0, num_labels)`, or regression targets. Gives the loss.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.is_linear_probe):
            encoded = self.vit(
                pixel_values,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        logits = self.logits_from_features(self.pool(encoded.last_hidden_state))
        loss = None if labels is None else self.compute_loss(logits, labels)
        output = ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return output

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """The head alone, on pooled encoder features (regression: in physical units), so a linear probe can be
        fitted on features computed once."""
        logits = self.classifier(self.head_dropout(self.head_norm(features)))
        if self.is_regression:
            logits = logits * self.config.regression_target_std + self.config.regression_target_mean
        return logits

    @property
    def is_regression(self) -> bool:
        problem = self.config.problem_type
        return problem == "regression" or (problem is None and self.num_labels == 1)

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.to(logits.device)
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int, torch.int16, torch.int8, torch.uint8):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            if labels.numel() != logits.numel():
                raise ValueError(f"Regression labels must have one value per image, got shape {tuple(labels.shape)}.")
            scale = self.config.regression_target_std
            return F.mse_loss(logits.squeeze(-1) / scale, labels.reshape(logits.shape[0]).to(logits.dtype) / scale)
        if self.config.problem_type == "single_label_classification":
            if labels.ndim != 1 or labels.min() < 0 or labels.max() >= self.num_labels:
                raise ValueError(
                    f"Classification labels must be integers in [0, {self.num_labels}) of shape (batch,), got "
                    f"shape {tuple(labels.shape)} with range [{labels.min().item()}, {labels.max().item()}]."
                )
            return F.cross_entropy(logits, labels.long())
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class LensMAEForSuperResolution(LensMAEPreTrainedModel):
    """LensMAE encoder + a sub-pixel convolution head: an `image_size` image in, `image_size * sr_scale` out.

    The encoder tokens are projected and pixel-shuffled straight to the high-resolution grid, then refined by two
    convolutions that also see the bicubic upsampling of the input; with `sr_residual` the head predicts only the
    correction to that bicubic image, so an untrained head starts at the bicubic baseline.
    """

    upsample_channels = 16
    _keys_to_ignore_on_load_unexpected = [r"decoder\."]

    def __init__(self, config: LensMAEConfig):
        super().__init__(config)
        self.vit = LensMAEModel(config)
        factor = config.patch_size * config.sr_scale
        self.to_subpixels = nn.Conv2d(config.hidden_size, self.upsample_channels * factor**2, kernel_size=1)
        self.pixel_shuffle = nn.PixelShuffle(factor)
        self.refine = nn.Sequential(
            nn.Conv2d(self.upsample_channels + config.num_channels, config.sr_hidden_channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(config.sr_hidden_channels, config.num_channels, 3, padding=1),
        )
        if config.sr_residual:
            self.refine[-1]._lens_mae_init_std = 0.0
        self.post_init()

    @property
    def output_size(self) -> int:
        return self.config.image_size * self.config.sr_scale

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> ImageSuperResolutionOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, image_size, image_size)`):
                Low-resolution images.
            labels (`torch.FloatTensor` of shape `(batch_size, num_channels, image_size * sr_scale, image_size * sr_scale)`, *optional*):
                High-resolution targets. Gives the L1/MSE loss (`config.sr_loss`).
        """
        encoded = self.vit(
            pixel_values, output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True
        )
        tokens = encoded.last_hidden_state[:, 1:]
        grid = self.config.image_size // self.config.patch_size
        feature_map = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, grid, grid)
        upsampled = self.pixel_shuffle(self.to_subpixels(feature_map))
        bicubic = F.interpolate(
            pixel_values.to(upsampled.dtype), size=(self.output_size, self.output_size), mode="bicubic", align_corners=False
        )
        reconstruction = self.refine(torch.cat([upsampled, bicubic], dim=1))
        if self.config.sr_residual:
            reconstruction = reconstruction + bicubic
        loss = None
        if labels is not None:
            expected = (pixel_values.shape[0], self.config.num_channels, self.output_size, self.output_size)
            if tuple(labels.shape) != expected:
                raise ValueError(f"Super-resolution labels must have shape {expected}, got {tuple(labels.shape)}.")
            labels = labels.to(reconstruction.dtype)
            if self.config.sr_loss == "mse":
                loss = F.mse_loss(reconstruction, labels)
            else:
                loss = F.l1_loss(reconstruction, labels)
        output = ImageSuperResolutionOutput(
            loss=loss, reconstruction=reconstruction, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return output


__all__ = [
    "LensMAEPreTrainedModel",
    "LensMAEModel",
    "LensMAEForPreTraining",
    "LensMAEForImageClassification",
    "LensMAEForSuperResolution",
    "LensMAEModelOutput",
    "LensMAEForPreTrainingOutput",
]
