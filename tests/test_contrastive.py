"""SimCLR: the NT-Xent loss against a hand-computed case and across processes, the physics-respecting views,
the view-retrieval metric, and pretrain_contrastive.py end to end (ResNet-18 and LensMAE backbones): the saved
folder is the encoder alone, loads as a plain transformers model, evaluates to the stored figure, resumes
exactly and starts a probe / finetune with its weights."""

import json
import math
import socket

import numpy as np
import pytest
import torch
from helpers import assert_resume_redoes_the_last_steps, load_script
from safetensors import safe_open

from lens_hf.data import LensViewAugmentation
from lens_hf.metrics import functional
from lens_hf.tasks.contrastive import nt_xent_loss

A = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
B = torch.tensor([[0.6, 0.8], [0.8, -0.6]])


def test_nt_xent_matches_a_hand_computed_case():
    # Cosine similarities (all vectors unit): a1.a2 = 0, a1.b1 = 0.6, a1.b2 = 0.8, a2.b1 = 0.8, a2.b2 = -0.6,
    # b1.b2 = 0. Anchor a1: positive b1 against {a2, b1, b2}; a2: b2 against {a1, b1, b2}; b1: a1 against
    # {a1, a2, b2}; b2: a2 against {a1, a2, b1}.
    t = 0.5
    e = lambda s: math.exp(s / t)  # noqa: E731
    by_hand = [
        -math.log(e(0.6) / (e(0.0) + e(0.6) + e(0.8))),
        -math.log(e(-0.6) / (e(0.0) + e(0.8) + e(-0.6))),
        -math.log(e(0.6) / (e(0.6) + e(0.8) + e(0.0))),
        -math.log(e(-0.6) / (e(0.8) + e(-0.6) + e(0.0))),
    ]
    assert nt_xent_loss(A, B, t).item() == pytest.approx(sum(by_hand) / 4, rel=1e-6)
    assert nt_xent_loss(3 * A, B / 2, t).item() == pytest.approx(sum(by_hand) / 4, rel=1e-6)  # cosine: scale-free
    aligned = nt_xent_loss(A, A, 0.1).item()
    assert aligned < nt_xent_loss(A, B, 0.1).item()  # agreeing views cost less
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(A, B, 0.0)
    with pytest.raises(ValueError, match="equal shapes"):
        nt_xent_loss(A, B[:1], 0.5)


def _two_process_worker(rank, port, embeddings, weight, results):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        projection = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        projection.weight.data.copy_(weight)
        half = embeddings.shape[1] // 2
        local = embeddings[:, rank * half:(rank + 1) * half]  # this process's images, both views
        loss = nt_xent_loss(projection(local[0]), projection(local[1]), 0.3)
        loss.backward()
        grad = projection.weight.grad.clone()
        dist.all_reduce(grad)  # what DistributedDataParallel does: the mean of the processes' gradients
        value = loss.detach().clone()
        dist.all_reduce(value)
        results[rank] = (value.item() / 2, (grad / 2).numpy())
    finally:
        dist.destroy_process_group()


def test_nt_xent_with_two_processes_equals_one_process_with_the_whole_batch():
    """2 processes x batch 4 give the loss and the gradient of 1 process x batch 8: the negatives come from both
    processes and the gathered rows carry their gradient back to the process that made them."""
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(2, 8, 5, generator=generator)  # (view, image, feature)
    weight = torch.randn(4, 5, generator=generator)
    projection = torch.nn.Linear(5, 4, bias=False)
    projection.weight.data.copy_(weight)
    loss = nt_xent_loss(projection(embeddings[0]), projection(embeddings[1]), 0.3)
    loss.backward()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = torch.multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        results = manager.dict()
        processes = [context.Process(target=_two_process_worker, args=(rank, port, embeddings, weight, results))
                     for rank in range(2)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(120)
        assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]
        results = dict(results)
    for rank in range(2):
        value, grad = results[rank]
        assert value == pytest.approx(loss.item(), rel=1e-5)
        np.testing.assert_allclose(grad, projection.weight.grad.numpy(), rtol=1e-4, atol=1e-6)
    # one process's images alone (no negatives from the other) give another loss: the comparison can fail
    detached = nt_xent_loss(projection(embeddings[0, :4]), projection(embeddings[1, :4]), 0.3)
    assert detached.item() != pytest.approx(loss.item(), rel=1e-3)


