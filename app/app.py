"""lens-hf's app as a Hugging Face Space: look at a lens and see what each model says.

The models are the run folders or Hub ids in the LENS_HF_MODELS variable (comma-separated; a Space sets it under
Settings -> Variables), or typed into the page's box. Locally, `make app` serves the same page on 127.0.0.1
with the demo's run folders."""

import os

from lens_hf.app import build_app

MODELS = [name.strip() for name in os.environ.get("LENS_HF_MODELS", "").split(",") if name.strip()]

demo = build_app(MODELS or None)

if __name__ == "__main__":
    demo.launch()
