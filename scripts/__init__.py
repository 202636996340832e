"""The lens-hf command-line programs, installed as `lens_hf.scripts`: `python -m lens_hf.scripts.finetune`,
`accelerate launch -m lens_hf.scripts.finetune`, or the console scripts `lens-hf-finetune`, ... From a checkout,
`python scripts/finetune.py` and `accelerate launch scripts/finetune.py` run the same files."""