def test_views_respect_the_physics_and_are_reproducible():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32] - 15.5
    ring = np.exp(-((np.hypot(yy, xx) - 8) ** 2) / 4)[None, None] * (1 + 0.1 * rng.random((4, 1, 32, 32)))
    images = torch.tensor(ring, dtype=torch.float32)

    def view(augmentation, seed=0):
        return augmentation(images, torch.Generator().manual_seed(seed))

    nothing = LensViewAugmentation(d4=False, max_shift=0, max_blur_sigma=0, max_noise=0, flux_scale=0)
    assert torch.equal(view(nothing), images)
    full = LensViewAugmentation()
    assert torch.equal(view(full, 3), view(full, 3)) and not torch.equal(view(full, 3), view(full, 4))
    assert view(full).shape == images.shape  # no crop
    # blur and sub-pixel shifts keep the flux of a ring well inside the frame (nothing cut away)
    moved = view(LensViewAugmentation(d4=False, max_shift=1.0, max_blur_sigma=0.75, max_noise=0, flux_scale=0))
    np.testing.assert_allclose(moved.sum((1, 2, 3)), images.sum((1, 2, 3)), rtol=1e-4)
    assert not torch.allclose(moved, images, atol=1e-3)
    # flux scaling: a per-image factor within 1 +- 0.2
    scaled = view(LensViewAugmentation(d4=False, max_shift=0, max_blur_sigma=0, max_noise=0, flux_scale=0.2))
    ratio = scaled.sum((1, 2, 3)) / images.sum((1, 2, 3))
    assert ((ratio > 0.8) & (ratio < 1.2)).all() and ratio.std() > 0
    # noise: zero-mean, at most 5% of the image's standard deviation
    noisy = view(LensViewAugmentation(d4=False, max_shift=0, max_blur_sigma=0, max_noise=0.05, flux_scale=0))
    residual = noisy - images
    assert 0 < residual.std() < 0.05 * images.std() and abs(residual.mean()) < 0.01 * images.std()
    # an integer shift of a point source moves it by that many pixels
    point = torch.zeros(1, 1, 9, 9)
    point[0, 0, 4, 4] = 1
    from lens_hf.data.transforms import _translate

    shifted = _translate(point, torch.tensor([[1.0, 0.0]]))
    assert shifted[0, 0, 4, 5] == pytest.approx(1.0, abs=1e-5)
    for bad, message in ((dict(max_noise=-1), "max_noise"), (dict(flux_scale=1.5), "flux_scale"),
                         (dict(max_shift=float("nan")), "max_shift")):
        with pytest.raises(ValueError, match=message):
            LensViewAugmentation(**bad)
    with pytest.raises(ValueError, match="batch, channels"):
        full(images[0], torch.Generator())


def test_view_retrieval_hand_computed():
    # image 0's views agree, image 1's second view points at image 2's first, image 2's at image 1's
    a = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    b = [[1, 0, 0], [0, 0.1, 1], [0, 1, 0.1]]
    result = functional.view_retrieval_metrics(a, b)
    assert result["top1"] == pytest.approx(1 / 3)
    cos = 0.1 / math.sqrt(1.01)
    assert result["positive_cosine"] == pytest.approx((1 + 2 * cos) / 3)
    assert result["negative_cosine"] == pytest.approx((2 / math.sqrt(1.01)) / 6)
    assert result["chance_top1"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="equal shapes"):
        functional.view_retrieval_metrics(a, b[:2])


