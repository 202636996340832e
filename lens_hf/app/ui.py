"""The page (gradio Blocks): models in a box, an image from a file or the simulator, and what every model says.
Every handler turns any failure into a message in the page (the traceback goes to the server log only), so a bad
upload never leaves a stack trace or a spinner, and the server keeps answering."""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path

from .figures import STRETCHES, image_figure, probability_figure, reconstruction_figure, super_resolution_figure
from .inputs import SIMULATION_PRESETS, AppInputError, preset_classes, read_upload, simulate_image
from .predict import answer, load_models

logger = logging.getLogger(__name__)
DEMO_RUNS = ("lens-mae-classifier", "lens-mae-regressor", "lens-mae", "lens-mae-sr")  # what `make demo` writes
NO_MODELS = ("No models are loaded. Run `make demo` first (its run folders load by default), or give run folders "
             "or Hub ids in the box above and press *Load models*.")


def default_sources(demo_dir: str | Path = "demo_output") -> list[str]:
    """The demo's run folders that exist."""
    return [str(Path(demo_dir) / name) for name in DEMO_RUNS if (Path(demo_dir) / name / "config.json").is_file()]


class AppState:
    """The loaded models, shared by every visitor (they are read-only once loaded)."""

    def __init__(self, sources):
        self.models, self.problems = load_models(sources)

    def load(self, text: str) -> str:
        sources = [s for s in (text or "").replace("\n", ",").split(",") if s.strip()]
        self.models, self.problems = load_models(sources)
        return self.status()

    def status(self) -> str:
        lines = [f"- {model.describe()}" for model in self.models]
        lines += [f"- ⚠ {problem}" for problem in self.problems]
        if not self.models:
            lines.append(NO_MODELS)
        return "**Models**\n" + "\n".join(lines)


def _visible_errors(outputs: int):
    """Wrap a handler so that any exception becomes an error message in the summary (and empty outputs)."""
    def wrap(handler):
        @functools.wraps(handler)
        def safe(*args):
            try:
                return handler(*args)
            except AppInputError as error:
                message = str(error)
            except Exception as error:  # a bug or an unforeseen input: said in the page, logged in full
                logger.exception("app handler %s failed", handler.__name__)
                message = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
            return (f"**Error:** {message}", "", *([None] * (outputs - 2)))
        return safe
    return wrap


def describe(image, answers) -> tuple[str, str]:
    """The summary (markdown) and the predicted label of the first classifier (plain text, for the page's
    prediction box)."""
    lines = [f"**Image:** {image.source}, {image.pixels.shape[0]} band(s), {image.pixels.shape[1]} x "
             f"{image.pixels.shape[2]} px"]
    truth = []
    if image.true_class:
        truth.append(f"class **{image.true_class}**")
    if image.true_log10_mass is not None and math.isfinite(image.true_log10_mass):
        truth.append(f"log10(m/eV) = **{image.true_log10_mass:.3f}**")
    if truth:
        lines.append("**True:** " + ", ".join(truth))
    lines += [f"- {note}" for note in image.notes]
    label = ""
    for result in answers:
        name = f"`{result.model.name}`"
        if result.error:
            lines.append(f"- {name}: **Error:** {result.error}")
        elif result.probabilities:
            plain = max(result.probabilities, key=result.probabilities.get)
            tta = result.predicted_class
            label = label or plain
            text = (f"- {name}: predicted **{plain}** (P = {result.probabilities[plain]:.3f}); with D4 TTA "
                    f"**{tta}** (P = {result.probabilities_tta[tta]:.3f})")
            if result.decision_threshold is not None and "lens" in result.probabilities:
                verdict = "lens" if result.probabilities["lens"] >= result.decision_threshold else "not a lens"
                text += f"; P(lens) {result.probabilities['lens']:.3f} at threshold {result.decision_threshold:.3f}: {verdict}"
            lines.append(text)
        elif result.log10_mass is not None:
            lines.append(f"- {name}: axion mass log10(m/eV) = **{result.log10_mass:.3f}** (D4 TTA "
                         f"{result.log10_mass_tta:.3f})")
        elif result.reconstruction is not None:
            lines.append(f"- {name}: MAE reconstruction at mask ratio {result.mask.mean():.2f} (below)")
        elif result.super_resolved is not None:
            lines.append(f"- {name}: super-resolved to {result.super_resolved.shape[-1]} px (below)")
    return "\n".join(lines), label


