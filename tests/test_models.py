"""LensMAE models: shapes, gradients, determinism, save/load, cross-head weight loading, Auto classes, remote code."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from helpers import BLOCK_LENS_HF, run_python, tiny_config
from huggingface_hub.dataclasses import StrictDataclassFieldValidationError
from safetensors import safe_open
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForImageToImage,
    AutoModelForPreTraining,
    pipeline,
)

import lens_hf
from lens_hf import (
    LensImageProcessor,
    LensMAEConfig,
    LensMAEForImageClassification,
    LensMAEForPreTraining,
    LensMAEForSuperResolution,
    LensMAEModel,
)

GEOMETRIES = [(64, 8), (64, 4), (150, 10)]


def images(batch, channels, size, seed=0):
    return torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))


def build(cls, **overrides):
    torch.manual_seed(0)
    return cls(tiny_config(**overrides))


@pytest.mark.parametrize("image_size,patch_size", GEOMETRIES)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_class_runs_forward_and_backward(image_size, patch_size, channels):
    geometry = dict(image_size=image_size, patch_size=patch_size, num_channels=channels)
    x = images(2, channels, image_size)
    tokens = (image_size // patch_size) ** 2

    encoder = build(LensMAEModel, **geometry)
    features = encoder(x).last_hidden_state
    assert features.shape == (2, 1 + tokens, 32)

    pretrain = build(LensMAEForPreTraining, **geometry)
    out = pretrain(x)
    assert out.logits.shape == (2, tokens, patch_size**2 * channels)
    assert out.mask.sum(1).tolist() == [tokens - int(tokens * 0.25)] * 2
    out.loss.backward()
    assert pretrain.vit.embeddings.projection.weight.grad.abs().sum() > 0

    classifier = build(LensMAEForImageClassification, num_labels=3, **geometry)
    out = classifier(x, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3)
    out.loss.backward()
    assert classifier.vit.layers[0].fc1.weight.grad is not None

    sr = build(LensMAEForSuperResolution, **geometry)
    hr = images(2, channels, image_size * 2, seed=1)
    out = sr(x, labels=hr)
    assert out.reconstruction.shape == (2, channels, image_size * 2, image_size * 2)
    out.loss.backward()
    # The correction conv starts at zero (output == bicubic), so only it gets a gradient on the first step;
    # after one update the gradient reaches the encoder and the sub-pixel projection.
    assert sr.refine[-1].weight.grad.abs().sum() > 0
    torch.optim.SGD(sr.parameters(), lr=0.1).step()
    sr.zero_grad()
    sr(x, labels=hr).loss.backward()
    assert sr.to_subpixels.weight.grad.abs().sum() > 0
    assert sr.vit.layers[0].fc1.weight.grad.abs().sum() > 0


TUPLE_CASES = [  # class, config overrides, call keywords, the fields of the tuple in order (None fields left out)
    (LensMAEModel, {}, {}, ["last_hidden_state", "mask", "ids_restore"]),
    (LensMAEModel, {}, {"output_hidden_states": True, "output_attentions": True},
     ["last_hidden_state", "mask", "ids_restore", "hidden_states", "attentions"]),
    (LensMAEForPreTraining, {}, {}, ["loss", "logits", "mask", "ids_restore"]),
    (LensMAEForImageClassification, {"num_labels": 3}, {}, ["logits"]),
    (LensMAEForImageClassification, {"num_labels": 3}, {"labels": torch.tensor([0, 2]), "output_hidden_states": True},
     ["loss", "logits", "hidden_states"]),
    (LensMAEForSuperResolution, {}, {}, ["reconstruction"]),
    (LensMAEForSuperResolution, {}, {"labels": images(2, 1, 64, seed=1)}, ["loss", "reconstruction"]),
]


@pytest.mark.parametrize("cls, overrides, call, fields", TUPLE_CASES,
                         ids=[f"{case[0].__name__}-{'-'.join(case[3])}" for case in TUPLE_CASES])
def test_return_dict_false_gives_the_output_tuple(cls, overrides, call, fields):
    model = build(cls, attn_implementation="eager", **overrides).eval()
    x = images(2, 1, 32)
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(3))
    if cls in (LensMAEModel, LensMAEForPreTraining):
        call = {**call, "noise": noise}
    with torch.no_grad():
        output = model(x, **call)
        as_tuple = model(x, **call, return_dict=False)
        model.config.return_dict = False
        from_config = model(x, **call)
        forced_dict = model(x, **call, return_dict=True)
    assert type(output).__name__.endswith("Output") and list(output.keys()) == fields
    for result in (as_tuple, from_config):
        assert type(result) is tuple and len(result) == len(fields)
        for value, field in zip(result, fields):
            expected = output[field]
            if isinstance(expected, tuple):
                assert len(value) == len(expected) and all(torch.equal(a, b) for a, b in zip(value, expected))
            else:
                assert torch.equal(value, expected), field
    assert list(forced_dict.keys()) == fields  # an explicit return_dict=True wins over the config
    if cls is LensMAEForPreTraining:  # its figure helper asks for the dict whatever the config says
        assert torch.equal(model.reconstruct(x, noise=noise)["loss"], output.loss)


def test_fixed_noise_makes_the_mask_and_loss_deterministic():
    model = build(LensMAEForPreTraining).eval()
    x = images(3, 1, 32)
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(7))
    first, second = model(x, noise=noise), model(x, noise=noise)
    assert torch.equal(first.mask, second.mask) and torch.equal(first.logits, second.logits)
    assert torch.equal(first.loss, second.loss)
    kept = noise.argsort(1)[:, :4]  # 16 patches, 25% kept -> the 4 lowest noise values
    assert (first.mask.gather(1, kept) == 0).all() and first.mask.sum() == 3 * 12
    other = model(x, noise=torch.rand(3, 16, generator=torch.Generator().manual_seed(8)))
    assert not torch.equal(first.mask, other.mask)


def test_encoder_features_see_every_patch_in_order():
    model = build(LensMAEModel).eval()
    out = model(images(2, 1, 32))
    assert out.mask.sum() == 0
    assert torch.equal(out.ids_restore[0], torch.arange(16))
    hidden = model(images(2, 1, 32), output_hidden_states=True).hidden_states
    assert len(hidden) == 3


@pytest.mark.parametrize("loss", ["mse", "l1", "smooth_l1"])
def test_reconstruction_losses_and_norm_pix(loss):
    x = images(2, 1, 32)
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(0))
    model = build(LensMAEForPreTraining, reconstruction_loss=loss, norm_pix_loss=True).eval()
    out = model(x, noise=noise)
    target, mean, std = model.pixel_targets(x)
    per_patch = {"mse": (out.logits - target) ** 2, "l1": (out.logits - target).abs()}.get(loss)
    if per_patch is None:
        per_patch = torch.nn.functional.smooth_l1_loss(out.logits, target, reduction="none")
    expected = (per_patch.mean(-1) * out.mask).sum() / out.mask.sum()
    torch.testing.assert_close(out.loss, expected)
    parts = model.reconstruct(x, noise=noise)
    assert parts["pasted"].shape == x.shape
    visible = parts["mask"] == 0
    torch.testing.assert_close(parts["pasted"][visible], x[visible])


def test_attention_implementations_agree():
    x = images(2, 1, 32)
    eager = build(LensMAEModel, attn_implementation="eager").eval()
    sdpa = build(LensMAEModel, attn_implementation="sdpa").eval()
    sdpa.load_state_dict(eager.state_dict())
    torch.testing.assert_close(eager(x).last_hidden_state, sdpa(x).last_hidden_state, atol=1e-5, rtol=1e-5)
    attentions = eager(x, output_attentions=True).attentions
    assert len(attentions) == 2 and attentions[0].shape == (2, 2, 17, 17)


def test_math_attention_matches_sdpa_values_and_gradients():
    """The matmul-softmax path (scale on the query, softmax in the input dtype) is the same function as SDPA."""
    from lens_hf.models.lens_mae.modeling_lens_mae import eager_attention

    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 17, 8, generator=generator, requires_grad=True) for _ in range(3))
    module = torch.nn.Module()
    ours, weights = eager_attention(module, q, k, v, None, scaling=8**-0.5)
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2)
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 17))
    grads = torch.autograd.grad(ours.square().sum(), (q, k, v))
    reference_grads = torch.autograd.grad(reference.square().sum(), (q, k, v))
    for got, expected in zip(grads, reference_grads):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_bf16_cpu_training_takes_the_math_attention_and_inference_stays_on_sdpa(monkeypatch):
    import lens_hf.models.lens_mae.modeling_lens_mae as modeling

    calls = []
    original = modeling.eager_attention
    monkeypatch.setattr(modeling, "eager_attention", lambda *a, **k: calls.append("math") or original(*a, **k))
    model = build(LensMAEForPreTraining, attn_implementation="sdpa")
    x = images(2, 1, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(x).loss
        loss.backward()
    assert calls and set(calls) == {"math"} and torch.isfinite(loss)
    calls.clear()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
    model(x).loss.backward()  # fp32 training
    assert calls == []  # SDPA for bf16 inference and for fp32


def test_super_resolution_starts_at_bicubic():
    model = build(LensMAEForSuperResolution).eval()
    x = images(2, 1, 32)
    bicubic = torch.nn.functional.interpolate(x, size=(64, 64), mode="bicubic", align_corners=False)
    torch.testing.assert_close(model(x).reconstruction, bicubic)


def test_regression_and_binary_heads():
    regressor = build(LensMAEForImageClassification, num_labels=1, problem_type="regression")
    out = regressor(images(4, 1, 32), labels=torch.tensor([-23.0, -22.5, -24.0, -23.3]))
    assert out.logits.shape == (4, 1)
    torch.testing.assert_close(out.loss, ((out.logits.squeeze(-1) - torch.tensor([-23.0, -22.5, -24.0, -23.3])) ** 2).mean())
    scaled = build(LensMAEForImageClassification, num_labels=1, regression_target_mean=-23.0, regression_target_std=0.5)
    targets = torch.tensor([-23.0, -22.5, -24.0, -23.3])
    out = scaled(images(4, 1, 32), labels=targets)
    assert (out.logits - (-23.0)).abs().max() < 0.01  # tiny head init: predictions start at the target mean
    torch.testing.assert_close(out.loss, (((out.logits.squeeze(-1) - targets) / 0.5) ** 2).mean())
    finder = build(LensMAEForImageClassification, num_labels=2)
    out = finder(images(4, 1, 32), labels=torch.tensor([0, 1, 1, 0]))
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 1, 0])))
    with pytest.raises(ValueError, match=r"integers in \[0, 2\)"):
        finder(images(2, 1, 32), labels=torch.tensor([0, 2]))


def test_linear_probe_freezes_the_encoder():
    probe = build(LensMAEForImageClassification, num_labels=3, classifier_mode="linear_probe")
    assert isinstance(probe.head_norm, torch.nn.BatchNorm1d) and not probe.head_norm.affine
    assert not any(p.requires_grad for p in probe.vit.parameters())
    assert all(p.requires_grad for p in probe.classifier.parameters())
    probe.train()
    assert probe.training and not probe.vit.training
    before = {k: v.clone() for k, v in probe.vit.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in probe.parameters() if p.requires_grad], lr=0.1)
    probe(images(4, 1, 32), labels=torch.tensor([0, 1, 2, 0])).loss.backward()
    optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in probe.vit.state_dict().items())


def state_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize(
    "cls,extra",
    [
        (LensMAEModel, {}),
        (LensMAEForPreTraining, {}),
        (LensMAEForImageClassification, {"num_labels": 3}),
        (LensMAEForImageClassification, {"num_labels": 3, "classifier_mode": "linear_probe"}),
        (LensMAEForSuperResolution, {}),
    ],
)
def test_save_load_round_trip_is_bit_exact(tmp_path, cls, extra):
    model = build(cls, **extra).eval()
    if isinstance(model, LensMAEForImageClassification) and model.is_linear_probe:
        model.head_norm.running_mean.normal_()  # non-trivial buffers must survive too
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth")) == [
        "model.safetensors"
    ]
    loaded = cls.from_pretrained(tmp_path).eval()
    state_equal(model, loaded)
    x = images(2, 1, 32)
    first, second = model(x), loaded(x)
    key = {"LensMAEModel": "last_hidden_state", "LensMAEForSuperResolution": "reconstruction"}.get(cls.__name__, "logits")
    if cls is LensMAEForPreTraining:
        noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(0))
        first, second = model(x, noise=noise), loaded(x, noise=noise)
    assert torch.equal(first[key], second[key])


@pytest.mark.parametrize("head", [LensMAEModel, LensMAEForImageClassification, LensMAEForSuperResolution])
def test_every_head_receives_all_pretrained_encoder_weights(tmp_path, head):
    pretrained = build(LensMAEForPreTraining)
    pretrained.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        saved = {k: f.get_tensor(k) for k in f.keys() if k.startswith("vit.")}
    assert len(saved) == len(pretrained.vit.state_dict())
    torch.manual_seed(123)  # a different seed: random init would not coincide
    loaded = head.from_pretrained(tmp_path, num_labels=3) if head is LensMAEForImageClassification else head.from_pretrained(tmp_path)
    encoder = loaded if head is LensMAEModel else loaded.vit
    for key, value in saved.items():
        assert torch.equal(encoder.state_dict()[key.removeprefix("vit.")], value), key


def test_auto_classes_resolve_to_lens_mae(tmp_path):
    build(LensMAEForPreTraining).save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LensMAEConfig)
    assert type(AutoModel.from_pretrained(tmp_path)) is LensMAEModel
    assert type(AutoModelForPreTraining.from_pretrained(tmp_path)) is LensMAEForPreTraining
    assert type(AutoModelForImageClassification.from_pretrained(tmp_path, num_labels=3)) is LensMAEForImageClassification
    assert type(AutoModelForImageToImage.from_pretrained(tmp_path)) is LensMAEForSuperResolution
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {
        "AutoConfig",
        "AutoModel",
        "AutoModelForPreTraining",
        "AutoModelForImageClassification",
        "AutoModelForImageToImage",
    }
    assert {"configuration_lens_mae.py", "modeling_lens_mae.py"} <= {p.name for p in tmp_path.iterdir()}


def save_classifier(folder):
    labels = ["axion", "cdm", "no_sub"]
    model = build(
        LensMAEForImageClassification,
        num_labels=3,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    ).eval()
    with torch.no_grad():
        model.classifier.weight.normal_()  # distinct scores per class, not ~uniform
    model.save_pretrained(folder)
    LensImageProcessor(size=32).save_pretrained(folder)
    return model


def test_pipeline_classifies_a_numpy_lensing_image(tmp_path):
    model = save_classifier(tmp_path)
    image = np.random.default_rng(0).poisson(3.0, size=(48, 48)).astype(np.float32)
    classify = pipeline("image-classification", model=str(tmp_path), trust_remote_code=True)
    result = classify(image)
    assert [r["label"] for r in result] and {r["label"] for r in result} == {"axion", "cdm", "no_sub"}
    pixel_values = LensImageProcessor(size=32)(image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        probabilities = model(pixel_values).logits.softmax(-1)[0]
    best = int(probabilities.argmax())
    assert result[0]["label"] == model.config.id2label[best]
    assert result[0]["score"] == pytest.approx(float(probabilities[best]), rel=1e-5)


def test_remote_code_loads_without_lens_hf(tmp_path):
    folder = tmp_path / "clf"
    model = save_classifier(folder)
    x = images(2, 1, 32)
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "logits.npy", model(x).logits.detach().numpy())
    code = BLOCK_LENS_HF + f"""
