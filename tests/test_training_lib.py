"""lens_hf.training building blocks: lr rule, parameter groups, layer decay (under wrappers too), LARS, schedule,
argument parsing, recipes, checkpoint resolution."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_script, tiny_config

from lens_hf import LensMAEForImageClassification, LensMAEForPreTraining, LensMAEModel
from lens_hf.training import (
    LARS,
    DataArguments,
    ModelArguments,
    RunArguments,
    apply_recipe,
    build_optimizer,
    parameter_groups,
    parse_arguments,
    resolve_checkpoint,
    scaled_learning_rate,
    warmup_cosine_schedule,
)
from lens_hf.training.arguments import parse_overrides


def test_learning_rate_scaling_rule():
    assert scaled_learning_rate(1.5e-4, 256) == pytest.approx(1.5e-4)
    assert scaled_learning_rate(1.5e-4, 4096) == pytest.approx(2.4e-3)
    with pytest.raises(ValueError):
        scaled_learning_rate(1e-3, 0)


def test_no_weight_decay_on_biases_norms_and_tokens():
    model = LensMAEForPreTraining(tiny_config())
    groups = parameter_groups(model, weight_decay=0.05)
    decayed = {n for g in groups if g["weight_decay"] > 0 for n in g["names"]}
    plain = {n for g in groups if g["weight_decay"] == 0 for n in g["names"]}
    assert "vit.layers.0.fc1.weight" in decayed and "vit.layers.0.fc1.bias" in plain
    assert {"vit.embeddings.cls_token", "decoder.mask_token", "vit.layernorm.weight"} <= plain
    assert not any("position_embeddings" in n for n in decayed | plain)  # frozen, not optimised


def test_layer_decay_scales_follow_depth():
    model = LensMAEForImageClassification(tiny_config(num_labels=3))  # 2 layers -> depths 0..3
    groups = parameter_groups(model, weight_decay=0.05, layer_decay=0.5)
    scale = {n: g["lr_scale"] for g in groups for n in g["names"]}
    assert scale["vit.embeddings.projection.weight"] == pytest.approx(0.5**3)
    assert scale["vit.layers.0.fc1.weight"] == pytest.approx(0.5**2)
    assert scale["vit.layers.1.fc1.weight"] == pytest.approx(0.5**1)
    assert scale["classifier.weight"] == scale["head_norm.weight"] == scale["vit.layernorm.weight"] == 1.0
    optimizer = build_optimizer(model, "adamw", 1e-3, 0.05, layer_decay=0.5)
    lrs = {n: g["lr"] for g in optimizer.param_groups for n in g["names"]}
    assert lrs["vit.layers.0.fc1.weight"] == pytest.approx(1e-3 * 0.25)


class PeftLikeWrapper(torch.nn.Module):
    """Holds a model where peft's PeftModel does: its parameters are named `base_model.model.<name>`."""

    def __init__(self, model):
        super().__init__()
        self.base_model = torch.nn.Module()
        self.base_model.model = model


def lr_scales(model, layer_decay=0.5):
    return {n: g["lr_scale"] for g in parameter_groups(model, weight_decay=0.05, layer_decay=layer_decay)
            for n in g["names"]}


def test_layer_decay_finds_the_encoder_under_a_wrapper():
    bare = lr_scales(LensMAEForImageClassification(tiny_config(num_labels=3)))
    wrapped = lr_scales(PeftLikeWrapper(LensMAEForImageClassification(tiny_config(num_labels=3))))
    assert wrapped["base_model.model.vit.layers.0.fc1.weight"] == pytest.approx(0.5**2)
    assert {n.removeprefix("base_model.model."): scale for n, scale in wrapped.items()} == bare
    encoder = lr_scales(LensMAEModel(tiny_config()))  # the bare encoder: no prefix at all
    assert encoder["embeddings.projection.weight"] == pytest.approx(0.5**3)
    assert encoder["layers.1.fc1.weight"] == pytest.approx(0.5) and encoder["layernorm.weight"] == 1.0


