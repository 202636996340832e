"""The MAE reconstruction picture: visible patches pasted from the input, predictions only where the mask was, in
pixel units under norm_pix_loss, the mask outlined, and one colour scale per row."""
import matplotlib.image
import numpy as np
import pytest
import torch
from helpers import tiny_config
from matplotlib.collections import LineCollection

from lens_hf import LensMAEForPreTraining
from lens_hf.metrics import plots
from lens_hf.tasks.pretraining import PretrainingTask, evaluation_noise, predicted_images

# a 3x3 grid: an L of three patches (top-left two, the centre one) and, touching it at a corner, the bottom-right
GRID_MASK = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1])


def pixel_mask(mask, patch_size, grid):
    """Masked pixels of one image, written out patch by patch (row-major patch order), independent of plots.py."""
    pixels = np.zeros((grid * patch_size, grid * patch_size), dtype=bool)
    for index, hidden in enumerate(mask):
        row, column = divmod(index, grid)
        pixels[row * patch_size:(row + 1) * patch_size, column * patch_size:(column + 1) * patch_size] = hidden
    return pixels


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def captured(monkeypatch):
    """The figures the plot functions save, to read back what was drawn."""
    figures = []
    save = plots._save

    def keep(figure, path):
        figures.append(figure)
        return save(figure, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def test_paste_is_the_input_on_visible_patches_and_the_prediction_on_masked_ones(rng):
    masks = np.array([GRID_MASK, [0, 1, 0, 1, 0, 1, 0, 1, 0]])
    inputs = rng.random((2, 2, 12, 12))
    reconstructions = -10 - rng.random((2, 2, 12, 12))  # never equal to an input pixel
    pasted = plots.paste_visible_patches(inputs, masks, reconstructions, patch_size=4)
    assert pasted.shape == inputs.shape
    for image in range(2):
        hidden = np.broadcast_to(pixel_mask(masks[image], 4, 3), (2, 12, 12))
        np.testing.assert_array_equal(pasted[image][~hidden], inputs[image][~hidden])
        np.testing.assert_array_equal(pasted[image][hidden], reconstructions[image][hidden])
    # one image: (C, H, W) and (H, W) with a (num_patches,) mask, shape kept
    one = plots.paste_visible_patches(inputs[0], masks[0], reconstructions[0], 4)
    np.testing.assert_array_equal(one, pasted[0])
    flat = plots.paste_visible_patches(inputs[0, 0], masks[0], torch.from_numpy(reconstructions[0, 0]), 4)
    np.testing.assert_array_equal(flat, pasted[0, 0])
    # the masked input: NaN exactly on the masked patches
    blanked = plots.mask_patches(inputs[0], masks[0], 4)
    hidden = np.broadcast_to(pixel_mask(masks[0], 4, 3), (2, 12, 12))
    assert np.isnan(blanked[hidden]).all()
    np.testing.assert_array_equal(blanked[~hidden], inputs[0][~hidden])


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_pictured_predictions_are_the_models_own_pixel_units(norm_pix_loss):
    torch.manual_seed(0)
    model = LensMAEForPreTraining(tiny_config(norm_pix_loss=norm_pix_loss, num_channels=3)).eval()
    pixel_values = 5 + 3 * torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    batch = {"pixel_values": pixel_values, "row_index": torch.arange(3)}
    with torch.no_grad():
        outputs = {key: value.numpy() for key, value in
                   PretrainingTask().evaluation_outputs(model, batch, model, seed=0).items()}
        predicted = predicted_images(outputs, model)
        reference = model.reconstruct(pixel_values, noise=evaluation_noise(0, [0, 1, 2], 16, "cpu"))  # same masks
    np.testing.assert_allclose(predicted, reference["prediction"].numpy(), rtol=1e-5, atol=1e-5)
    pasted = plots.paste_visible_patches(outputs["inputs"], outputs["mask"], predicted, 8)
    np.testing.assert_allclose(pasted, reference["pasted"].numpy(), rtol=1e-5, atol=1e-5)
    if norm_pix_loss:  # the targets are per-patch normalised: not the picture's scale
        targets = model.unpatchify(torch.from_numpy(outputs["targets"])).numpy()
        assert abs(targets.mean()) < 0.1 and abs(outputs["inputs"].mean() - 6.5) < 0.2


def test_outline_is_the_border_of_the_masked_region():
    outline = plots.mask_outline_pixels(GRID_MASK, 3, (9, 9))
    expected = np.zeros((9, 9), dtype=bool)
    expected[0:3, 0:6] = True  # the two top patches...
    expected[3:6, 3:6] = True  # ...and the centre one below the second
    expected[1, 1:5] = False  # pixels whose 4 neighbours are all masked: across the shared borders...
    expected[2, 3:5] = False
    expected[3:5, 4] = False
    expected[6:9, 6:9] = True  # the bottom-right patch, all but its centre
    expected[7, 7] = False
    np.testing.assert_array_equal(outline, expected)
    np.testing.assert_array_equal(plots.mask_outline_pixels(GRID_MASK[None], 3, (9, 9))[0], expected)
    np.testing.assert_array_equal(plots.masked_pixels(GRID_MASK, 3, (9, 9)), pixel_mask(GRID_MASK, 3, 3))

    def edge(x0, y0, x1, y1):  # in patch units -> pixel edges
        return tuple(3 * value - 0.5 for value in (x0, y0, x1, y1))

    expected_segments = {  # none between (0, 0) and (0, 1), nor between (0, 1) and (1, 1)
        edge(0, 0, 1, 0), edge(0, 0, 0, 1), edge(0, 1, 1, 1),  # patch (row 0, column 0)
        edge(1, 0, 2, 0), edge(2, 0, 2, 1),  # patch (0, 1)
        edge(1, 1, 1, 2), edge(2, 1, 2, 2), edge(1, 2, 2, 2),  # patch (1, 1)
        edge(2, 2, 3, 2), edge(2, 3, 3, 3), edge(2, 2, 2, 3), edge(3, 2, 3, 3),  # patch (2, 2)
    }
    segments = plots.mask_outline_segments(GRID_MASK, 3, (9, 9))
    assert segments.shape == (12, 2, 2)
    assert {tuple(segment.ravel()) for segment in segments} == expected_segments
    batch = plots.mask_outline_segments(np.array([GRID_MASK, np.zeros(9)]), 3, (9, 9))
    assert len(batch) == 2 and batch[1].shape == (0, 2, 2)
    np.testing.assert_array_equal(batch[0], segments)


def _panel_colour(figure, axis, pixels, row, column):
    """The PNG colour at the centre of image pixel (row, column) of `axis`."""
    x, y = axis.transData.transform((column, row))
    return pixels[int(round(figure.bbox.height - y)), int(round(x)), :3]


def test_a_row_shares_the_inputs_colour_scale_and_the_mask_is_outlined(tmp_path, rng, captured):
    inputs = rng.random((2, 1, 32, 32))
    reconstructions = 3 * inputs + 5  # outside the input's range: a per-image scale would colour visible pixels apart
    masks = (rng.random((2, 16)) < 0.6).astype(int)
    masks[:, 0], masks[:, 5] = 0, 1
    path = plots.plot_reconstruction_grid(inputs, masks, reconstructions, 8, tmp_path / "mae.png")
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (round((2.2 * 2 + 0.4) * plots.DPI), round(2.2 * 3 * plots.DPI))
    (figure,) = captured
    panels = [axis for axis in figure.axes if axis.get_images() and axis.get_label() != "<colorbar>"]
    assert len(panels) == 6 and len(figure.axes) == 8  # 2 rows x 3 images, one colour bar per row
    for row in range(2):
        images = [axis.get_images()[0] for axis in panels[3 * row:3 * row + 3]]
        limits = (inputs[row].min(), inputs[row].max())
        for image in images:
            np.testing.assert_allclose(image.get_clim(), limits)
        hidden = pixel_mask(masks[row], 8, 4)
        drawn_input, drawn_masked, drawn_reconstruction = (np.ma.filled(image.get_array(), np.nan) for image in images)
        np.testing.assert_array_equal(drawn_input, inputs[row, 0])
        assert np.isnan(drawn_masked[hidden]).all() and not np.isnan(drawn_masked[~hidden]).any()
        np.testing.assert_array_equal(drawn_reconstruction[~hidden], inputs[row, 0][~hidden])
        np.testing.assert_array_equal(drawn_reconstruction[hidden], reconstructions[row, 0][hidden])
        # the outline is drawn on the masked and reconstruction panels only, on the masked region's border
        expected = {tuple(s.ravel()) for s in plots.mask_outline_segments(masks[row], 8, (32, 32))}
        for axis, outlined in zip(panels[3 * row:3 * row + 3], (False, True, True)):
            lines = [c for c in axis.collections if isinstance(c, LineCollection)]
            assert bool(lines) == outlined
            if outlined:
                assert {tuple(np.ravel(s)) for s in lines[0].get_segments()} == expected
        # in the PNG: a visible pixel has the same colour in the input and the reconstruction panels
        for patch in np.flatnonzero(masks[row] == 0)[:3]:
            r, c = 8 * (patch // 4) + 3, 8 * (patch % 4) + 3
            np.testing.assert_allclose(_panel_colour(figure, panels[3 * row], pixels, r, c),
                                       _panel_colour(figure, panels[3 * row + 2], pixels, r, c), atol=1.5 / 255)


def test_rgb_rows_are_scaled_alike(tmp_path, rng, captured):
    inputs = rng.random((1, 3, 16, 16))
    reconstructions = 4 * inputs - 2
    mask = np.array([[1, 0, 0, 1]])
    plots.plot_reconstruction_grid(inputs, mask, reconstructions, 8, tmp_path / "mae.png")
    (figure,) = captured
    assert len(figure.axes) == 3  # an RGB composite has no colour bar
    drawn_input, drawn_masked, drawn_reconstruction = (axis.get_images()[0].get_array() for axis in figure.axes)
    hidden = pixel_mask(mask[0], 8, 2)
    np.testing.assert_array_equal(drawn_reconstruction[~hidden], drawn_input[~hidden])
    np.testing.assert_array_equal(drawn_masked[~hidden], drawn_input[~hidden])
    np.testing.assert_array_equal(drawn_masked[hidden], 0.5)  # masked pixels grey
    low, high = inputs.min(), inputs.max()
    scaled = np.clip((np.moveaxis(reconstructions[0], 0, -1) - low) / (high - low), 0, 1)
    np.testing.assert_allclose(drawn_reconstruction[hidden], scaled[hidden])


def test_pretraining_task_pictures_pixel_units(tmp_path, captured):
    torch.manual_seed(0)
    model = LensMAEForPreTraining(tiny_config(norm_pix_loss=True)).eval()
    pixel_values = 2 + torch.rand(6, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    batch = {"pixel_values": pixel_values, "row_index": torch.arange(6)}
    with torch.no_grad():
        outputs = {key: value.numpy() for key, value in
                   PretrainingTask().evaluation_outputs(model, batch, model, seed=0).items()}
    pasted = plots.paste_visible_patches(outputs["inputs"], outputs["mask"], predicted_images(outputs, model), 8)
    figures = PretrainingTask().plots(outputs, {}, tmp_path, "validation", model)
    ((caption, path),) = figures.items()
    assert path == tmp_path / "reconstruction_validation.png" and path.exists()
    assert "input | masked input | reconstruction (visible patches pasted, mask outlined)" in caption
    (figure,) = captured
    panels = [axis for axis in figure.axes if axis.get_label() != "<colorbar>"]
    assert len(panels) == 12  # 4 rows
    for row in range(4):
        row_panels = panels[3 * row:3 * row + 3]
        drawn_input, _, drawn_reconstruction = (axis.get_images()[0].get_array() for axis in row_panels)
        np.testing.assert_allclose(drawn_input, pixel_values[row, 0].numpy(), rtol=1e-6)
        np.testing.assert_allclose(drawn_reconstruction, pasted[row, 0], rtol=1e-6)


def test_bad_shapes_are_refused_by_name(tmp_path, rng):
    images = rng.random((2, 1, 16, 16))
    mask = np.ones((2, 4))
    with pytest.raises(ValueError, match="`reconstructions` must have the shape of `inputs`"):
        plots.paste_visible_patches(images, mask, images[:, :, :8], 8)
    with pytest.raises(ValueError, match=r"`mask` must be \(N, num_patches\) = \(2, 4\), got \(2, 16\)"):
        plots.paste_visible_patches(images, np.ones((2, 16)), images, 8)
    with pytest.raises(ValueError, match=r"`mask` must be \(num_patches,\) = \(4,\), got \(9,\)"):
        plots.mask_patches(images[0], np.ones(9), 8)
    with pytest.raises(ValueError, match="`inputs` must be one image"):
        plots.paste_visible_patches(images, np.ones(4), images, 8)
    with pytest.raises(ValueError, match="`mask` must be .* for a batch"):
        plots.mask_outline_segments(np.ones((1, 2, 4)), 8, (16, 16))
    with pytest.raises(ValueError, match="`mask` must hold only 1"):
        plots.mask_outline_pixels(np.full(4, 0.5), 8, (16, 16))
    with pytest.raises(ValueError, match="`image_shape` must be"):
        plots.masked_pixels(np.ones(4), 8, (1, 16, 16))
    with pytest.raises(ValueError, match="not a multiple of patch_size 5"):
        plots.mask_outline_pixels(np.ones(9), 5, (16, 16))
    with pytest.raises(ValueError, match="`patch_size` must be a positive integer"):
        plots.paste_visible_patches(images, mask, images, 0)
    with pytest.raises(ValueError, match="`reconstructions` must have the shape of `inputs`"):
        plots.plot_reconstruction_grid(images, mask, images[:1], 8, tmp_path / "mae.png")
    assert not any(tmp_path.iterdir())