import importlib.util, numpy as np, torch
try:
    import lens_hf
    raise SystemExit("lens_hf should not be importable here")
except ImportError:
    pass
from transformers import AutoModelForImageClassification, AutoImageProcessor, AutoModel
model = AutoModelForImageClassification.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
logits = model(torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))).logits.detach().numpy()
assert np.array_equal(logits, np.load({str(tmp_path / 'logits.npy')!r})), np.abs(logits - np.load({str(tmp_path / 'logits.npy')!r})).max()
processor = AutoImageProcessor.from_pretrained({str(folder)!r}, trust_remote_code=True)
assert type(processor).__name__ == "LensImageProcessor", type(processor)
assert processor(np.ones((40, 40)), return_tensors="pt")["pixel_values"].shape == (1, 1, 32, 32)
encoder = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True)
assert type(encoder).__name__ == "LensMAEModel"
print("REMOTE_OK")
"""
    assert "REMOTE_OK" in run_python(code, cwd=tmp_path).stdout


def populate_hub_cache(hf_home, repo_id, folder, commit="0" * 40):
    """Lay out `folder` as the Hub cache does (blobs by sha256, a snapshot of symlinks, refs/main)."""
    repo_dir = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    blobs, snapshot = repo_dir / "blobs", repo_dir / "snapshots" / commit
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blobs / digest)
        (snapshot / file.name).symlink_to(blobs / digest)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)


def test_prepopulated_offline_hub_cache_serves_from_pretrained(tmp_path):
    folder = tmp_path / "ckpt"
    model = build(LensMAEForPreTraining).eval()
    model.save_pretrained(folder)
    hf_home = tmp_path / "hf_home"
    populate_hub_cache(hf_home, "org/lens-mae", folder)
    x = images(2, 1, 32)
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "features.npy", model.vit(x).last_hidden_state.detach().numpy())
    check = f"""