def test_layer_decay_leaves_the_pretraining_decoder_at_full_lr():
    scales = lr_scales(LensMAEForPreTraining(tiny_config()))
    assert scales["vit.layers.0.fc1.weight"] == pytest.approx(0.5**2)
    assert scales["decoder.layers.0.fc1.weight"] == scales["decoder.embed.weight"] == 1.0


def test_layer_decay_needs_a_lens_mae_encoder():
    from transformers import ResNetConfig, ResNetForImageClassification

    resnet = ResNetForImageClassification(ResNetConfig(num_channels=1, embedding_size=8, hidden_sizes=[8, 16],
                                                       depths=[1, 1], num_labels=3))
    with pytest.raises(ValueError, match=r"layer_decay\) needs one LensMAE encoder .* ResNetForImageClassification "
                                         r"has no module with `embeddings` and `layers.<i>`. Its parameters: "
                                         r"resnet\.embedder\."):
        parameter_groups(resnet, weight_decay=0.05, layer_decay=0.75)
    assert {g["lr_scale"] for g in parameter_groups(resnet, weight_decay=0.05)} == {1.0}  # no decay: fine
    two = torch.nn.ModuleDict({"a": LensMAEModel(tiny_config()), "b": LensMAEModel(tiny_config())})
    with pytest.raises(ValueError, match=r"2 of them, at \['a', 'b'\]"):
        build_optimizer(two, "adamw", 1e-3, 0.05, layer_decay=0.75)


def test_linear_probe_optimizes_only_the_head_with_lars():
    model = LensMAEForImageClassification(tiny_config(num_labels=3, classifier_mode="linear_probe"))
    optimizer = build_optimizer(model, "lars", 0.1, 0.0)
    assert isinstance(optimizer, LARS)
    names = {n for g in optimizer.param_groups for n in g["names"]}
    assert names == {"classifier.weight", "classifier.bias"}


def test_lars_scales_matrix_updates_by_the_trust_ratio():
    weight = torch.nn.Parameter(torch.full((4, 4), 2.0))
    bias = torch.nn.Parameter(torch.zeros(4))
    optimizer = LARS([weight, bias], lr=1.0, momentum=0.0, trust_coefficient=0.001)
    weight.grad = torch.full((4, 4), 10.0)
    bias.grad = torch.full((4,), 3.0)
    optimizer.step()
    # trust = 0.001 * ||w|| / ||g|| = 0.001 * 8 / 40; update = g * trust = 0.002 per entry
    torch.testing.assert_close(weight.detach(), torch.full((4, 4), 2.0 - 10.0 * 0.001 * 8 / 40))
    torch.testing.assert_close(bias.detach(), torch.full((4,), -3.0))  # 1-D: plain SGD


def expected_schedule_factor(step, warmup, total, floor):
    """The schedule as written in `warmup_cosine_schedule`'s docstring (transformers' convention)."""
    if step < warmup:
        return step / warmup
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def scheduled_lrs(warmup, total, floor, steps, peak=2.0):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=peak)
    scheduler = warmup_cosine_schedule(optimizer, warmup_steps=warmup, total_steps=total, min_lr_ratio=floor)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs, optimizer, scheduler


@pytest.mark.parametrize("warmup, total, floor", [(4, 12, 0.1), (0, 7, 0.0), (3, 3, 0.2), (1, 5, 0.5)])
def test_warmup_cosine_schedule_follows_the_written_formula_at_every_step(warmup, total, floor):
    lrs, _, _ = scheduled_lrs(warmup, total, floor, total + 1)
    assert lrs == pytest.approx([2.0 * expected_schedule_factor(s, warmup, total, floor) for s in range(total + 1)],
                                abs=1e-12)
    assert lrs[warmup] == pytest.approx(2.0)  # the peak, at step `warmup`
    if warmup < total:
        assert lrs[total] == pytest.approx(2.0 * floor)
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))  # non-increasing after the warmup


