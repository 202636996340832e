"""The converged linear probe (`--probe_solver lbfgs`): frozen features computed once, the linear head fitted to
convergence with full-batch L-BFGS, its L2 strength chosen on the validation split (the CLIP protocol).

Why: the pooled features of these images are badly conditioned (on the demo's Model II encoder the leading
singular value of the standardised features is 53x the tenth) and the class signal sits in directions of small
variance, which SGD/LARS with a few hundred noisy steps does not reach: the MAE probe recipe ended at micro-AUC
0.55 on the demo, the converged fit on the same frozen features at 0.94 (benchmarks/probe_features.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .loop import TrainLog

# L2 strengths tried (penalty l2/2 * ||W||^2 added to the mean loss); the one with the lowest validation loss wins.
L2_GRID = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


class _ProbeHead:
    """What the L-BFGS probe needs of a model: its frozen pooled features, the linear layer it fits, the loss,
    and how the features are standardised at inference. Two kinds:

    - a LensMAE linear probe (`classifier_mode="linear_probe"`): BatchNorm1d(affine=False) + Linear; the
      BatchNorm's running statistics become the training features' exact mean and variance;
    - transformers' `ResNetForImageClassification` (e.g. on a SimCLR ResNet-18): the head is one Linear, so the
      fit runs on standardised features and the standardisation is folded into its weight and bias afterwards;
      the saved model is a plain ResNet classifier whose logits equal the fitted probe's."""

    def __init__(self, model):
        self.model = model
        self.is_resnet = hasattr(model, "resnet") and isinstance(getattr(model, "classifier", None), torch.nn.Sequential)
        if not self.is_resnet and not getattr(model, "is_linear_probe", False):
            raise ValueError("the L-BFGS probe solver fits the head of a linear probe: use --mode linear_probe "
                             f"(a LensMAE probe or a ResNet classifier), got {type(model).__name__}")
        self.linear = model.classifier[-1] if self.is_resnet else model.classifier
        self.mean = self.scale = None

    def features(self, pixel_values):
        if self.is_resnet:
            return self.model.resnet(pixel_values).pooler_output.flatten(1)
        return self.model.pool(self.model.vit(pixel_values).last_hidden_state)

    def standardise_with(self, train_x):
        if self.is_resnet:
            self.mean, self.scale = train_x.mean(0), train_x.std(0, unbiased=True).clamp_min(1e-6)
        else:
            self.model.head_norm.running_mean.copy_(train_x.mean(0))
            self.model.head_norm.running_var.copy_(train_x.var(0, unbiased=True))

    def logits(self, features):
        if self.is_resnet:
            return self.linear((features - self.mean) / self.scale)
        return self.model.logits_from_features(features)

    def loss(self, features, labels, class_weights):
        logits = self.logits(features)
        if self.is_resnet or (class_weights is not None and not self.model.is_regression and self.model.num_labels > 1):
            weight = None if class_weights is None else class_weights.to(logits.device)
            return F.cross_entropy(logits, labels.long(), weight=weight)
        return self.model.compute_loss(logits, labels)

    @torch.no_grad()
    def finish(self):
        """Fold the standardisation into the ResNet head: W x' + b with x' = (x - mean) / scale."""
        if self.is_resnet:
            weight = self.linear.weight / self.scale
            self.linear.bias.sub_(weight @ self.mean)
            self.linear.weight.copy_(weight)


@torch.no_grad()
def frozen_features(accelerator, model, dataloader) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled encoder features and labels of every row of `dataloader`, gathered on every process in order
    (`model`: a probe model, or its `_ProbeHead`)."""
    head = model if isinstance(model, _ProbeHead) else _ProbeHead(accelerator.unwrap_model(model))
    head.model.eval()
    features, labels = [], []
    for batch in dataloader:
        pooled = head.features(batch["pixel_values"]).float().contiguous()
        gathered = accelerator.gather_for_metrics({"features": pooled, "labels": batch["labels"].contiguous()})
        features.append(gathered["features"])  # kept on the model's device: the head is fitted there
        labels.append(gathered["labels"])
    return torch.cat(features), torch.cat(labels)


def fit_linear_probe(accelerator, model, train_loader, validation_loader, output_dir=None, max_iterations: int = 1000,
                     class_weights: torch.Tensor | None = None, l2_grid=L2_GRID) -> dict:
    """Fit the linear head of a probe on frozen features; returns what was chosen.

    Every process computes the same fit from the same gathered features; at inference the model normalises its
    features as the fit did (see `_ProbeHead`)."""
    model = accelerator.unwrap_model(model)
    probe = _ProbeHead(model)
    train_x, train_y = frozen_features(accelerator, probe, train_loader)
    val_x, val_y = frozen_features(accelerator, probe, validation_loader)
    probe.standardise_with(train_x)
    model.eval()  # the head normalises with those statistics, no dropout

    head = probe.linear
    start = {key: value.clone() for key, value in head.state_dict().items()}
    trials = []
    for l2 in l2_grid:
        head.load_state_dict(start)
        history = _lbfgs(head, lambda: probe.loss(train_x, train_y, class_weights) + 0.5 * l2 * head.weight.pow(2).sum(),
                         max_iterations)
        with torch.no_grad():
            validation = probe.loss(val_x, val_y, class_weights).item()
        trials.append({"l2": l2, "validation_loss": validation, "train_objective": history[-1],
                       "iterations": len(history), "history": history,
                       "state": {key: value.clone() for key, value in head.state_dict().items()}})
    best = min(trials, key=lambda trial: trial["validation_loss"])
    head.load_state_dict(best["state"])
    probe.finish()

    if output_dir is not None:  # the run's train_log.jsonl: the chosen fit's curve, then every trial
        log = TrainLog(output_dir, accelerator.is_main_process, None)
        for step, value in enumerate(best["history"], start=1):
            log.write({"step": step, "loss": value})
        for trial in trials:
            log.write({"step": len(best["history"]), "probe/l2": trial["l2"], "eval/loss": trial["validation_loss"]})
    accelerator.print(f"L-BFGS probe: l2={best['l2']:g} chosen on {len(val_y)} validation rows "
                      f"(validation loss {best['validation_loss']:.4f}, {best['iterations']} evaluations)")
    return {"solver": "lbfgs", "l2": best["l2"], "train_rows": len(train_y), "validation_rows": len(val_y),
            "validation_loss_by_l2": {str(t["l2"]): t["validation_loss"] for t in trials}}


def _lbfgs(module: torch.nn.Module, objective, max_iterations: int) -> list[float]:
    """Minimise `objective()` over `module`'s parameters; returns the objective at every evaluation."""
    optimizer = torch.optim.LBFGS(module.parameters(), lr=1.0, max_iter=max_iterations, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-7, tolerance_change=1e-10)
    history: list[float] = []

    def closure():
        optimizer.zero_grad()
        with torch.enable_grad():
            value = objective()
            value.backward()
        history.append(value.item())
        return value

    optimizer.step(closure)
    return history
