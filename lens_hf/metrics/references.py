"""BibTeX of the papers the metrics and model cards cite, kept in one place.

Written from the published records; `citations(...)` picks the entries a card or metric needs.
"""

BIBTEX = {
    "deeplense": """@article{alexander2020deep,
  title={Deep Learning the Morphology of Dark Matter Substructure},
  author={Alexander, Stephon and Gleyzer, Sergei and McDonough, Evan and Toomey, Michael W. and Usai, Emanuele},
  journal={The Astrophysical Journal}, volume={893}, number={1}, pages={15}, year={2020},
  eprint={1909.07346}, archivePrefix={arXiv}
}""",
    "deeplense_unsupervised": """@article{alexander2020decoding,
  title={Decoding Dark Matter Substructure without Supervision},
  author={Alexander, Stephon and Gleyzer, Sergei and Parul, Hanna and Reddy, Pranath and Toomey, Michael W. and Usai, Emanuele and Von Klar, Ryker},
  year={2020}, eprint={2008.12731}, archivePrefix={arXiv}
}""",
    "mae": """@inproceedings{he2022masked,
  title={Masked Autoencoders Are Scalable Vision Learners},
  author={He, Kaiming and Chen, Xinlei and Xie, Saining and Li, Yanghao and Doll{\\'a}r, Piotr and Girshick, Ross},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages={16000--16009}, year={2022}, eprint={2111.06377}, archivePrefix={arXiv}
}""",
    "simclr": """@inproceedings{chen2020simple,
  title={A Simple Framework for Contrastive Learning of Visual Representations},
  author={Chen, Ting and Kornblith, Simon and Norouzi, Mohammad and Hinton, Geoffrey},
  booktitle={Proceedings of the 37th International Conference on Machine Learning (ICML)},
  pages={1597--1607}, year={2020}, eprint={2002.05709}, archivePrefix={arXiv}
}""",
    "lora": """@inproceedings{hu2022lora,
  title={LoRA: Low-Rank Adaptation of Large Language Models},
  author={Hu, Edward J. and Shen, Yelong and Wallis, Phillip and Allen-Zhu, Zeyuan and Li, Yuanzhi and Wang, Shean and Wang, Lu and Chen, Weizhu},
  booktitle={International Conference on Learning Representations (ICLR)}, year={2022},
  eprint={2106.09685}, archivePrefix={arXiv}
}""",
    "lens_finding_challenge": """@article{metcalf2019strong,
  title={The strong gravitational lens finding challenge},
  author={Metcalf, R. Benton and others},
  journal={Astronomy \\& Astrophysics}, volume={625}, pages={A119}, year={2019},
  eprint={1802.03609}, archivePrefix={arXiv}
}""",
    "ssim": """@article{wang2004image,
  title={Image quality assessment: from error visibility to structural similarity},
  author={Wang, Zhou and Bovik, Alan C. and Sheikh, Hamid R. and Simoncelli, Eero P.},
  journal={IEEE Transactions on Image Processing}, volume={13}, number={4}, pages={600--612}, year={2004}
}""",
}


def citations(*keys: str) -> str:
    """The BibTeX entries for `keys`, separated by blank lines."""
    unknown = [key for key in keys if key not in BIBTEX]
    if unknown:
        raise KeyError(f"No BibTeX for {unknown}; known: {sorted(BIBTEX)}")
    return "\n\n".join(BIBTEX[key] for key in keys)
