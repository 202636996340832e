"""Contrastive pretraining (SimCLR): two physics-respecting views of every image (`LensViewAugmentation`), the
NT-Xent loss over the whole global batch, negatives gathered from every process. Scored by how well the
encoder's features of two fixed views of a held-out image find each other among all held-out images.

The loss with R processes x batch B equals the loss with 1 process x batch R*B, value and gradient: every
process gathers all projections (`gather_with_gradient`, whose backward sums the gradients that land on each
process's own rows), scores its own rows against all of them, and the data-parallel mean of the per-process
losses and gradients is the full-batch loss and gradient (tests/test_contrastive.py checks it with 2 processes).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..metrics import functional, plots
from ..models.contrastive import ContrastiveModel, augmentation_of, encoder_features
from ..seeds import seeded_generator
from .base import CardSection, LossContext, Task

EVALUATION_VIEWS = "evaluation-views"


class _GatherWithGradient(torch.autograd.Function):
    """all_gather whose backward hands each process the summed gradient of its own rows (torch's plain
    all_gather has no gradient, so the negatives other processes contributed would not be trained)."""

    @staticmethod
    def forward(ctx, tensor):
        ctx.rank, ctx.rows = dist.get_rank(), tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_with_gradient(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All processes' rows (same count on each: the training loader drops the last batch) and the offset of
    this process's rows; without torch.distributed, `tensor` itself and 0."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor, 0
    return _GatherWithGradient.apply(tensor), dist.get_rank() * tensor.shape[0]


def nt_xent_loss(view_a: torch.Tensor, view_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy (Chen et al. 2020): for each of the 2N embeddings, its
    other view is the positive and the remaining 2N - 2 embeddings of the global batch are the negatives;
    the mean over this process's 2B anchors. `view_a`, `view_b`: (B, dim) projections of two views of the
    same B images (row i of each), on this process."""
    if view_a.shape != view_b.shape or view_a.ndim != 2:
        raise ValueError(f"the two views must be (batch, dim) with equal shapes, got {tuple(view_a.shape)} and "
                         f"{tuple(view_b.shape)}")
    if not temperature > 0:
        raise ValueError(f"the NT-Xent temperature must be > 0, got {temperature!r}")
    local = view_a.shape[0]
    all_a, offset = gather_with_gradient(F.normalize(view_a, dim=1))
    all_b, _ = gather_with_gradient(F.normalize(view_b, dim=1))
    total = all_a.shape[0]
    candidates = torch.cat([all_a, all_b])  # (2N, dim): index j < N is view a of image j, N + j view b
    anchors = torch.cat([all_a[offset:offset + local], all_b[offset:offset + local]])  # this process's 2B
    logits = anchors @ candidates.T / temperature
    rows = torch.arange(local, device=logits.device) + offset
    anchor_index = torch.cat([rows, rows + total])
    logits = logits.masked_fill(F.one_hot(anchor_index, 2 * total).bool(), float("-inf"))  # not itself
    positives = torch.cat([rows + total, rows])
    return F.cross_entropy(logits, positives)


def evaluation_views(pixel_values: torch.Tensor, row_indices, seed: int, augmentation) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views of each evaluated row, drawn from a generator keyed by (seed, row index) only: a split's score
    does not depend on batch size, number of processes or when it is computed."""
    first, second = [], []
    for image, row in zip(pixel_values, row_indices):
        generator = seeded_generator(seed, EVALUATION_VIEWS, int(row), device=pixel_values.device)
        first.append(augmentation(image[None], generator))
        second.append(augmentation(image[None], generator))
    return torch.cat(first), torch.cat(second)


class ContrastiveTask(Task):
    name = "contrastive"
    target_column = None
    default_dataset_config = "model_ii"
    default_recipe = "contrastive"
    model_class = "ContrastiveModel"
    metric_module = "view_retrieval"
    scores_train_split = True  # retrieval on seen vs held-out images
    card = CardSection(
        title="contrastive pretraining (SimCLR: two views of an image agree)",
        auto_class="AutoModel",
        pipeline_tag="image-feature-extraction",
        eval_task_type="image-feature-extraction",
        headline_metrics=(("top1", "view retrieval top-1"),),
        citation_keys=("deeplense", "simclr"),
        usage="pooled = getattr(outputs, 'pooler_output', None)  # ResNet: global average pool\n"
              "features = pooled.flatten(1) if pooled is not None else outputs.last_hidden_state[:, 1:].mean(1)",
        config_keys=("lens_contrastive",),
    )

    def loss(self, model, batch, context: LossContext):
        pixel_values = batch["pixel_values"]
        wrapper = context.accelerator.unwrap_model(model)
        if not isinstance(wrapper, ContrastiveModel):
            raise TypeError(f"contrastive pretraining trains a lens_hf ContrastiveModel, got {type(wrapper).__name__}")
        if context.augment:
            view_a = wrapper.augmentation(pixel_values, context.generator)
            view_b = wrapper.augmentation(pixel_values, context.generator)
        else:  # --augment false: the views differ only in what the encoder's own dropout does
            view_a = view_b = pixel_values
        projections = model(torch.cat([view_a, view_b]))
        first, second = projections.chunk(2)
        return nt_xent_loss(first, second, wrapper.temperature)

    def evaluation_outputs(self, model, batch, unwrapped, seed):
        encoder = unwrapped.encoder if isinstance(unwrapped, ContrastiveModel) else unwrapped
        view_a, view_b = evaluation_views(batch["pixel_values"], batch["row_index"].tolist(), seed,
                                          augmentation_of(unwrapped))
        return {"features_a": encoder_features(encoder, view_a), "features_b": encoder_features(encoder, view_b)}

    def compute_metrics(self, outputs, class_names=None):
        return functional.view_retrieval_metrics(outputs["features_a"], outputs["features_b"])

    def plots(self, outputs, metrics, folder: Path, split, model):
        path = plots.plot_similarity_histogram(outputs["features_a"], outputs["features_b"],
                                               folder / f"view_similarity_{split}.png",
                                               title=f"View similarity ({split})")
        return {f"Cosine similarity of two views vs different images ({split})": path}
