#!/usr/bin/env python
"""Classification, axion-mass regression or lens finding: LensMAE (linear probe, finetune, LoRA, from scratch) or
any of transformers' image classifiers the DeepLense work compares (ResNet, EfficientNet, MobileNetV2, CvT, ViT,
ConvNeXt), from scratch or finetuned from a checkpoint.

    accelerate launch scripts/finetune.py --task classification --mode finetune \
        --model_name_or_path outputs/lens-mae --output_dir outputs/lens-mae-classifier
    python scripts/finetune.py --task regression --mode scratch --output_dir outputs/regressor --max_steps 100
    python scripts/finetune.py --task lens_finding --mode linear_probe --model_name_or_path outputs/lens-mae \
        --imbalance weighted_sampler --output_dir outputs/lens-finder
    python scripts/finetune.py --mode lora --model_name_or_path outputs/lens-mae --lora_rank 8 --merge_adapter \
        --output_dir outputs/lens-mae-lora
    python scripts/finetune.py --architecture resnet18 --mode linear_probe --probe_solver lbfgs \
        --model_name_or_path outputs/simclr-resnet18 --output_dir outputs/simclr-probe
    python scripts/finetune.py --task regression --architecture resnet34 --mode finetune \
        --model_name_or_path microsoft/resnet-34 --output_dir outputs/resnet34-regressor
    python scripts/finetune.py --architecture efficientnet_b0 --mode scratch --output_dir outputs/effnet-b0

Recipes (facebookresearch/mae): linear_probe = frozen encoder, BatchNorm1d(affine=False) + Linear, LARS, base lr 0.1, wd 0
(`--probe_solver lbfgs`: the head fitted to convergence on features computed once, L2 chosen on validation);
finetune = AdamW, layer-wise lr decay 0.75, base lr 1e-3, wd 0.05, drop path 0.1; scratch = finetune without
layer decay; lora = peft LoRA adapters on the encoder's attention and MLP linears (`qkv`, `proj`, `fc1`, `fc2`)
with the head trained in full, AdamW base lr 4e-3, no layer decay. The other architectures
(`lens_hf.architectures`) train from scratch or finetune from a checkpoint with the scratch recipe (no layer decay:
their blocks are not a stack of equal layers); a 3-channel checkpoint is adapted to 1-band data by summing its
RGB filters, and a head that does not fit the task is replaced, both said in the log and the card. A ResNet is
also probed with `--mode linear_probe --probe_solver lbfgs`.
Every value can be overridden on the command line.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from accelerate import PartialState

from lens_hf import LensMAEForImageClassification
from lens_hf.architectures import ARCHITECTURES as OTHER_ARCHITECTURES
from lens_hf.architectures import get_architecture
from lens_hf.architectures.transfer import from_checkpoint, set_regression_head
from lens_hf.tasks import TASKS as ALL_TASKS
from lens_hf.tasks import get_task
from lens_hf.training import DataArguments, ModelArguments, RunArguments, parse_arguments, run_training
from lens_hf.training.adapters import LENS_MAE_LORA_TARGETS, merge_adapter_folder, wrap_with_lora
from lens_hf.training.models import config_overrides, fresh_config, pretrained
from lens_hf.training.probe import fit_linear_probe

# The tasks whose models are image-classification heads (a registered task with that model class appears here).
TASKS = tuple(name for name, task in ALL_TASKS.items() if task.model_class == "LensMAEForImageClassification")
MODES = ("linear_probe", "finetune", "scratch", "lora")
IMBALANCE = ("none", "weighted_sampler", "loss_weights", "oversample", "focal_loss")
ARCHITECTURES = ("lens_mae", *OTHER_ARCHITECTURES)
PROBE_SOLVERS = ("sgd", "lbfgs")
logger = logging.getLogger("lens_hf.finetune")
# The other architectures the L-BFGS probe knows how to read features from (lens_hf.training.probe).
PROBED_ARCHITECTURES = ("resnet18", "resnet34", "resnet50")


@dataclass
class FinetuneArguments:
    task: str = field(default="classification", metadata={"help": "classification | regression | lens_finding."})
    mode: str = field(default="finetune", metadata={"help": "linear_probe | finetune | scratch | lora."})
    imbalance: str = field(default="none", metadata={"help": "Class imbalance handling: none | weighted_sampler | "
                                                      "loss_weights (inverse class frequency) | oversample (the "
                                                      "minority rows repeated until the classes are equal) | "
                                                      "focal_loss (--focal_gamma)."})
    focal_gamma: float = field(default=2.0, metadata={"help": "--imbalance focal_loss: the focal exponent gamma "
                                                      "(0 = cross-entropy)."})
    classifier_pooling: str = field(default="mean", metadata={"help": "mean | cls token features."})
    architecture: str = field(default="lens_mae", metadata={"help": f"{' | '.join(ARCHITECTURES)}: LensMAE or one of "
                                                             "transformers' image classifiers at its published size "
                                                             "(scratch, or finetune from --model_name_or_path; "
                                                             "ResNets also an L-BFGS linear probe)."})
    classifier_head_norm: str = field(default="layernorm", metadata={"help": "finetune/scratch head: layernorm (MAE) | "
                                                                     "batchnorm (standardises features across the batch)."})
    probe_solver: str = field(default="sgd", metadata={"help": "linear_probe only: sgd (the recipe's LARS loop, "
                                                       "--max_steps) | lbfgs (frozen features once, head fitted to "
                                                       "convergence, L2 strength chosen on the validation split)."})
    lora_rank: int = field(default=8, metadata={"help": "--mode lora: rank of the adapters."})
    lora_alpha: float = field(default=16.0, metadata={"help": "--mode lora: scaling alpha (update x alpha / rank)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "--mode lora: dropout on the adapter input."})
    lora_target_modules: str = field(default=",".join(LENS_MAE_LORA_TARGETS), metadata={
        "help": "--mode lora: comma-separated module names that get adapters (LensMAE's attention qkv/proj and MLP "
                "fc1/fc2; a name matching no module is an error)."})
    use_rslora: bool = field(default=False, metadata={"help": "--mode lora: rank-stabilised scaling alpha / sqrt(rank)."})
    merge_adapter: bool = field(default=False, metadata={"help": "--mode lora: also save the adapter merged into the "
                                                         "weights as <output_dir>/merged (a plain model)."})

    def __post_init__(self):
        for name, allowed in (("task", TASKS), ("mode", MODES), ("imbalance", IMBALANCE),
                              ("architecture", ARCHITECTURES), ("probe_solver", PROBE_SOLVERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.probe_solver == "lbfgs" and self.mode != "linear_probe":
            raise ValueError(f"--probe_solver lbfgs fits a linear probe's head; it needs --mode linear_probe, "
                             f"got --mode {self.mode}")
        if self.probe_solver == "lbfgs" and self.imbalance in ("weighted_sampler", "oversample", "focal_loss"):
            raise ValueError(f"--probe_solver lbfgs sees every training row once; --imbalance {self.imbalance} "
                             "needs the SGD loop: weight classes with --imbalance loss_weights")
        if self.task == "regression" and self.imbalance != "none":
            raise ValueError(f"--imbalance {self.imbalance} balances classes; --task regression has none")
        if self.architecture != "lens_mae" and self.mode == "lora":
            raise ValueError(f"--mode lora adapts the LensMAE encoder's linears; --architecture {self.architecture} "
                             "trains from scratch (--mode scratch) or finetunes a checkpoint (--mode finetune)")
        if self.architecture != "lens_mae" and self.mode == "linear_probe" and (
                self.architecture not in PROBED_ARCHITECTURES or self.probe_solver != "lbfgs"):
            raise ValueError(f"a linear probe of --architecture {self.architecture}: only the ResNets "
                             f"({', '.join(PROBED_ARCHITECTURES)}) are probed, with --probe_solver lbfgs on their frozen "
                             "features (the SGD probe's frozen-BatchNorm head is LensMAE's)")
        if self.merge_adapter and self.mode != "lora":
            raise ValueError(f"--merge_adapter merges a LoRA adapter; it needs --mode lora, got --mode {self.mode}")


def inverse_frequency(labels: list[int], num_classes: int) -> list[float]:
    """Per-class weights proportional to 1/count, normalised to mean 1; an absent class is an error."""
    counts = Counter(labels)
    missing = [k for k in range(num_classes) if counts[k] == 0]
    if missing:
        raise ValueError(f"classes {missing} have no training example; cannot weight them.")
    weights = np.array([1.0 / counts[k] for k in range(num_classes)])
    return (weights * num_classes / weights.sum()).tolist()


def main(argv=None):
    data_args, model_args, run_args, args = parse_arguments(
        (DataArguments, ModelArguments, RunArguments, FinetuneArguments), argv
    )
    if args.mode != "scratch" and not model_args.model_name_or_path:
        raise SystemExit(f"--mode {args.mode} needs --model_name_or_path (a checkpoint: a run folder or a Hub id); use --mode scratch "
                         "to train from random weights.")
    task = get_task(args.task)
    if args.mode == "lora" and Path(model_args.model_name_or_path).is_dir():
        # the adapter records its base model: a local one by its absolute path, so the run folder loads from anywhere
        model_args.model_name_or_path = str(Path(model_args.model_name_or_path).resolve())

    def build_model(info, recipe_config):
        head = dict(classifier_mode="linear_probe" if args.mode == "linear_probe" else "finetune",
                    classifier_pooling=args.classifier_pooling, classifier_head_norm=args.classifier_head_norm)
        if args.mode != "linear_probe":
            head["drop_path_rate"] = recipe_config.get("drop_path_rate")
        if not task.has_classes:  # a regression target, in physical units
            targets = np.asarray(info.dataset["train"][task.target_column], dtype=np.float64)
            head.update(num_labels=1, problem_type="regression", regression_target_mean=float(targets.mean()),
                        regression_target_std=float(max(targets.std(), 1e-6)))
        else:
            names = info.class_names or [str(k) for k in range(2)]
            head.update(num_labels=len(names), problem_type="single_label_classification",
                        id2label=dict(enumerate(names)), label2id={n: k for k, n in enumerate(names)})
        if args.architecture != "lens_mae":
            return other_architecture(info, head)
        if args.mode == "scratch":
            return LensMAEForImageClassification(fresh_config(model_args, info.image_size, info.num_channels, **head))
        model = pretrained(LensMAEForImageClassification, model_args, **head)
        if args.mode == "lora":
            return wrap_with_lora(model, rank=args.lora_rank, alpha=args.lora_alpha, dropout=args.lora_dropout,
                                  target_modules=args.lora_target_modules, use_rslora=args.use_rslora)
        return model

    def other_architecture(info, head):
        """One of lens_hf.architectures: fresh, or from the checkpoint with its adaptations logged and carried to
        the card (run_config.json `derived.model_notes`); a regression head predicts in physical units."""
        architecture = get_architecture(args.architecture)
        fields = {k: head[k] for k in ("num_labels", "problem_type", "id2label", "label2id") if k in head}
        overrides = config_overrides(type(architecture.make_config()), model_args.config_overrides)
        if args.mode == "scratch":
            model, notes = architecture.build(info.image_size, info.num_channels, **fields, **overrides), []
        else:
            model, notes = from_checkpoint(architecture, model_args.model_name_or_path, info.image_size,
                                           info.num_channels, trust_remote_code=model_args.trust_remote_code,
                                           config_fields=overrides, **fields)
        if not task.has_classes:
            set_regression_head(model, head["regression_target_mean"], head["regression_target_std"])
        for note in notes:
            logger.info(note)
        return model, notes

    def solve_probe(accelerator, model, train_rows, validation_rows, output_dir, class_weights):
        return fit_linear_probe(accelerator, model, train_rows, validation_rows, output_dir,
                                class_weights=class_weights)

    # Only LensMAE is a stack of equal transformer layers to decay the lr over: the other architectures' finetune is
    # the scratch recipe from a checkpoint.
    recipe = "scratch" if args.architecture != "lens_mae" and args.mode == "finetune" else args.mode
    metrics = run_training(
        task=task, recipe=recipe, data_args=data_args, model_args=model_args, run_args=run_args,
        build_model=build_model, extra_args=args,
        class_weights_fn=inverse_frequency if args.imbalance == "weighted_sampler" else None,
        loss_weights_fn=inverse_frequency if args.imbalance == "loss_weights" else None,
        head_solver=solve_probe if args.probe_solver == "lbfgs" else None,
        oversample=args.imbalance == "oversample",
        focal_gamma=args.focal_gamma if args.imbalance == "focal_loss" else None,
    )
    if args.merge_adapter and PartialState().is_main_process:
        merged = merge_adapter_folder(run_args.output_dir, LensMAEForImageClassification, model_args.trust_remote_code)
        print(f"merged the adapter into {merged}")
    return metrics


if __name__ == "__main__":
    from lens_hf.scripts.console import run

    run(main)