def test_warmup_cosine_schedule_small_case_by_hand():
    lrs, _, _ = scheduled_lrs(4, 12, 0.1, 13, peak=1.0)
    assert lrs[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])  # warmup s / 4: lr 0 on the first step
    assert lrs[8] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert lrs[12] == pytest.approx(0.1)


def test_warmup_cosine_schedule_validates_and_clips():
    with pytest.raises(ValueError, match="total_steps must be >= 1, got 0"):
        scheduled_lrs(0, 0, 0.0, 1)
    clipped, _, _ = scheduled_lrs(10, 4, 0.0, 4)  # warmup longer than the run: clipped to total_steps
    assert clipped == pytest.approx([0.0, 0.5, 1.0, 1.5])
    negative, _, _ = scheduled_lrs(-3, 4, 0.0, 4)  # negative warmup: none
    assert negative == pytest.approx([2.0 * expected_schedule_factor(s, 0, 4, 0.0) for s in range(4)])


def test_warmup_cosine_schedule_resumes_from_its_state_dict():
    import io

    uninterrupted, _, _ = scheduled_lrs(3, 10, 0.1, 10)
    _, optimizer, scheduler = scheduled_lrs(3, 10, 0.1, 6)
    saved = io.BytesIO()  # accelerate's save_state writes both state dicts (the scheduler is registered for it)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=False)
    parameter = torch.nn.Parameter(torch.zeros(1))
    fresh_optimizer = torch.optim.SGD([parameter], lr=2.0)
    fresh = warmup_cosine_schedule(fresh_optimizer, warmup_steps=3, total_steps=10, min_lr_ratio=0.1)
    fresh_optimizer.load_state_dict(state["optimizer"])
    fresh.load_state_dict(state["scheduler"])
    resumed = []
    for _ in range(4):
        resumed.append(fresh_optimizer.param_groups[0]["lr"])
        fresh_optimizer.step()
        fresh.step()
    assert resumed == pytest.approx(uninterrupted[6:], abs=1e-15)


def test_recipes_fill_only_unset_fields():
    run_args, data_args = RunArguments(learning_rate=None, weight_decay=0.2), DataArguments()
    leftover = apply_recipe("finetune", run_args, data_args)
    assert run_args.optimizer == "adamw" and run_args.layer_decay == 0.75 and run_args.base_learning_rate == 1e-3
    assert run_args.weight_decay == 0.2  # user value kept
    assert data_args.normalization == "minmax"
    assert leftover == {"drop_path_rate": 0.1}
    probe = RunArguments()
    apply_recipe("linear_probe", probe)
    assert probe.optimizer == "lars" and probe.base_learning_rate == 0.1 and probe.weight_decay == 0.0
    sr_data, user_data = DataArguments(), DataArguments(normalization="minmax")
    apply_recipe("super_resolution", RunArguments(), sr_data)
    apply_recipe("super_resolution", RunArguments(), user_data)
    assert sr_data.normalization == "none" and user_data.normalization == "minmax"  # what the user wrote wins


def test_arguments_from_yaml_with_command_line_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("output_dir: /tmp/x\nmax_steps: 7\nmodel_preset: tiny\naugment: false\n")
    data_args, model_args, run_args = parse_arguments((DataArguments, ModelArguments, RunArguments),
                                                       [str(path), "--max_steps", "9"])
    assert run_args.output_dir == "/tmp/x" and run_args.max_steps == 9
    assert model_args.model_preset == "tiny" and data_args.augment is False
    path.write_text("max_step: 7\n")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['max_step'\]"):
        parse_arguments((DataArguments, ModelArguments, RunArguments), [str(path)])
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        parse_arguments((RunArguments,), [str(path)])


def test_required_fields_can_come_from_the_file(tmp_path):
    from dataclasses import dataclass, field

    @dataclass
    class Needs:
        run_dir: str = field(metadata={"help": "required"})
        repeat: int = 1

    path = tmp_path / "args.json"
    path.write_text('{"run_dir": "/x"}')
    (needs,) = parse_arguments((Needs,), [str(path), "--repeat", "3"])
    assert needs.run_dir == "/x" and needs.repeat == 3
    with pytest.raises(SystemExit):
        parse_arguments((Needs,), ["--repeat", "3"])


