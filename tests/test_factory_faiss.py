"""The factory speaks faiss: Flat on every index type, IDMap prefixes, RaBitQfs spellings,
short messages for faiss-only tokens, one codec registry behind the parser, the help text,
`index.description` (a reverse factory) and the README table (issue 11 item 2)."""
import os

import faiss
import numpy as np
import pytest

import vqindex
from vqindex.codecs.registry import CODECS, markdown_table

D_ = 24
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CODEC_TOKENS = ["RaBitQ1", "RaBitQ4MSE", "RaBitQ3C", "EDEN2", "EDEN4BIASED", "TQmse3",
                "TQprod4", "TQprod3G", "BQ1", "BQ3k3", "BQ3S", "BQ4U", "RR,EDEN4"]
STRUCTURES = ["{}", "IVF8,{}", "HNSW8,{}", "{},RFlat", "IVF8,{},Refine(Flat)"]


def _same_empty_index(a, b):
    assert type(a) is type(b) and a.d == b.d and a.metric == b.metric
    assert a.params == b.params
    for attr in ("nlist", "M"):
        assert getattr(a, attr, None) == getattr(b, attr, None)
    ca, cb = getattr(a, "codec", None), getattr(b, "codec", None)
    assert (ca is None) == (cb is None)
    if ca is not None:
        assert type(ca) is type(cb) and ca.params() == cb.params()
    if hasattr(a, "base"):
        _same_empty_index(a.base, b.base)


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("codec", CODEC_TOKENS + ["Flat"])
def test_description_rebuilds_an_equal_empty_index(structure, codec):
    if codec.startswith("RR,") and structure != "{}":
        desc = "RR," + structure.format(codec[3:])
    else:
        desc = structure.format(codec)
    for metric in ("l2", "cosine"):
        a = vqindex.index_factory(D_, desc, metric)
        b = vqindex.index_factory(D_, a.description, a.metric)
        _same_empty_index(a, b)
        assert b.description == a.description


def test_every_registry_family_parses_its_own_canonical_name():
    for spec in CODECS:
        tok = spec.spelling.split(",")[0].split("..")[0].split(" ")[0]
        codec = vqindex.codec_factory(D_, tok)
        again = vqindex.codec_factory(D_, codec.name)
        assert again.params() == codec.params(), tok


def test_faiss_spellings_are_accepted():
    assert isinstance(vqindex.index_factory(D_, "Flat"), vqindex.IndexFlat)
    assert isinstance(vqindex.index_factory(D_, "IVF16,Flat"), vqindex.IndexIVFFlat)
    assert isinstance(vqindex.index_factory(D_, "HNSW32,Flat"), vqindex.IndexHNSWFlat)
    assert isinstance(vqindex.index_factory(D_, "HNSW32"), vqindex.IndexHNSWFlat)  # as faiss
    assert isinstance(vqindex.index_factory(D_, "IDMap,Flat"), vqindex.IndexFlat)
    assert vqindex.index_factory(D_, "IDMap2,IVF16,EDEN4").description == "IVF16,EDEN4"
    assert vqindex.index_factory(D_, "RaBitQfs").codec.name == "RaBitQ1"
    assert vqindex.index_factory(D_, "IVF16,RaBitQfs4").description == "IVF16,RaBitQ4"
    ref = vqindex.index_factory(D_, "Flat,RFlat")
    assert isinstance(ref.base, vqindex.IndexFlat)


def test_hnsw_efconstruction_from_the_string_round_trips():
    for desc, efc in (("HNSW16_efc100,RaBitQ5", 100), ("HNSW8_efc64,Flat", 64),
                      ("hnsw32_EFC200,EDEN4,RFlat", 200), ("HNSW16,EDEN4", 40)):
        idx = vqindex.index_factory(D_, desc)
        base = getattr(idx, "base", idx)
        assert base.efConstruction == efc, desc
        again = vqindex.index_factory(D_, idx.description)
        assert getattr(again, "base", again).efConstruction == efc
        assert ("_efc" in idx.description) == (efc != 40)
    idx = vqindex.index_factory(D_, "HNSW16,EDEN4")
    idx.efConstruction = 120  # the attribute and the string agree
    assert idx.description == "HNSW16_efc120,EDEN4"
    for bad in ("HNSW16_efc0,EDEN4", "HNSW16_efc70000,EDEN4"):
        with pytest.raises(ValueError, match="efConstruction"):
            vqindex.index_factory(D_, bad)
    with pytest.raises(ValueError):
        vqindex.index_factory(D_, "HNSW16_ef100,EDEN4")


@pytest.mark.parametrize("desc,token", [
    ("IVF4096,PQ32", "PQ32"), ("OPQ16,IVF256,PQ16", "OPQ16"), ("SQ8", "SQ8"),
    ("PCA32,IVF64,Flat", "PCA32"), ("LSH", "LSH"), ("IVF64,PQ16x4fs,RFlat", "PQ16x4fs"),
    ("RQ4x8", "RQ4x8"), ("IVF256,Flat,Refine(SQ8)", "Refine(SQ8)"),
])
def test_faiss_only_tokens_get_a_short_message(desc, token):
    with pytest.raises(ValueError) as err:
        vqindex.index_factory(D_, desc)
    msg = str(err.value)
    assert len(msg) < 300 and repr(token) in msg and "faiss" in msg
    assert "factory_help" in msg
    faiss.index_factory(64, desc)  # it really is a faiss string


def test_unknown_token_message_is_short_and_points_to_help():
    with pytest.raises(ValueError) as err:
        vqindex.index_factory(D_, "IVF16,NOPE7")
    msg = str(err.value)
    assert len(msg) < 300 and "'NOPE7'" in msg and "factory_help" in msg
    with pytest.raises(ValueError, match="HNSW M"):
        vqindex.index_factory(D_, "HNSW1,EDEN4")
    with pytest.raises(ValueError, match="empty token"):
        vqindex.index_factory(D_, "IVF16,,EDEN4")


def test_factory_help_lists_the_grammar_and_every_codec():
    text = vqindex.factory_help()
    for spec in CODECS:
        assert spec.spelling in text
    for tok in ("IDMap", "Flat", "RFlat", "HNSW<M>", "IVF<nlist>"):
        assert tok in text


def test_readme_codec_table_comes_from_the_registry():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert markdown_table() in readme


def test_flat_storage_is_exact_like_faiss():
    rng = np.random.default_rng(3)
    xb = rng.standard_normal((1500, D_)).astype(np.float32)
    xq = rng.standard_normal((20, D_)).astype(np.float32)
    for metric, ref in (("l2", faiss.IndexFlatL2(D_)), ("ip", faiss.IndexFlatIP(D_))):
        ref.add(xb)
        Dr, Ir = ref.search(xq, 10)
        for desc in ("Flat", "IVF8,Flat", "HNSW16,Flat", "Flat,RFlat"):
            idx = vqindex.index_factory(D_, desc, metric)
            idx.train(xb)
            idx.add(xb)
            if "IVF" in desc:
                idx.nprobe = 8
            if "HNSW" in desc:
                idx.efSearch = 400
            D, I = idx.search(xq, 10)
            assert (I == Ir).mean() > 0.99, (desc, metric)
            np.testing.assert_allclose(D, Dr, rtol=1e-4, atol=1e-3)
