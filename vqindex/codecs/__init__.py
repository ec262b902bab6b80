"""Codecs: rotation, codebooks and the four quantizer families (spec sections 1-7)."""
from .base import Codec, QueryTables, Section
from .blockquant import BlockQuant
from .eden import EDEN
from .rabitq import RaBitQ
from .rotation import Rotation
from .turboquant import TurboQuantMSE, TurboQuantProd

__all__ = ["Codec", "QueryTables", "Section", "BlockQuant", "EDEN", "RaBitQ", "Rotation",
           "TurboQuantMSE", "TurboQuantProd"]
