"""Simulator speed against lenstronomy on the same scenes (one CPU thread), and on a GPU if present.

Each line: scene, our images/s, lenstronomy's images/s and the ratio, medians of --repeats
timings taken alternately in one run. lenstronomy gets its best case: one ImageModel per
scene, reused, with only the per-image parameters changing (the published DeepLenseSim code
rebuilds it for every image, which is slower). Same parameters in both (our metadata), same
pixels, PSF and noise model; Models II/III are rendered single-plane with the rescaled lens
(docs/simulation.md) in both.

    OMP_NUM_THREADS=1 python benchmarks/bench_simulation.py [--quick]
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

from lens_hf.simulation import get_preset, simulate  # noqa: E402

SCENES = (
    # (label, preset name, overrides, images per timing, issue target ratio)
    ("model_ii cdm 64px (25 point masses)", "model_ii", {"classes": ("cdm",)}, 256, 3.0),
    ("model_i cdm 150px (25 point masses, Poisson noise)", "model_i", {"classes": ("cdm",)}, 64, 3.0),
    ("model_i cdm 150px noiseless (rendering only)", "model_i", {"classes": ("cdm",), "noise": False}, 64, 3.0),
    ("model_ii axion 64px (100 point masses)", "model_ii", {"classes": ("axion",)}, 128, 3.0),
    ("model_ii axion 64px (line-mass vortex)", "model_ii", {"classes": ("axion",), "vortex_model": "line"}, 256, 10.0),
)


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


def measure(label, name, overrides, count, target, repeats, quick):
    preset = get_preset(name, **overrides)
    count = max(8, count // 4) if quick else count
    metadata = simulate(preset, n=count, seed=0, batch_size=count).metadata
    scene = LenstronomyScene(preset, metadata)
    ours_times, reference_times = [], []
    simulate(preset, n=min(count, 16), seed=1)  # warm-up
    scene.render(0)
    for repeat in range(repeats):
        ours_times.append(_timed(lambda: simulate(preset, n=count, seed=repeat, batch_size=count)))
        reference_times.append(_timed(lambda: [scene.render(row) for row in range(count)]))
    ours = count / statistics.median(ours_times)
    reference = count / statistics.median(reference_times)
    ratio = ours / reference
    verdict = "ok" if ratio >= target else "BELOW TARGET"
    print(f"simulation {label}: ours {ours:,.0f} img/s, lenstronomy {reference:,.0f} img/s, "
          f"ratio {ratio:.2f} (target >= {target:g}, {verdict})", flush=True)
    return ratio


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer images per timing (smoke run)")
    parser.add_argument("--gpu-only", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if not args.gpu_only:
        for scene in SCENES:
            measure(*scene, repeats=args.repeats, quick=args.quick)
    measure_gpu(args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