def test_overrides_parse_types():
    assert parse_overrides("patch_size=4, mask_ratio=0.9,norm_pix_loss=true,reconstruction_loss=l1,lr=1e-3") == {
        "patch_size": 4, "mask_ratio": 0.9, "norm_pix_loss": True, "reconstruction_loss": "l1", "lr": 1e-3}
    assert parse_overrides("n_train=8,preset_overrides.image_size=32,preset_overrides.noise=true") == {
        "n_train": 8, "preset_overrides": {"image_size": 32, "noise": True}}
    assert parse_overrides("bands=[Band1, Band2],preset_overrides.classes=[cdm],x=null") == {
        "bands": ("Band1", "Band2"), "preset_overrides": {"classes": ("cdm",)}, "x": None}
    assert parse_overrides("") == {} and parse_overrides(None) == {}
    for bad, message in (("patch_size", "key=value"), ("a=[1,2", "unbalanced"), ("a=1,a=2", "given twice"),
                         ("a=1,a.b=2", "both a value and a group")):
        with pytest.raises(ValueError, match=message):
            parse_overrides(bad, "--dataset_overrides")


def test_resolve_checkpoint(tmp_path):
    assert resolve_checkpoint(tmp_path, None) is None
    assert resolve_checkpoint(tmp_path, "latest") is None
    for step in (3, 12):
        folder = tmp_path / "checkpoints" / f"step_{step:08d}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoints" / "step_00000020").mkdir()  # killed while saving: incomplete
    assert resolve_checkpoint(tmp_path, "latest").name == "step_00000012"
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        resolve_checkpoint(tmp_path, str(tmp_path / "checkpoints" / "step_00000020"))


def test_precise_batchnorm_statistics_are_the_average_over_the_loader():
    from accelerate import Accelerator

    from lens_hf.training.evaluation import recompute_batchnorm_statistics

    torch.manual_seed(0)
    model = LensMAEForImageClassification(tiny_config(num_labels=3, classifier_head_norm="batchnorm"))
    norm = model.head_norm
    norm.running_mean.fill_(5.0)
    norm.running_var.fill_(9.0)
    batches = [{"pixel_values": torch.randn(4, 1, 32, 32)} for _ in range(3)]
    seen = []
    handle = norm.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
    model.train()
    assert recompute_batchnorm_statistics(Accelerator(cpu=True), model, batches) == 1
    handle.remove()
    features = torch.stack(seen)  # (batches, batch, hidden): features computed with the encoder in eval mode
    torch.testing.assert_close(norm.running_mean, features.mean(dim=(0, 1)))
    torch.testing.assert_close(norm.running_var, features.var(dim=1, unbiased=True).mean(0))
    assert model.training and norm.momentum == 0.1  # mode and momentum as they were
    model.eval()  # evaluation now normalises with these statistics
    with torch.no_grad():
        expected = model.classifier(model.head_dropout((seen[0] - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)))
        torch.testing.assert_close(model(pixel_values=batches[0]["pixel_values"]).logits, expected)


PRECISE_BATCHNORM_ON_TWO_RANKS = """
import sys
import torch
from accelerate import Accelerator
sys.path.insert(0, {tests!r})
from helpers import tiny_config
from lens_hf import LensMAEForImageClassification
from lens_hf.training.evaluation import recompute_batchnorm_statistics

accelerator = Accelerator(cpu=True)
torch.manual_seed(0)  # the same weights on both ranks, as after `prepare`
model = LensMAEForImageClassification(tiny_config(num_labels=3, classifier_head_norm="batchnorm"))
model = accelerator.prepare(model)  # DistributedDataParallel: its buffer broadcast must not spoil the estimate
generator = torch.Generator().manual_seed(100 + accelerator.process_index)
shift = 3.0 * accelerator.process_index  # the ranks see different images
batches = [{{"pixel_values": torch.randn(4, 1, 32, 32, generator=generator) + shift}} for _ in range(2)]
unwrapped = accelerator.unwrap_model(model)
seen = []
unwrapped.head_norm.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
model.train()
recompute_batchnorm_statistics(accelerator, model, batches)
torch.save({{"features": torch.stack(seen), "mean": unwrapped.head_norm.running_mean,
             "var": unwrapped.head_norm.running_var}}, {out!r} + f"/rank{{accelerator.process_index}}.pt")
"""


