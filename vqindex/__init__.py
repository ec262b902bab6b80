"""vqindex: approximate nearest-neighbour search over rotation-quantized vectors.

FAISS-compatible indexes (Flat, IVF, HNSW, Refine) over RaBitQ, TurboQuant, EDEN and
BlockQuant codes. See README.md, docs/codecs.md for the math and docs/faiss.md for faiss users.
"""
from . import datasets
from .errors import (ArgumentError, ArgumentTypeError, CodecMismatchError, DatasetError,
                     IdNotFoundError, IndexFileError, NotTrainedError, TrainingError,
                     ValueOverflowError, VQIndexError)
from .codecs import BlockQuant, Codec, EDEN, RaBitQ, Rotation, TurboQuantMSE, TurboQuantProd
from .factory import codec_factory, index_factory
from .io import read_index, write_index
from .index import (METRIC_COSINE, METRIC_INNER_PRODUCT, METRIC_L2, Index, IndexFlatCodes,
                    IndexIVFCodes, IndexRefine, SearchParams)

from .index.hnsw import IndexHNSWCodes
from .evaluation import knn_ground_truth, recall_at_k
from .factory import describe_index, factory_help
from .index.float_flat import IndexFlat, IndexHNSWFlat, IndexIVFFlat
from .index.params import ParameterSpace, get_num_threads, set_num_threads
from .index.pretransform import IndexPreTransform
from .interop import clone_index, deserialize_index, normalize_L2, serialize_index
from ._config import show_config

__version__ = "0.1.0"

__all__ = ["BlockQuant", "Codec", "EDEN", "RaBitQ", "Rotation", "TurboQuantMSE",
           "TurboQuantProd", "codec_factory", "index_factory", "datasets", "Index",
           "IndexFlatCodes", "IndexIVFCodes", "IndexRefine", "SearchParams", "METRIC_L2",
           "METRIC_INNER_PRODUCT", "METRIC_COSINE", "read_index", "write_index", "IndexFileError",
           "IndexHNSWCodes", "knn_ground_truth", "recall_at_k", "VQIndexError", "NotTrainedError",
           "DatasetError", "ArgumentError", "ArgumentTypeError", "ValueOverflowError",
           "IdNotFoundError", "CodecMismatchError", "TrainingError", "show_config"]
__all__ += ["describe_index", "factory_help", "IndexFlat", "IndexHNSWFlat", "IndexIVFFlat",
            "ParameterSpace", "get_num_threads", "set_num_threads", "IndexPreTransform",
            "clone_index", "deserialize_index", "normalize_L2", "serialize_index"]
