"""lens_hf.metrics.plots: every plot is a real PNG of the expected size, and bad input is refused."""
import matplotlib.image
import numpy as np
import pytest
import torch

from lens_hf.metrics import functional, plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path, width_inches, height_inches):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (round(height_inches * plots.DPI), round(width_inches * plots.DPI))
    assert pixels[..., :3].std() > 0.05  # something was drawn, not a blank canvas


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_roc_confusion_and_scatter_plots(tmp_path, rng):
    labels = rng.integers(0, 3, 90)
    probabilities = rng.dirichlet(np.ones(3), 90) + 0.5 * np.eye(3)[labels]
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    result = functional.classification_metrics(probabilities, labels, ["no_sub", "cdm", "axion"])
    roc = plots.plot_roc_curves(result["roc_curves"], tmp_path / "nested" / "roc.png")
    _assert_png(roc, 5.0, 4.5)
    log_roc = plots.plot_roc_curves({"lens": functional.roc_curve(labels == 1, probabilities[:, 1])},
                                    tmp_path / "roc_log.png", log_fpr=True)
    _assert_png(log_roc, 5.0, 4.5)
    confusion = plots.plot_confusion_matrix(result["confusion_matrix"], result["class_names"], tmp_path / "cm.png")
    _assert_png(confusion, 1.2 + 0.9 * 3 + 1.0, 1.2 + 0.9 * 3)
    truth = rng.uniform(-24, -22, 100)
    scatter = plots.plot_regression_scatter(truth, torch.tensor(truth + rng.normal(0, 0.1, 100)), tmp_path / "s.png")
    _assert_png(scatter, 4.8, 4.5)


def test_image_grids_and_loss_curves(tmp_path, rng):
    hr = rng.random((5, 1, 32, 32))
    lr = hr.reshape(5, 1, 16, 2, 16, 2).mean(axis=(3, 5))
    bicubic = functional.bicubic_upsample(lr, (32, 32))
    grid = plots.plot_sr_grid(lr, bicubic, hr * 0.9, hr, tmp_path / "sr.png", num_examples=3)
    _assert_png(grid, 2.2 * 4, 2.2 * 3 + 0.4)
    mask = (rng.random((2, 16)) < 0.75).astype(int)
    three_band = rng.random((2, 3, 32, 32))
    mae = plots.plot_reconstruction_grid(three_band, mask, three_band * 0.8, 8, tmp_path / "mae.png")
    _assert_png(mae, 2.2 * 3, 2.2 * 2 + 0.4)
    losses = plots.plot_loss_curves({"train": np.exp(-np.arange(40) / 10),
                                     "validation": (np.arange(0, 40, 10), np.exp(-np.arange(0, 40, 10) / 12))},
                                    tmp_path / "loss.png", log_y=True)
    _assert_png(losses, 5.5, 3.8)


def test_mask_patches_follows_vitmae_patch_order(rng):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    config = ViTMAEConfig(image_size=12, patch_size=4, num_channels=1, hidden_size=8, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=8, decoder_hidden_size=8,
                          decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=8)
    patchify = ViTMAEForPreTraining(config).patchify
    images = rng.random((2, 1, 12, 12))
    mask = np.array([[1, 0, 0, 0, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 0, 1, 0, 0]])
    masked = plots.mask_patches(images, mask, patch_size=4)
    patches = patchify(torch.from_numpy(masked)).numpy()
    assert np.isnan(patches[mask == 1]).all()
    np.testing.assert_array_equal(patches[mask == 0], patchify(torch.from_numpy(images)).numpy()[mask == 0])


def test_plots_leave_pyplot_alone(tmp_path):
    import matplotlib.pyplot as plt

    backend = plt.get_backend()
    plots.plot_loss_curves({"train": [3.0, 2.0, 1.5]}, tmp_path / "loss.png")
    assert plt.get_fignums() == [] and plt.get_backend() == backend


def test_plot_input_errors(tmp_path, rng):
    images = rng.random((3, 1, 16, 16))
    with pytest.raises(ValueError, match="should end in .png"):
        plots.plot_loss_curves({"train": [1.0, 0.5]}, tmp_path / "loss.pdf")
    with pytest.raises(ValueError, match="same number of examples"):
        plots.plot_sr_grid(images[:2], images, images, images, tmp_path / "sr.png")
    with pytest.raises(ValueError, match=r"`mask` must be \(N, num_patches\) = \(3, 4\)"):
        plots.plot_reconstruction_grid(images, np.ones((3, 16)), images, 8, tmp_path / "mae.png")
    with pytest.raises(ValueError, match="not a multiple of patch_size 5"):
        plots.mask_patches(images, np.ones((3, 9)), 5)
    with pytest.raises(ValueError, match="2 names for a 3-class matrix"):
        plots.plot_confusion_matrix(np.eye(3), ["a", "b"], tmp_path / "cm.png")
    with pytest.raises(ValueError, match="must be square"):
        plots.plot_confusion_matrix(np.ones((2, 3)), ["a", "b"], tmp_path / "cm.png")
    with pytest.raises(ValueError, match="needs 'fpr' and 'tpr'"):
        plots.plot_roc_curves({"a": {"fpr": [0, 1]}}, tmp_path / "roc.png")
    with pytest.raises(ValueError, match="equal, non-empty 1-D"):
        plots.plot_loss_curves({"train": ([0, 1, 2], [1.0, 0.5])}, tmp_path / "loss.png")
    with pytest.raises(ValueError, match="NaN/inf"):
        plots.plot_regression_scatter([1.0, 2.0], [1.0, float("nan")], tmp_path / "s.png")
    assert not any(tmp_path.iterdir())  # nothing half-written
