"""The exception vocabulary of vqindex: one base class, each error also a built-in type.

Every error the library raises on purpose is a `VQIndexError` and, at the same time, the
built-in type a caller already catches (ValueError, TypeError, RuntimeError, KeyError), so
`except ValueError` keeps working and `except vqindex.VQIndexError` catches everything ours.

========================  ======================  ===============================================
class                     also a                  raised when
========================  ======================  ===============================================
VQIndexError              Exception               (base; never raised itself)
NotTrainedError           RuntimeError            add / search before `train` (IVF)
IndexFileError            ValueError              a file is foreign, truncated, corrupted, from a
                                                  newer version, inconsistent, or not a regular file
DatasetError              ValueError              a data set cannot be found, downloaded, read
ArgumentError             ValueError              an argument has a bad value (names the argument,
                                                  the expected value and what came)
ArgumentTypeError         TypeError               an argument has a bad type
ValueOverflowError        ArgumentError           inputs whose squared norms / distances overflow
                                                  float32 (the message states the limit)
IdNotFoundError           KeyError                an id asked for (reconstruct) is not stored
CodecMismatchError        ArgumentError           query tables of another codec / dimension
TrainingError             RuntimeError            the k-means / quantizer (faiss) failed
========================  ======================  ===============================================
"""

__all__ = ["VQIndexError", "NotTrainedError", "IndexFileError", "DatasetError", "ArgumentError",
           "ArgumentTypeError", "ValueOverflowError", "IdNotFoundError", "CodecMismatchError",
           "TrainingError"]


class VQIndexError(Exception):
    """Base of every exception vqindex raises on purpose."""


class NotTrainedError(VQIndexError, RuntimeError):
    """The index needs `train(x)` before this call (add, search, reconstruct)."""


class IndexFileError(VQIndexError, ValueError):
    """The file is not a valid vqindex index file (or was written by a newer version)."""


class DatasetError(VQIndexError, ValueError):
    """A data set could not be found, downloaded, verified, converted or read.

    The message is one line: what happened and what to do about it (line breaks from
    wrapped library errors are folded into spaces).
    """

    def __init__(self, message=""):
        """message: what happened and what to do; folded onto one line."""
        super().__init__(" ".join(str(message).split()))


class ArgumentError(VQIndexError, ValueError):
    """An argument has a bad value; the message names it, the expected value and what came."""


class ArgumentTypeError(VQIndexError, TypeError):
    """An argument has a bad type; the message names it, the expected type and what came."""


class ValueOverflowError(ArgumentError):
    """Input magnitudes whose squared norms or distances would overflow float32."""


class IdNotFoundError(VQIndexError, KeyError):
    """An id that was asked for is not stored in the index."""

    def __str__(self):
        # KeyError's str() is the repr of its argument; keep the plain message
        return str(self.args[0]) if self.args else ""


class CodecMismatchError(ArgumentError):
    """Query tables or codes prepared by another codec (or dimension) than the one used."""


class TrainingError(VQIndexError, RuntimeError):
    """Training failed inside the k-means or the coarse quantizer (faiss)."""
