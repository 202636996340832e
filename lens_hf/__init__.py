"""lens-hf: HuggingFace-native deep learning for strong gravitational lensing images."""

__version__ = "0.1.0"
