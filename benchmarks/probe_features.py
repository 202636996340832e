"""What a linear probe can read from frozen encoder features: per encoder layer, a converged logistic regression
on mean-pooled tokens (LensMAE) or pooled stage maps (ResNet, e.g. a SimCLR encoder) of a pretrained model and of
the same architecture with random weights, the conditioning of the standardised features, and a logistic
regression on the pixels themselves. `--labels_per_class k` fits every regression on a k-per-class subset.

    python benchmarks/probe_features.py --model_dir demo_output/lens-mae --cache_dir demo_output/cache

Data: the `deeplense_sim` config, sizes and seed the model was pretrained on (read from its run_config.json), cropped
and normalised by the model's saved processor. Prints one line per figure.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from transformers import AutoImageProcessor, AutoModel  # noqa: E402

import lens_hf  # noqa: E402,F401  (registers LensMAE with AutoModel)
from lens_hf.data import load_builder  # noqa: E402
from lens_hf.data.splits import labelled_subset_indices  # noqa: E402
from lens_hf.training import parse_arguments  # noqa: E402
from lens_hf.tasks import get_task  # noqa: E402


@dataclass
class ProbeFeatureArguments:
    model_dir: str = field(metadata={"help": "A LensMAE pretraining run folder."})
    cache_dir: str = field(default=None, metadata={"help": "Data cache of that run (so the data is not simulated again)."})
    threads: int = field(default=2, metadata={"help": "torch threads."})
    seed: int = field(default=0, metadata={"help": "Seed of the random-weight encoder."})
    labels_per_class: Optional[int] = field(default=None, metadata={"help": "Fit on a class-balanced subset of the training "
                                                          "split (lens_hf.data.splits.labelled_subset_indices)."})
    subset_seed: int = field(default=0, metadata={"help": "Seed of that subset."})


@torch.no_grad()
def layer_features(model, pixel_values, batch_size: int = 256) -> list[np.ndarray]:
    """LensMAE: mean-pooled patch tokens after the embedding and after every block (the last one LayerNorm-ed,
    as the heads read it). ResNet: the globally average-pooled map after the stem and after every stage."""
    model.eval()
    per_layer = []
    for start in range(0, len(pixel_values), batch_size):
        output = model(pixel_values=pixel_values[start:start + batch_size], output_hidden_states=True)
        if getattr(output, "pooler_output", None) is not None:  # ResNet: (B, C, H, W) maps
            per_layer.append([state.mean(dim=(2, 3)).numpy() for state in output.hidden_states])
            continue
        states = [*output.hidden_states[:-1], output.last_hidden_state]
        per_layer.append([state[:, 1:].mean(1).numpy() for state in states])
    return [np.concatenate(parts) for parts in zip(*per_layer)]


def logistic_regression(train, validation, test) -> np.ndarray:
    """Test-split class probabilities of a converged multinomial logistic regression on standardised inputs,
    C in {0.1, 1, 10} chosen on validation accuracy. Each argument is (inputs, labels)."""
    scaler = StandardScaler().fit(train[0])
    fits = [LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(train[0]), train[1]) for c in (0.1, 1.0, 10.0)]
    best = max(fits, key=lambda fit: fit.score(scaler.transform(validation[0]), validation[1]))
    return best.predict_proba(scaler.transform(test[0]))


def processed_splits(dataset, processor) -> list[tuple[torch.Tensor, np.ndarray]]:
    """(pixel_values, labels) of the train, validation and test splits, cropped and normalised by `processor`."""
    splits = []
    for name in ("train", "validation", "test"):
        rows = dataset[name].with_format("numpy")[:]
        pixels = processor(rows["image"], input_data_format="channels_first", return_tensors="pt")["pixel_values"]
        splits.append((pixels, rows["label"]))
    return splits


def logistic_regression_metrics(train, validation, test, class_names) -> dict:
    """The project's classification metrics (accuracy, micro/macro AUC, ...) of `logistic_regression` on test."""
    log_probabilities = np.log(np.clip(logistic_regression(train, validation, test), 1e-12, None))
    return get_task("classification").compute_metrics({"predictions": log_probabilities, "targets": test[1]},
                                                   class_names)


def main(argv=None):
    (args,) = parse_arguments((ProbeFeatureArguments,), argv)
    torch.set_num_threads(args.threads)
    folder = Path(args.model_dir)
    record = json.loads((folder / "run_config.json").read_text())["DataArguments"]
    dataset = load_builder(record["dataset_name"], record["dataset_config"], seed=record["dataset_seed"],
                           cache_dir=args.cache_dir or record["cache_dir"], n_train=record["num_train"],
                           n_validation=record["num_validation"], n_test=record["num_test"])
    if args.labels_per_class:
        dataset["train"] = dataset["train"].select(labelled_subset_indices(dataset["train"]["label"],
                                                                           args.labels_per_class, args.subset_seed))
        print(f"# training rows: {args.labels_per_class} per class (subset seed {args.subset_seed})")
    processor = AutoImageProcessor.from_pretrained(folder)
    splits = dict(zip(("train", "validation", "test"), processed_splits(dataset, processor)))
    names = dataset["train"].features["label"].names
    pixels = logistic_regression_metrics(*[(p.flatten(1).numpy(), y) for p, y in splits.values()], names)
    print(f"pixels/logistic_regression accuracy {pixels['accuracy']:.3f} micro_auc {pixels['roc_auc_micro']:.3f}")
    pretrained = AutoModel.from_pretrained(folder)
    torch.manual_seed(args.seed)
    random = type(pretrained)(pretrained.config)
    for label, model in (("pretrained", pretrained), ("random_weights", random)):
        features = {name: layer_features(model, images) for name, (images, _) in splits.items()}
        labels = {name: y for name, (_, y) in splits.items()}
        last = StandardScaler().fit_transform(features["train"][-1])
        singular = np.linalg.svd(last, compute_uv=False)
        print(f"{label}/last_layer singular_value_ratio_1_to_10 {singular[0] / singular[9]:.1f} "
              f"variance_in_top_1 {singular[0] ** 2 / (singular ** 2).sum():.3f}")
        for layer in range(len(features["train"])):
            metrics = logistic_regression_metrics(*[(features[name][layer], labels[name]) for name in splits], names)
            print(f"{label}/layer_{layer} accuracy {metrics['accuracy']:.3f} micro_auc {metrics['roc_auc_micro']:.3f}")


if __name__ == "__main__":
    main()
