"""Reader for GloVe's text format (`word v1 ... vd` per line)."""
import io

import numpy as np

from ._errors import DatasetError

__all__ = ["read_glove_text"]

_BATCH = 20000


def _parse(lines, d, path, first_line):
    """Return (words, float32 (len(lines), d)) for a batch of GloVe lines."""
    words, vals = [], []
    for line in lines:
        parts = line.rstrip().rsplit(" ", d)  # words may contain spaces (840B)
        words.append(parts[0])
        vals.append(" ".join(parts[1:]))
    flat = np.array(" ".join(vals).split(), dtype=np.float32) if vals else np.zeros(0, np.float32)
    if flat.size != len(lines) * d:
        for j, line in enumerate(lines):
            if len(line.split(" ")) < d + 1:
                raise DatasetError(f"{path}: line {first_line + j + 1} has fewer than {d} values; "
                                   f"the file is truncated or not in GloVe format")
        raise DatasetError(f"{path}: inconsistent number of values per line (expected {d}); "
                           f"not a GloVe text file")
    return words, flat.reshape(len(lines), d)


def read_glove_text(source, name=None):
    """Read GloVe vectors from text.

    source: path of a `.txt` file or a binary/text file object; name: label for error messages.
    Returns (words list of str, float32 (n, d) C-contiguous array).
    """
    own = not hasattr(source, "read")
    label = name or (str(source) if own else getattr(source, "name", "<stream>"))
    f = open(source, "rb") if own else source
    try:
        if not isinstance(f, io.TextIOBase):
            f = io.TextIOWrapper(f, encoding="utf-8", errors="replace")
        words, blocks, d, batch, lineno = [], [], None, [], 0
        for line in f:
            if not line.strip():
                continue
            if d is None:
                d = len(line.rstrip().split(" ")) - 1
                if d < 1:
                    raise DatasetError(f"{label}: first line has no vector values; not a GloVe text file")
            batch.append(line)
            if len(batch) == _BATCH:
                w, v = _parse(batch, d, label, lineno)
                words += w
                blocks.append(v)
                lineno += len(batch)
                batch = []
        if batch:
            w, v = _parse(batch, d, label, lineno)
            words += w
            blocks.append(v)
    except (OSError, UnicodeError) as exc:
        raise DatasetError(f"cannot read GloVe text {label} ({exc})") from exc
    except ValueError as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{label} holds a value that is not a number ({exc}); "
                           f"expected GloVe text (`word v1 ... vd` per line)") from exc
    finally:
        if own:
            f.close()
    if not blocks:
        raise DatasetError(f"{label} holds no vectors; expected GloVe text (`word v1 ... vd` per line)")
    return words, np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)
