"""Simulator speed against lenstronomy and caustics on the same scenes (one CPU thread), and on a GPU if present.

Each line: scene, our images/s, the reference's images/s and the ratio (ours / theirs), medians
of --repeats timings taken alternately in one run, with the issue's target and "ok" or "below
target".

lenstronomy (target >= 10 on every scene): it gets its best case, one ImageModel per scene,
reused, with only the per-image parameters changing (the published DeepLenseSim code rebuilds it
for every image, which is slower). Same parameters in both (our metadata), same pixels, PSF and
noise model; Models II/III are rendered single-plane with the rescaled lens (docs/simulation.md)
in both.

caustics (target >= 3; a benchmark-only dependency, `pip install -e .[bench]`; skipped with a
printed line when absent): SIE + external shear + Sersic source + 25 point masses at 64 px
(Model II cdm) and 150 px (Model I cdm). What is compared is the noiseless, PSF-free image without
supersampling (caustics' LensSource with no PSF and upsample_factor=1; ours with psf_fwhm=0 and
noise=False): with a PSF caustics pads the field and convolves with zeros beyond the edge where
lenstronomy (and we) repeat the edge pixels, so the images would differ at the border. caustics
gets its best case: one LensSource built per scene, reused, the per-image parameters (source
centre, point-mass positions and Einstein radii) as one (N, P) tensor batched with torch.vmap
(caustics' own batching), under torch.inference_mode() (no gradients, as ours), float32 like
ours; building that tensor from our metadata is not timed. Parameters are converted to caustics'
conventions: q, phi from e1, e2; the SIE's Rein is our theta_E (both the product-average
radius); the Sersic Re is the major-axis radius R / sqrt(q), Ie our surface brightness at R
times the pixel area (times 2 for Model II's model + model), with lenstronomy's b(n). Beside each
ratio the line prints max |ours - caustics| / peak over the first images, rendered in float64 by
both (caustics with a float64 pixel grid; its default grid is built in float32, which alone
moves the steep source by ~1e-5 of the peak): the two must agree within 1e-6 of the peak
("equal") for the ratio to compare the same work.

    OMP_NUM_THREADS=1 python benchmarks/bench_simulation.py [--quick] [--repeats N] [--gpu-only]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lens_hf.simulation import get_preset, render, simulate  # noqa: E402

SCENES = (
    # (label, preset name, overrides, images per timing, issue target ratio)
    ("model_ii cdm 64px (25 point masses)", "model_ii", {"classes": ("cdm",)}, 256, 10.0),
    ("model_i cdm 150px (25 point masses, Poisson noise)", "model_i", {"classes": ("cdm",)}, 64, 10.0),
    ("model_i cdm 150px noiseless (rendering only)", "model_i", {"classes": ("cdm",), "noise": False}, 64, 10.0),
    ("model_ii axion 64px (100 point masses)", "model_ii", {"classes": ("axion",)}, 128, 10.0),
    ("model_ii axion 64px (line-mass vortex)", "model_ii", {"classes": ("axion",), "vortex_model": "line"}, 256, 10.0),
)
# Against caustics: noiseless and PSF-free (see the docstring), SIE + shear + Sersic + 25 point masses.
CAUSTICS_SCENES = (
    ("SIE+shear+Sersic+25 point masses 64px (model_ii cdm, no PSF)", "model_ii",
     {"classes": ("cdm",), "psf_fwhm": 0.0}, 256, 3.0),
    ("SIE+shear+Sersic+25 point masses 150px (model_i cdm, no PSF)", "model_i",
     {"classes": ("cdm",), "noise": False, "psf_fwhm": 0.0}, 64, 3.0),
)
CAUSTICS_EQUALITY_IMAGES = 8
CAUSTICS_TOLERANCE = 1e-6  # of the peak


class LenstronomyScene:
    """lenstronomy rendering of our metadata rows with one reused ImageModel."""

    def __init__(self, preset, metadata):
        from lenstronomy.Data.imaging_data import ImageData
        from lenstronomy.Data.psf import PSF
        from lenstronomy.ImSim.image_model import ImageModel
        from lenstronomy.LensModel.lens_model import LensModel
        from lenstronomy.LightModel.light_model import LightModel

        self.preset, self.metadata = preset, metadata
        size, scale = preset.image_size, preset.pixel_scale
        half = (size - 1) / 2 * scale
        data = ImageData(image_data=np.zeros((size, size)), ra_at_xy_0=-half, dec_at_xy_0=-half,
                         transform_pix2angle=np.diag([scale, scale]))
        psf = PSF(psf_type="GAUSSIAN", fwhm=preset.psf_fwhm[0], pixel_size=scale, truncation=preset.psf_truncation)
        self.subhalos = int((metadata["subhalo_theta_e"][0] > 0).sum())
        self.vortex = float(metadata["vortex_theta_e"][0]) > 0
        # lenstronomy has no line mass: its vortex is always the published 100 points
        self.points = preset.vortex_points if self.vortex else 0
        lens_list = ["SIE", "SHEAR"] + ["POINT_MASS"] * (self.subhalos + self.points)
        self.model = ImageModel(data, psf, lens_model_class=LensModel(lens_list),
                                source_model_class=LightModel(["SERSIC_ELLIPSE"], profile_kwargs_list=[{"smoothing": 1e-3}]),
                                kwargs_numerics={"supersampling_factor": preset.supersampling})

    def render(self, row: int) -> np.ndarray:
        meta = {key: value[row].tolist() for key, value in self.metadata.items()}
        lens = [dict(theta_E=meta["einstein_radius_arcsec"], e1=meta["lens_e1"], e2=meta["lens_e2"],
                     center_x=meta["lens_center_x"], center_y=meta["lens_center_y"]),
                dict(gamma1=meta["shear_gamma1"], gamma2=meta["shear_gamma2"])]
        for k in range(self.subhalos):
            lens.append(dict(theta_E=meta["subhalo_theta_e"][k], center_x=meta["subhalo_x"][k],
                             center_y=meta["subhalo_y"][k]))
        if self.points:
            coords = np.linspace(-meta["vortex_half_length"], meta["vortex_half_length"], self.points)
            theta = meta["vortex_theta_e"] / math.sqrt(self.points)
            for c in coords:
                lens.append(dict(theta_E=theta, center_x=c * math.cos(meta["vortex_angle"]),
                                 center_y=c * math.sin(meta["vortex_angle"])))
        source = [dict(amp=meta["source_amplitude"][0], R_sersic=meta["source_r_sersic"],
                       n_sersic=meta["source_n_sersic"], e1=meta["source_e1"], e2=meta["source_e2"],
                       center_x=meta["source_center_x"], center_y=meta["source_center_y"], max_R_frac=100.0)]
        image = self.model.image(lens, source)
        if self.preset.double_model:
            image = image + image
        if self.preset.noise and self.preset.noise_model == "model_i":  # DeepLenseSim simple_sim()
            t = meta["exposure_time"]
            shot = np.random.randn(*image.shape) * np.sqrt(np.abs(image) / t)
            background = np.random.randn(*image.shape) * self.preset.background_rms
            image = np.random.poisson(np.clip(t * (image + shot + background), 0, None))
        return image


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _verdict(ratio: float, target: float) -> str:
    return "ok" if ratio >= target else "below target"


def _medians(ours, reference, repeats: int):
    """Median seconds of `ours(repeat)` and `reference()`, timed alternately."""
    ours_times, reference_times = [], []
    for repeat in range(repeats):
        ours_times.append(_timed(lambda: ours(repeat)))
        reference_times.append(_timed(reference))
    return statistics.median(ours_times), statistics.median(reference_times)


def measure(label, name, overrides, count, target, repeats, quick):
    preset = get_preset(name, **overrides)
    count = max(8, count // 4) if quick else count
    metadata = simulate(preset, n=count, seed=0, batch_size=count).metadata
    scene = LenstronomyScene(preset, metadata)
    simulate(preset, n=min(count, 16), seed=1)  # warm-up
    scene.render(0)
    ours_time, reference_time = _medians(lambda repeat: simulate(preset, n=count, seed=repeat, batch_size=count),
                                         lambda: [scene.render(row) for row in range(count)], repeats)
    ours, reference = count / ours_time, count / reference_time
    ratio = ours / reference
    print(f"simulation {label}: ours {ours:,.0f} img/s, lenstronomy {reference:,.0f} img/s, "
          f"ratio {ratio:.2f} (target >= {target:g}, {_verdict(ratio, target)})", flush=True)
    return ratio


class CausticsScene:
    """caustics' LensSource for a scene's metadata: one simulator, per-image parameters batched with vmap."""

    def __init__(self, preset, metadata, dtype):
        import warnings

        import caustics

        self.preset, self.dtype = preset, dtype
        self.count = int((metadata["subhalo_theta_e"][0] > 0).sum())
        with warnings.catch_warnings():  # caustics warns that SinglePlane overrides the lenses' redshifts
            warnings.simplefilter("ignore")
            cosmology = caustics.FlatLambdaCDM(name="cosmology")
            self.sie = caustics.SIE(cosmology=cosmology, name="sie", x0=0.0, y0=0.0, q=1.0, phi=0.0, Rein=1.0)
            self.shear = caustics.ExternalShear(cosmology=cosmology, name="shear", x0=0.0, y0=0.0,
                                                gamma_1=0.0, gamma_2=0.0)
            self.points = [caustics.Point(cosmology=cosmology, name=f"point{k}", x0=0.0, y0=0.0, Rein=0.01)
                           for k in range(self.count)]
            lens = caustics.SinglePlane(cosmology=cosmology, lenses=[self.sie, self.shear, *self.points],
                                        name="lens", z_l=preset.z_lens, z_s=preset.z_source)
            self.source = caustics.Sersic(name="source", x0=0.0, y0=0.0, q=1.0, phi=0.0, n=1.0, Re=1.0, Ie=1.0,
                                          use_lenstronomy_k=True)
            self.sim = caustics.LensSource(lens=lens, source=self.source, pixelscale=preset.pixel_scale,
                                           pixels_x=preset.image_size, upsample_factor=1, name="sim")
        self.sim.to(dtype=dtype)
        if dtype == torch.float64:  # caustics builds its grid in float32 whatever the module's dtype
            from caustics.utils import meshgrid

            grid_x, grid_y = meshgrid(preset.pixel_scale, preset.image_size, dtype=dtype)
            self.sim._grid = (grid_x[..., None], grid_y[..., None])
        self._set_shared(metadata)
        for parameter in (self.source.x0, self.source.y0):
            parameter.to_dynamic()
        for point in self.points:
            for parameter in (point.x0, point.y0, point.Rein):
                parameter.to_dynamic()
        self.batched = torch.vmap(self.sim)

    def _set_shared(self, metadata):
        """The parameters every image of the scene shares (static in caustics), in its conventions."""
        from lens_hf.simulation.profiles import ellipticity_to_angle_axis_ratio

        row = {key: value[:1].to(torch.float64) for key, value in metadata.items() if value.dtype.is_floating_point}
        if not all(bool((metadata[key] == metadata[key][:1]).all()) for key in (
                "einstein_radius_arcsec", "lens_e1", "lens_e2", "shear_gamma1", "shear_gamma2", "source_r_sersic",
                "source_n_sersic", "source_e1", "source_e2", "source_amplitude")):
            raise ValueError("CausticsScene: the scene's lens and source shape must be shared by every image")
        phi, q = ellipticity_to_angle_axis_ratio(row["lens_e1"], row["lens_e2"])
        source_phi, source_q = ellipticity_to_angle_axis_ratio(row["source_e1"], row["source_e2"])
        values = {
            self.sie.x0: row["lens_center_x"], self.sie.y0: row["lens_center_y"], self.sie.q: q,
            self.sie.phi: torch.remainder(phi, math.pi), self.sie.Rein: row["einstein_radius_arcsec"],
            self.shear.gamma_1: row["shear_gamma1"], self.shear.gamma_2: row["shear_gamma2"],
            self.source.q: source_q, self.source.phi: torch.remainder(source_phi, math.pi),
            self.source.n: row["source_n_sersic"],
            # caustics' Sersic radius is the major axis; ours (lenstronomy's) the product average
            self.source.Re: row["source_r_sersic"] / torch.sqrt(source_q),
            self.source.Ie: row["source_amplitude"][:, 0] * self.preset.pixel_scale**2
            * (2.0 if self.preset.double_model else 1.0),
        }
        for parameter, value in values.items():
            parameter.value = torch.as_tensor(float(value.reshape(-1)[0]), dtype=self.dtype)

    def parameters(self, metadata) -> torch.Tensor:
        """(N, P) per-image parameters in the order of the simulator's dynamic parameters."""
        columns = {id(self.source.x0): metadata["source_center_x"], id(self.source.y0): metadata["source_center_y"]}
        for k, point in enumerate(self.points):
            columns[id(point.x0)] = metadata["subhalo_x"][:, k]
            columns[id(point.y0)] = metadata["subhalo_y"][:, k]
            columns[id(point.Rein)] = metadata["subhalo_theta_e"][:, k]
        return torch.stack([columns[id(parameter)] for parameter in self.sim.dynamic_params], dim=1).to(self.dtype)

    def render(self, parameters: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():  # no gradients (and no autograd bookkeeping), as ours
            return self.batched(parameters)


def measure_caustics(label, name, overrides, count, target, repeats, quick):
    preset = get_preset(name, **overrides)
    count = max(8, count // 4) if quick else count
    metadata = simulate(preset, n=count, seed=0, batch_size=count).metadata
    # same work: float64 images of both agree within CAUSTICS_TOLERANCE of the peak
    rows = min(CAUSTICS_EQUALITY_IMAGES, count)
    subset = {key: value[:rows] for key, value in metadata.items()}
    exact = CausticsScene(preset, subset, torch.float64)
    ours64 = render(preset, subset, dtype=torch.float64)[:, 0]
    theirs64 = exact.render(exact.parameters(subset))
    peak = ours64.abs().amax(dim=(1, 2))
    difference = float(((ours64 - theirs64).abs().amax(dim=(1, 2)) / peak).max())
    equal = "equal" if difference <= CAUSTICS_TOLERANCE else "NOT EQUAL"
    scene = CausticsScene(preset, metadata, torch.float32)
    parameters = scene.parameters(metadata)
    simulate(preset, n=min(count, 16), seed=1)  # warm-up
    scene.render(parameters[: min(count, 16)])
    ours_time, reference_time = _medians(lambda repeat: simulate(preset, n=count, seed=repeat, batch_size=count),
                                         lambda: scene.render(parameters), repeats)
    ours, reference = count / ours_time, count / reference_time
    ratio = ours / reference
    print(f"simulation vs caustics {label}: ours {ours:,.0f} img/s, caustics {reference:,.0f} img/s, "
          f"ratio {ratio:.2f} (target >= {target:g}, {_verdict(ratio, target)}); "
          f"max |ours - caustics| / peak {difference:.1e} (float64, {rows} images; "
          f"tolerance {CAUSTICS_TOLERANCE:g}: {equal})", flush=True)
    return ratio, difference


def measure_gpu(repeats: int) -> None:
    if not torch.cuda.is_available():
        print("simulation GPU: no CUDA device here; not measured", flush=True)
        return
    device = torch.device("cuda")
    preset = get_preset("model_ii", classes=("cdm",))
    count = 65536
    simulate(preset, n=4096, seed=0, device=device, batch_size=4096)
    torch.cuda.synchronize()
    times = []
    for repeat in range(repeats):
        torch.cuda.synchronize()
        times.append(_timed(lambda: simulate(preset, n=count, seed=repeat, device=device, batch_size=8192)))
    rate = count / statistics.median(times)
    print(f"simulation GPU model_ii cdm 64px: {rate:,.0f} img/s on {torch.cuda.get_device_name(device)} "
          f"(target >= 50,000)", flush=True)


def _available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer images per timing (smoke run)")
    parser.add_argument("--gpu-only", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if not args.gpu_only:
        if _available("lenstronomy"):
            for scene in SCENES:
                measure(*scene, repeats=args.repeats, quick=args.quick)
        else:
            print("simulation vs lenstronomy: lenstronomy is not installed (pip install -e .[lenstronomy]); "
                  "not measured", flush=True)
        if _available("caustics"):
            for scene in CAUSTICS_SCENES:
                measure_caustics(*scene, repeats=args.repeats, quick=args.quick)
        else:
            print("simulation vs caustics: caustics is not installed (pip install -e .[bench]); not measured",
                  flush=True)
    measure_gpu(args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
