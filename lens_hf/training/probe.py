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


@torch.no_grad()
def frozen_features(accelerator, model, dataloader) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled encoder features and labels of every row of `dataloader`, gathered on every process in order."""
    model.eval()
    features, labels = [], []
    for batch in dataloader:
        pooled = model.pool(model.vit(batch["pixel_values"]).last_hidden_state).float().contiguous()
        gathered = accelerator.gather_for_metrics({"features": pooled, "labels": batch["labels"].contiguous()})
        features.append(gathered["features"])  # kept on the model's device: the head is fitted there
        labels.append(gathered["labels"])
    return torch.cat(features), torch.cat(labels)


def fit_linear_probe(accelerator, model, train_loader, validation_loader, output_dir=None, max_iterations: int = 1000,
                     class_weights: torch.Tensor | None = None, l2_grid=L2_GRID) -> dict:
    """Fit the head of a `classifier_mode="linear_probe"` model on frozen features; returns what was chosen.

    The BatchNorm's running statistics become the exact mean/variance of the training features (so inference
    normalises as the fit did); every process computes the same fit from the same gathered features."""
    model = accelerator.unwrap_model(model)
    if not getattr(model, "is_linear_probe", False):
        raise ValueError("the L-BFGS probe solver fits the head of a linear probe: use --mode linear_probe")
    train_x, train_y = frozen_features(accelerator, model, train_loader)
    val_x, val_y = frozen_features(accelerator, model, validation_loader)
    norm = model.head_norm
    norm.running_mean.copy_(train_x.mean(0))
    norm.running_var.copy_(train_x.var(0, unbiased=True))
    model.eval()  # the head normalises with those statistics, no dropout

    def data_loss(features, labels):
        logits = model.logits_from_features(features)
        if class_weights is not None and not model.is_regression and model.num_labels > 1:
            return F.cross_entropy(logits, labels.long(), weight=class_weights.to(logits.device))
        return model.compute_loss(logits, labels)

    head = model.classifier
    start = {key: value.clone() for key, value in head.state_dict().items()}
    trials = []
    for l2 in l2_grid:
        head.load_state_dict(start)
        history = _lbfgs(head, lambda: data_loss(train_x, train_y) + 0.5 * l2 * head.weight.pow(2).sum(), max_iterations)
        with torch.no_grad():
            validation = data_loss(val_x, val_y).item()
        trials.append({"l2": l2, "validation_loss": validation, "train_objective": history[-1],
                       "iterations": len(history), "history": history,
                       "state": {key: value.clone() for key, value in head.state_dict().items()}})
    best = min(trials, key=lambda trial: trial["validation_loss"])
    head.load_state_dict(best["state"])

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