import numpy as np, torch
from transformers import AutoModel
model = AutoModel.from_pretrained("org/lens-mae", {{trust}}).eval()
assert type(model).__name__ == "LensMAEModel", type(model)
features = model(torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))).last_hidden_state.detach().numpy()
assert np.array_equal(features, np.load({str(tmp_path / 'features.npy')!r}))
print("CACHE_OK", type(model).__module__)
"""
    env = {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    with_lens_hf = run_python("import lens_hf\n" + check.replace("{trust}", ""), env=env).stdout
    assert "CACHE_OK lens_hf.models" in with_lens_hf
    without = run_python(BLOCK_LENS_HF + check.replace("{trust}", "trust_remote_code=True"), env=env, cwd=tmp_path).stdout
    assert "CACHE_OK transformers_modules" in without


def test_bad_inputs_give_clear_errors():
    model = build(LensMAEForPreTraining)
    with pytest.raises(ValueError, match=r"3 channel\(s\) but the model expects num_channels=1"):
        model(images(1, 3, 32))
    with pytest.raises(ValueError, match=r"48x48 px but the model expects 32x32"):
        model(images(1, 1, 48))
    bad = images(2, 1, 32)
    bad[1, 0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or Inf pixels \(batch indices \[1\]\)"):
        model(bad)
    with pytest.raises(ValueError, match=r"noise must have shape"):
        model(images(2, 1, 32), noise=torch.rand(2, 5))
    with pytest.raises(ValueError, match=r"labels must have shape"):
        build(LensMAEForSuperResolution)(images(1, 1, 32), labels=images(1, 1, 32))


def test_config_rejects_invalid_values():
    with pytest.raises(ValueError, match=r"Valid patch sizes for 150 px: \[2, 3, 5, 6, 10, 15, 25, 30, 50, 75\]"):
        LensMAEConfig(image_size=150, patch_size=16)
    with pytest.raises(ValueError, match=r"unknown field `pach_size`. Did you mean `patch_size`"):
        LensMAEConfig(pach_size=8)
    with pytest.raises(StrictDataclassFieldValidationError, match="num_channels"):
        LensMAEConfig(num_channels="1")
    with pytest.raises(StrictDataclassFieldValidationError, match="reconstruction_loss"):
        LensMAEConfig(reconstruction_loss="huber")
    with pytest.raises(ValueError, match="divisible by num_attention_heads"):
        LensMAEConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match=r"mask_ratio must be in \[0, 1\)"):
        LensMAEConfig(mask_ratio=1.0)
    assert LensMAEConfig(image_size=150, patch_size=10).num_patches == 225


def test_config_round_trips_through_json(tmp_path):
    config = tiny_config(reconstruction_loss="l1", classifier_mode="linear_probe", sr_scale=3, num_labels=5)
    config.save_pretrained(tmp_path)
    loaded = LensMAEConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()


def test_registration_is_what_import_lens_hf_does():
    assert AutoConfig.for_model("lens_mae").__class__ is LensMAEConfig
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

    assert IMAGE_PROCESSOR_MAPPING[LensMAEConfig]["pil"] is LensImageProcessor
    assert lens_hf.LensMAEConfig.model_type == "lens_mae"
