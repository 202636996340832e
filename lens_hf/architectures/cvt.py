"""CvT-13 (Wu et al. 2021, convolutions in the vision transformer) as transformers' `CvtConfig`, whose defaults are
CvT-13: the best DeepLense axion-mass regressor on Model III."""

from transformers import CvtConfig

from .base import Architecture

CVT_13 = Architecture(
    name="cvt_13", title="CvT-13", reference="Wu et al. 2021, CvT: Introducing Convolutions to Vision Transformers",
    make_config=CvtConfig, defining_fields=("embed_dim", "depth", "num_heads"))
ARCHITECTURES = (CVT_13,)