def test_precise_batchnorm_averages_the_statistics_of_both_ranks(tmp_path):
    program = tmp_path / "precise_bn.py"
    program.write_text(PRECISE_BATCHNORM_ON_TWO_RANKS.format(tests=str(Path(__file__).parent), out=str(tmp_path)))
    run_script(program, processes=2, timeout=180)
    ranks = [torch.load(tmp_path / f"rank{index}.pt") for index in range(2)]
    assert not torch.allclose(ranks[0]["features"].mean((0, 1)), ranks[1]["features"].mean((0, 1)), atol=1e-2)
    # each rank's own estimate: mean over its batches; variance: mean of per-batch unbiased variances
    means = [rank["features"].mean(dim=(0, 1)) for rank in ranks]
    variances = [rank["features"].var(dim=1, unbiased=True).mean(0) for rank in ranks]
    for rank in ranks:  # both ranks end with the average of the two estimates
        torch.testing.assert_close(rank["mean"], (means[0] + means[1]) / 2)
        torch.testing.assert_close(rank["var"], (variances[0] + variances[1]) / 2)


def test_precise_batchnorm_skips_models_without_batchnorm():
    from accelerate import Accelerator

    from lens_hf.training.evaluation import recompute_batchnorm_statistics

    class Unreadable:
        def __iter__(self):
            raise AssertionError("the loader must not be read")

    model = LensMAEForImageClassification(tiny_config(num_labels=3))  # LayerNorm head
    assert recompute_batchnorm_statistics(Accelerator(cpu=True), model, Unreadable()) == 0


def test_lbfgs_probe_is_the_converged_logistic_regression():
    """The L-BFGS probe minimises mean cross-entropy + l2/2 ||W||^2 on standardised frozen features: the same
    optimum as scikit-learn's multinomial logistic regression with C = 1 / (n l2)."""
    from accelerate import Accelerator
    from sklearn.linear_model import LogisticRegression

    from lens_hf.training.probe import fit_linear_probe, frozen_features

    torch.manual_seed(0)
    model = LensMAEForImageClassification(tiny_config(num_labels=3, classifier_mode="linear_probe",
                                                      problem_type="single_label_classification"))
    encoder = {k: v.clone() for k, v in model.vit.state_dict().items()}
    generator = torch.Generator().manual_seed(1)

    def batches(count):
        return [{"pixel_values": torch.randn(16, 1, 32, 32, generator=generator),
                 "labels": torch.randint(0, 3, (16,), generator=generator)} for _ in range(count)]

    train, validation = batches(4), batches(2)
    accelerator = Accelerator(cpu=True)
    l2 = 3e-2
    chosen = fit_linear_probe(accelerator, model, train, validation, output_dir=None, l2_grid=(l2,))
    assert chosen["l2"] == l2 and chosen["train_rows"] == 64 and chosen["validation_rows"] == 32
    assert all(torch.equal(v, encoder[k]) for k, v in model.vit.state_dict().items())  # the encoder stays frozen

    features, labels = frozen_features(accelerator, model, train)
    torch.testing.assert_close(model.head_norm.running_mean, features.mean(0))
    torch.testing.assert_close(model.head_norm.running_var, features.var(0, unbiased=True))
    scale = torch.sqrt(features.var(0, unbiased=True) + model.head_norm.eps)
    standardised = ((features - features.mean(0)) / scale).double().numpy()
    reference = LogisticRegression(C=1.0 / (len(labels) * l2), tol=1e-10, max_iter=20000).fit(standardised, labels.numpy())
    held_out, _ = frozen_features(accelerator, model, validation)
    model.eval()
    with torch.no_grad():  # the saved model's own forward gives the fitted probabilities
        ours = model(pixel_values=torch.cat([b["pixel_values"] for b in validation])).logits.softmax(-1)
    expected = reference.predict_proba(((held_out - features.mean(0)) / scale).double().numpy())
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-3)  # float32 L-BFGS; l2 off by 1.5x moves them by 0.08


