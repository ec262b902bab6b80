"""Reader for embedding tables in parquet (Qdrant's DBpedia OpenAI3 schema)."""
from pathlib import Path

import numpy as np

from ._errors import DatasetError

__all__ = ["parquet_files", "embedding_column", "read_parquet_embeddings", "parquet_rows"]


def _pq():
    """Import pyarrow.parquet or raise DatasetError saying how to install it."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DatasetError("reading parquet embeddings needs pyarrow: pip install pyarrow") from exc
    return pq


def parquet_files(folder):
    """Return the sorted `train-*.parquet` files of `folder` (else all `*.parquet`)."""
    folder = Path(folder)
    files = sorted(folder.glob("train-*.parquet")) or sorted(folder.glob("*.parquet"))
    return [f for f in files if not f.name.startswith(".")]


def embedding_column(schema, path, preferred=None):
    """Return the embedding column's name in a parquet `schema` (a list column ending in "embedding")."""
    import pyarrow as pa

    names = list(schema.names)
    if preferred and preferred in names:
        return preferred
    cands = [n for n in names if n.lower().endswith("embedding") and
             (pa.types.is_list(schema.field(n).type) or pa.types.is_large_list(schema.field(n).type)
              or pa.types.is_fixed_size_list(schema.field(n).type))]
    if len(cands) != 1:
        raise DatasetError(f"{path}: expected one list column named like "
                           f"'text-embedding-3-large-1536-embedding', found columns {names}")
    return cands[0]


def parquet_rows(path):
    """Return the number of rows of a parquet file from its footer (cheap)."""
    try:
        return _pq().ParquetFile(path).metadata.num_rows
    except Exception as exc:  # pyarrow raises several types for broken files
        raise DatasetError(f"{path} is not a readable parquet file ({exc}); delete it and "
                           f"download it again") from exc


def _to_matrix(arr, path):
    """Return float32 (n, d) from a pyarrow list array of equal-length float lists."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        raise DatasetError(f"{path}: {arr.null_count} rows have no embedding")
    n = len(arr)
    if n == 0:
        return None
    lens = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    d = int(lens[0])
    if d < 1 or (lens != d).any():
        raise DatasetError(f"{path}: embeddings have different lengths ({int(lens.min())}..{int(lens.max())})")
    flat = pc.list_flatten(arr).to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(n, d)


def read_parquet_embeddings(files, column=None, limit=None):
    """Read embeddings (and `_id`s when present) from parquet files in order.

    files: list of paths; column: embedding column name or None to detect; limit: stop after
    this many rows (None = all).
    Returns (ids list of str or None, float32 (n, d) C-contiguous).
    """
    pq = _pq()
    blocks, ids, total = [], [], 0
    for path in files:
        if limit is not None and total >= limit:
            break
        try:
            pf = pq.ParquetFile(path)
            col = embedding_column(pf.schema_arrow, path, column)
            cols = [col] + (["_id"] if "_id" in pf.schema_arrow.names else [])
            for batch in pf.iter_batches(batch_size=8192, columns=cols):
                m = _to_matrix(batch.column(col), path)
                if m is None:
                    continue
                if limit is not None:
                    m = m[:limit - total]
                blocks.append(m)
                if "_id" in cols and ids is not None:
                    ids += [str(x) for x in batch.column("_id").to_pylist()[:len(m)]]
                else:
                    ids = None
                total += len(m)
                if limit is not None and total >= limit:
                    break
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(f"{path} is not a readable parquet embedding file ({exc}); delete it "
                               f"and download it again") from exc
    if not blocks:
        raise DatasetError(f"no embeddings found in {[str(f) for f in files][:3]}")
    if len({b.shape[1] for b in blocks}) != 1:
        raise DatasetError(f"parquet files {[str(f) for f in files][:3]}... mix embedding dimensions")
    return ids, np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)
