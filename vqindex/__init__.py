"""vqindex: approximate nearest-neighbour search over rotation-quantized vectors."""
from . import datasets
from .codecs import BlockQuant, Codec, EDEN, RaBitQ, Rotation, TurboQuantMSE, TurboQuantProd
from .factory import codec_factory

__version__ = "0.1.0"

__all__ = ["BlockQuant", "Codec", "EDEN", "RaBitQ", "Rotation", "TurboQuantMSE",
           "TurboQuantProd", "codec_factory", "datasets"]
