"""Jinja templates of the model and dataset cards, installed as `lens_hf.model_cards`."""
