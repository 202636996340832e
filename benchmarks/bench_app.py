"""The app's answer time: one 64 px upload through the running server (gradio_client round trip: upload, every
model's answer with and without D4 TTA, the MAE reconstruction, super-resolution, four figures drawn and sent),
after the models are loaded, on 2 CPU threads. Models: random run folders of the demo's LensMAE size
(`lens_hf.app.examples`, `small`: what `make demo` trains), so no demo or download is needed.

Prints one line per figure: the median of 7 round trips against the target (< 1 s), and the models' answers alone
(no server, no figures) measured in the same run as the reference for what the page itself costs.
Exits 1 when the target is missed."""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

TARGET_SECONDS = 1.0
THREADS = 2
REPEATS = 7


def main() -> int:
    torch.set_num_threads(THREADS)
    from gradio_client import Client, handle_file

    from lens_hf.app import build_app
    from lens_hf.app.examples import write_example_runs
    from lens_hf.app.inputs import read_upload
    from lens_hf.app.predict import answer
    from lens_hf.app.ui import AppState
    from lens_hf.simulation import get_preset, simulate

    with tempfile.TemporaryDirectory() as folder:
        runs = write_example_runs(Path(folder) / "runs", size="small", image_size=64, patch_size=8)
        image_path = Path(folder) / "lens.npy"
        np.save(image_path, simulate(get_preset("model_ii"), n=1, seed=1).images[0, 0].numpy())
        page = build_app(list(runs.values()))
        page.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
        try:
            client = Client(page.local_url, verbose=False)
            arguments = (handle_file(str(image_path)), -1, "asinh", 0.75)
            client.predict(*arguments, api_name="/predict_upload")  # warm-up
            round_trips = []
            for _ in range(REPEATS):
                start = time.perf_counter()
                summary = client.predict(*arguments, api_name="/predict_upload")[0]
                round_trips.append(time.perf_counter() - start)
            assert "**Error" not in summary, summary
        finally:
            page.close()
        state, image = AppState(list(runs.values())), read_upload(image_path)
        alone = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            [answer(model, image) for model in state.models]
            alone.append(time.perf_counter() - start)
    seconds = statistics.median(round_trips)
    verdict = "ok" if seconds < TARGET_SECONDS else "below"
    print(f"app_predict_64px_seconds {seconds:.3f}  (target < {TARGET_SECONDS:g} s: {verdict}; median of {REPEATS} "
          f"gradio_client round trips, 4 demo-size models, {THREADS} threads)")
    print(f"app_models_alone_seconds {statistics.median(alone):.3f}  (reference: the same answers without server or "
          "figures)")
    return 0 if verdict == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
