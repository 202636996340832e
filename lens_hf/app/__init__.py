"""The interactive app (gradio): look at a lens and see what each model says. `make app` serves it on
127.0.0.1; `app/app.py` is the same page as a Hugging Face Space.

- `inputs`: uploads (.npy, .fits, .png) and simulated images, checked;
- `predict`: the models and what each task answers about one image (with and without D4 TTA);
- `figures`: the pictures (stretch and colour bar, probabilities, MAE reconstruction, super-resolution);
- `ui`: the page, whose handlers turn every failure into a message in it."""

from .ui import build_app, default_sources, main

__all__ = ["build_app", "default_sources", "main"]