TINY_RUN = ["--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--disable_progress_bar",
            "true", "--report_to", "none", "--save_steps", "0"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("contrastive")
    return root, ["--num_train", "48", "--num_validation", "16", "--num_test", "24", "--crop_size", "32",
                  "--cache_dir", str(root / "cache"), "--dataset_seed", "3"]


@pytest.mark.parametrize("backbone", ["resnet18", "lens_mae"])
def test_pretrain_contrastive_saves_an_encoder_that_loads_evaluates_and_finetunes(pool, backbone):
    from transformers import AutoModel, ResNetForImageClassification

    from lens_hf import LensMAEForImageClassification

    root, data = pool
    out = root / backbone
    extra = ["--model_preset", "tiny", "--patch_size", "8"] if backbone == "lens_mae" else []
    metrics = load_script("pretrain_contrastive.py").main([*data, *TINY_RUN, "--backbone", backbone, *extra,
                                                            "--max_steps", "3", "--output_dir", str(out)])
    config = json.loads((out / "config.json").read_text())
    assert config["lens_task"] == "contrastive"
    assert config["architectures"] == [{"resnet18": "ResNetModel", "lens_mae": "LensMAEModel"}[backbone]]
    assert config["lens_contrastive"]["temperature"] == 0.2
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        keys = list(weights.keys())
        saved = {k: weights.get_tensor(k) for k in keys}
    assert keys and not any("projection." in k and not k.startswith("embeddings") for k in keys)  # head dropped
    encoder = AutoModel.from_pretrained(out)
    assert type(encoder).__name__ == config["architectures"][0]
    for key, value in encoder.state_dict().items():
        if key in saved:
            assert torch.equal(value, saved[key]), key
    assert 0 <= metrics["test"]["top1"] <= 1 and metrics["test"]["num_images"] == 24

    stored = json.loads((out / "metrics.json").read_text())["summary"]["test"]
    again = load_script("evaluate.py").main([*data, "--model_name_or_path", str(out), "--split", "test",
                                             "--refresh_card", "false"])
    assert again["test"]["top1"] == stored["top1"]
    assert again["test"]["positive_cosine"] == pytest.approx(stored["positive_cosine"], rel=1e-5)

    # the folder starts a classifier with its encoder weights
    head = ["--task", "classification", "--max_steps", "1", "--output_dir", str(root / f"{backbone}_finetune")]
    if backbone == "resnet18":
        classifier = ResNetForImageClassification.from_pretrained(out, num_labels=3)
        reference = {f"resnet.{k}": v for k, v in encoder.state_dict().items()}
        load_script("finetune.py").main([*data, *TINY_RUN, *head, "--architecture", "resnet18", "--mode",
                                         "finetune", "--model_name_or_path", str(out)])
    else:
        classifier = LensMAEForImageClassification.from_pretrained(out, num_labels=3)
        reference = {f"vit.{k}": v for k, v in encoder.state_dict().items()}
        load_script("finetune.py").main([*data, *TINY_RUN, *head, "--mode", "finetune", "--model_name_or_path",
                                         str(out)])
    loaded = classifier.state_dict()
    for key, value in reference.items():
        assert torch.equal(loaded[key], value), key
    assert json.loads((root / f"{backbone}_finetune" / "config.json").read_text())["lens_task"] == "classification"


def test_resnet_linear_probe_from_a_contrastive_encoder_folds_the_standardisation(pool):
    """The L-BFGS probe of a ResNet fits on standardised frozen features and folds the standardisation into
    the plain Linear head: the saved classifier's logits are the fitted probe's, the backbone is unchanged."""
    from transformers import ResNetForImageClassification, ResNetModel

    root, data = pool
    encoder_dir = root / "resnet18"
    if not (encoder_dir / "config.json").exists():
        load_script("pretrain_contrastive.py").main([*data, *TINY_RUN, "--max_steps", "2", "--output_dir",
                                                     str(encoder_dir)])
    out = root / "resnet_probe"
    metrics = load_script("finetune.py").main([*data, *TINY_RUN, "--architecture", "resnet18", "--mode",
                                               "linear_probe", "--probe_solver", "lbfgs", "--model_name_or_path",
                                               str(encoder_dir), "--output_dir", str(out)])
    probe = ResNetForImageClassification.from_pretrained(out).eval()
    encoder = ResNetModel.from_pretrained(encoder_dir).eval()
    for key, value in encoder.state_dict().items():
        assert torch.equal(probe.resnet.state_dict()[key], value), key
    run = json.loads((out / "run_config.json").read_text())["derived"]["head_solver"]
    assert run["solver"] == "lbfgs" and run["train_rows"] == 48
    # the folded head scores exactly what metrics.json recorded
    again = load_script("evaluate.py").main([*data, "--model_name_or_path", str(out), "--split", "test",
                                             "--refresh_card", "false"])
    assert again["test"]["accuracy"] == metrics["test"]["accuracy"]
    with pytest.raises(ValueError, match="--probe_solver lbfgs"):
        load_script("finetune.py").main([*data, *TINY_RUN, "--architecture", "resnet18", "--mode", "linear_probe",
                                         "--model_name_or_path", str(encoder_dir), "--output_dir", str(root / "x")])


def test_contrastive_pretraining_resumes_exactly(pool):
    """Resuming from the step-2 checkpoint of a 4-step run redoes steps 3-4 exactly (the views come from the
    step's generator, the projection head is in the checkpoint)."""
    root, data = pool
    assert_resume_redoes_the_last_steps(
        load_script("pretrain_contrastive.py").main,
        [*data, "--per_device_train_batch_size", "8", "--disable_progress_bar", "true", "--report_to", "none",
         "--learning_rate", "1e-3"], root / "resume", "model.safetensors")


def test_contrastive_script_rejects_bad_settings(pool):
    root, data = pool
    script = load_script("pretrain_contrastive.py")
    with pytest.raises(ValueError, match="--backbone must be one of"):
        script.main([*data, "--backbone", "vgg", "--output_dir", str(root / "bad")])
    with pytest.raises(ValueError, match="max_noise"):
        script.main([*data, "--max_noise", "-0.1", "--output_dir", str(root / "bad")])
    with pytest.raises(ValueError, match="temperature"):
        script.main([*data, *TINY_RUN, "--temperature", "0", "--max_steps", "1", "--output_dir", str(root / "bad")])
    assert not (root / "bad" / "config.json").exists()
