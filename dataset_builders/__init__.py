"""The dataset builders (one `datasets.GeneratorBasedBuilder` per data family, each in `<name>/<name>.py` with its
card), installed as `lens_hf.dataset_builders`; `lens_hf.data.loading` finds them with importlib.resources."""