def test_lbfgs_probe_picks_the_l2_with_the_lowest_validation_loss(tmp_path):
    from accelerate import Accelerator

    from lens_hf.training.probe import fit_linear_probe

    torch.manual_seed(0)
    model = LensMAEForImageClassification(tiny_config(num_labels=3, classifier_mode="linear_probe",
                                                      problem_type="single_label_classification"))
    generator = torch.Generator().manual_seed(2)
    rows = [{"pixel_values": torch.randn(16, 1, 32, 32, generator=generator),
             "labels": torch.randint(0, 3, (16,), generator=generator)} for _ in range(3)]
    chosen = fit_linear_probe(Accelerator(cpu=True), model, rows[:2], rows[2:], tmp_path, l2_grid=(1e-4, 1e-1, 10.0))
    losses = {float(k): v for k, v in chosen["validation_loss_by_l2"].items()}
    assert chosen["l2"] == min(losses, key=losses.get) and len(losses) == 3
    log = [json.loads(line) for line in (tmp_path / "logs" / "train_log.jsonl").read_text().splitlines()]
    curve = [r["loss"] for r in log if "loss" in r]
    assert len(curve) > 3 and curve[-1] < curve[0]  # the chosen fit's objective, one record per evaluation
    assert sorted(r["probe/l2"] for r in log if "probe/l2" in r) == [1e-4, 1e-1, 10.0]


def test_lbfgs_probe_regression_recovers_a_linear_target():
    """A regression probe (outputs in physical units) fits targets that are a linear function of its features."""
    from accelerate import Accelerator

    from lens_hf.training.probe import fit_linear_probe, frozen_features

    torch.manual_seed(0)
    model = LensMAEForImageClassification(tiny_config(num_labels=1, problem_type="regression",
                                                      classifier_mode="linear_probe", regression_target_mean=-23.0,
                                                      regression_target_std=0.5))
    generator = torch.Generator().manual_seed(3)
    images = [torch.randn(16, 1, 32, 32, generator=generator) for _ in range(6)]
    features, _ = frozen_features(Accelerator(cpu=True), model, [{"pixel_values": x, "labels": torch.zeros(16)} for x in images])
    direction = torch.randn(features.shape[1], generator=generator)
    scores = (features - features.mean(0)) / features.std(0) @ direction
    targets = -23.0 + 0.5 * scores / scores.std()  # log10(m/eV)-like values, exactly linear in the features
    rows = [{"pixel_values": x, "labels": targets[16 * k:16 * (k + 1)]} for k, x in enumerate(images)]
    fit_linear_probe(Accelerator(cpu=True), model, rows[:4], rows[4:], l2_grid=(1e-7,))
    model.eval()
    with torch.no_grad():
        predicted = model(pixel_values=torch.cat(images[4:])).logits.squeeze(-1)
    assert (predicted - targets[64:]).abs().max() < 0.05  # held-out rows, spread of targets ~0.5


def test_lbfgs_probe_refuses_a_model_that_is_not_a_probe():
    from accelerate import Accelerator

    from lens_hf.training.probe import fit_linear_probe

    model = LensMAEForImageClassification(tiny_config(num_labels=3))
    with pytest.raises(ValueError, match="--mode linear_probe"):
        fit_linear_probe(Accelerator(cpu=True), model, [], [], output_dir=None)