def build_app(sources=None, demo_dir: str | Path = "demo_output"):
    """The gradio Blocks of the app for the models at `sources` (default: the demo's run folders)."""
    import gradio as gr

    state = AppState(default_sources(demo_dir) if sources is None else sources)
    outputs_count = 6

    def respond(image, stretch, mask_ratio):
        if not state.models:
            raise AppInputError(NO_MODELS)
        answers = [answer(model, image, mask_ratio) for model in state.models]
        summary, label = describe(image, answers)
        classifiers = [a for a in answers if a.probabilities and not a.error]
        reconstruction = next((a for a in answers if a.reconstruction is not None and not a.error), None)
        super_resolution = next((a for a in answers if a.super_resolved is not None and not a.error), None)
        return (summary, label, image_figure(image.pixels, stretch, image.source),
                probability_figure(classifiers) if classifiers else None,
                reconstruction_figure(reconstruction) if reconstruction else None,
                super_resolution_figure(super_resolution, stretch) if super_resolution else None)

    @_visible_errors(outputs_count)
    def predict_upload(file, hdu, stretch, mask_ratio):
        hdu = None if hdu is None or hdu == "" or int(hdu) < 0 else int(hdu)
        return respond(read_upload(file, hdu=hdu), stretch, mask_ratio)

    @_visible_errors(outputs_count)
    def simulate_and_predict(preset, class_name, seed, log10_mass, stretch, mask_ratio):
        return respond(simulate_image(preset, class_name, seed, log10_mass), stretch, mask_ratio)

    def classes_of(preset):
        try:
            names = list(preset_classes(preset))
        except AppInputError:
            names = []
        return gr.Dropdown(choices=names, value=names[0] if names else None)

    with gr.Blocks(title="lens-hf: look at a lens") as app:
        gr.Markdown("# lens-hf: look at a lens\nDrop in a strong-lensing image or simulate one, and see what each "
                    "model says: substructure class, axion mass, the masked-autoencoder reconstruction and "
                    "super-resolution.")
        with gr.Row():
            sources_box = gr.Textbox(value=", ".join(default_sources(demo_dir) if sources is None else map(str, sources)),
                                     label="Models (run folders or Hub ids, comma-separated)", scale=4)
            load_button = gr.Button("Load models", scale=1)
        status = gr.Markdown(state.status(), elem_id="model-status")
        with gr.Row():
            stretch = gr.Radio(list(STRETCHES), value="asinh", label="Stretch")
            mask_ratio = gr.Slider(0.05, 0.95, value=0.75, step=0.05, label="MAE mask ratio")
        with gr.Tabs():
            with gr.Tab("Upload"):
                upload = gr.File(label="Image (.npy, .fits, .png)", file_types=[".npy", ".fits", ".fit", ".fts", ".fz", ".png", ".jpg", ".jpeg"],
                                 type="filepath", elem_id="upload")
                hdu = gr.Number(value=-1, precision=0, label="FITS HDU (-1: the first image HDU)")
                upload_button = gr.Button("Predict", variant="primary", elem_id="predict-upload")
            with gr.Tab("Simulate"):
                with gr.Row():
                    preset = gr.Dropdown(list(SIMULATION_PRESETS), value="model_ii", label="Preset")
                    class_name = gr.Dropdown(list(preset_classes("model_ii")), value="axion", label="Class",
                                             allow_custom_value=True)  # the choices follow the preset
                    seed = gr.Number(value=0, precision=0, label="Seed")
                    log10_mass = gr.Slider(-24.0, -22.0, value=-23.0, step=0.05, label="Axion mass log10(m/eV)")
                simulate_button = gr.Button("Simulate and predict", variant="primary", elem_id="simulate")
        summary = gr.Markdown(elem_id="summary")
        prediction = gr.Textbox(label="Predicted class (first classifier)", elem_id="prediction", interactive=False)
        image_plot = gr.Plot(label="Image")
        probability_plot = gr.Plot(label="Class probabilities")
        reconstruction_plot = gr.Plot(label="MAE reconstruction")
        super_resolution_plot = gr.Plot(label="Super-resolution")
        outputs = [summary, prediction, image_plot, probability_plot, reconstruction_plot, super_resolution_plot]
        load_button.click(state.load, inputs=sources_box, outputs=status, api_name="load_models")
        upload_button.click(predict_upload, inputs=[upload, hdu, stretch, mask_ratio], outputs=outputs,
                            api_name="predict_upload")
        simulate_button.click(simulate_and_predict, inputs=[preset, class_name, seed, log10_mass, stretch, mask_ratio],
                              outputs=outputs, api_name="simulate")
        preset.change(classes_of, inputs=preset, outputs=class_name, api_visibility="private")
    return app


def main(argv=None) -> None:
    """`python -m lens_hf.app [MODEL ...] [--host 127.0.0.1] [--port 7860]` (`make app`)."""
    import argparse

    parser = argparse.ArgumentParser(prog="lens-hf-app", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("models", nargs="*", help="run folders or Hub ids (default: the demo's run folders)")
    parser.add_argument("--demo_dir", default="demo_output", help="where `make demo` wrote its runs")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    app = build_app(args.models or None, demo_dir=args.demo_dir)
    app.launch(server_name=args.host, server_port=args.port)
