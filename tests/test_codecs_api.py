"""Codec API: factory spellings, bits accounting (spec §8), bad input, dtype handling, zero vectors."""
import numpy as np
import pytest

import vqindex
from conftest import gauss, unit_vectors
from vqindex.codecs import BlockQuant, EDEN, RaBitQ, TurboQuantMSE, TurboQuantProd

D = 64

ALL_NAMES = ["EDEN1", "EDEN4", "EDEN4BIASED", "EDEN8", "TQmse1", "TQmse4", "TQprod2", "TQprod4G",
             "RaBitQ1", "RaBitQ4", "RaBitQ4MSE", "RaBitQ3C", "RaBitQ9", "BQ1", "BQ2", "BQ3", "BQ4",
             "BQ4U", "BQ1S", "BQ2k2", "BQ3k2U"]

_CODECS = {}


def codec(name, d=D, rotation="fast", seed=0):
    key = (name, d, rotation, seed)
    if key not in _CODECS:
        _CODECS[key] = vqindex.codec_factory(d, name, rotation=rotation, seed=seed)
    return _CODECS[key]


@pytest.fixture(scope="module")
def data():
    return gauss(40, D, 1), gauss(3, D, 2)


# ------------------------------------------------------------------ factory spellings
@pytest.mark.parametrize("name,cls,attrs", [
    ("RaBitQ4", RaBitQ, {"bits": 4, "scale": "unbiased", "rescale": "optimal"}),
    ("RaBitQ", RaBitQ, {"bits": 1}),
    ("RaBitQ3MSE", RaBitQ, {"bits": 3, "scale": "biased"}),
    ("RaBitQ3C", RaBitQ, {"bits": 3, "rescale": "const"}),
    ("EDEN4", EDEN, {"bits": 4, "scale": "unbiased"}),
    ("EDEN4BIASED", EDEN, {"bits": 4, "scale": "biased"}),
    ("eden2biased", EDEN, {"bits": 2, "scale": "biased"}),
    ("TQmse3", TurboQuantMSE, {"bits": 3}),
    ("SQtqmse4", TurboQuantMSE, {"bits": 4}),
    ("TQprod3", TurboQuantProd, {"bits": 3, "qjl": "orthogonal"}),
    ("SQtq4", TurboQuantProd, {"bits": 4, "qjl": "orthogonal"}),
    ("TQprod2G", TurboQuantProd, {"bits": 2, "qjl": "gaussian"}),
    ("BQ4", BlockQuant, {"bits": 4, "block": 2, "scale": "biased", "variant": "multishell"}),
    ("BQ1", BlockQuant, {"bits": 1, "block": 8}),
    ("BQ2", BlockQuant, {"bits": 2, "block": 4}),
    ("BQ3", BlockQuant, {"bits": 3, "block": 3}),
    ("BQ3k2U", BlockQuant, {"bits": 3, "block": 2, "scale": "unbiased"}),
    ("BQ1S", BlockQuant, {"bits": 1, "variant": "sphere"}),
])
def test_factory_spellings(name, cls, attrs):
    c = codec(name)
    assert type(c) is cls
    for k, v in attrs.items():
        assert getattr(c, k) == v, (name, k)
    assert c.rotation.kind == "fast"
    # the canonical name rebuilds the same codec
    again = vqindex.codec_factory(D, c.name)
    assert again.params() == c.params()


def test_faiss_aliases_give_identical_codes(data):
    x, _ = data
    assert np.array_equal(codec("SQtq4").encode(x), codec("TQprod4").encode(x))
    assert np.array_equal(codec("SQtqmse4").encode(x), codec("TQmse4").encode(x))
    rr = vqindex.codec_factory(D, "RR,EDEN4")
    assert rr.rotation.kind == "haar"
    assert np.array_equal(rr.encode(x), vqindex.codec_factory(D, "EDEN4", rotation="haar").encode(x))
    hr = vqindex.codec_factory(D, "HR,EDEN4", rotation="haar")
    assert hr.rotation.kind == "fast"
    assert np.array_equal(hr.encode(x), codec("EDEN4").encode(x))
    assert vqindex.codec_factory(D, " RR , EDEN4BIASED ").scale == "biased"


def test_sa_aliases(data):
    x, _ = data
    c = codec("EDEN3")
    codes = c.sa_encode(x)
    assert np.array_equal(codes, c.encode(x))
    assert np.array_equal(c.sa_decode(codes), c.decode(codes))


# ------------------------------------------------------------------ bits accounting (spec 8)
@pytest.mark.parametrize("name,d,expected", [
    ("TQmse1", 128, 1.25), ("TQmse4", 128, 4.25), ("EDEN1", 128, 1.5), ("EDEN4", 128, 4.5),
    ("EDEN4BIASED", 128, 4.5), ("TQprod4", 128, 4.5), ("RaBitQ1", 128, 1.5), ("RaBitQ4", 128, 4.5),
    ("BQ1", 128, 1.5), ("BQ4", 128, 4.5), ("BQ2U", 128, 2.5),
    ("TQmse1", 1536, 1.02), ("TQmse4", 1536, 4.02), ("EDEN1", 1536, 1.04), ("EDEN4", 1536, 4.04),
    ("TQprod4", 1536, 4.04), ("RaBitQ4", 1536, 4.04), ("BQ1", 1536, 1.04), ("BQ4", 1536, 4.04),
])
def test_bits_per_dim_matches_spec_8(name, d, expected):
    c = vqindex.codec_factory(d, name)
    assert c.bits_per_dim == pytest.approx(c.code_size * 8 / d)
    assert c.bits_per_dim == pytest.approx(expected, abs=0.005)


# ------------------------------------------------------------------ bad input
def test_wrong_dimension(data):
    x, xq = data
    c = codec("EDEN2")
    codes = c.encode(x)
    with pytest.raises(ValueError, match=f"expects d={D}"):
        c.encode(gauss(3, D + 1, 0))
    with pytest.raises(ValueError, match="2-D"):
        c.encode(np.zeros((2, 3, D), np.float32))
    with pytest.raises(ValueError, match="queries has 63 dimensions"):
        c.prepare_queries(gauss(2, D - 1, 0))
    with pytest.raises(ValueError, match="dimensions"):
        c.estimate(gauss(2, D - 1, 0), codes)
    with pytest.raises(ValueError, match="reference has 2 rows"):
        c.encode(x, reference=x[:2])
    with pytest.raises(ValueError, match="training vectors"):
        c.train(gauss(10, D + 2, 0))


@pytest.mark.parametrize("bad,exc,msg", [
    (np.zeros((2, D), np.complex64), TypeError, "complex"),
    (np.zeros((2, D), dtype=object), TypeError, "dtype object"),
    (np.full((2, D), "a"), TypeError, "dtype <U1"),
    (np.zeros((2, D), bool), TypeError, "dtype bool"),
    ([[1.0] * D, [1.0] * (D - 1)], TypeError, "array of numbers"),
])
def test_bad_dtypes(bad, exc, msg):
    c = codec("RaBitQ2")
    with pytest.raises(exc, match=msg):
        c.encode(bad)
    with pytest.raises(exc, match=msg):
        c.prepare_queries(bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected(value, data):
    x, _ = data
    bad = x.copy()
    bad[5, 3] = value
    c = codec("BQ2")
    with pytest.raises(ValueError, match=r"NaN or Inf \(first bad row 5\)"):
        c.encode(bad)
    with pytest.raises(ValueError, match="NaN or Inf"):
        c.prepare_queries(bad)
    with pytest.raises(ValueError, match="NaN or Inf"):
        c.train(bad, center=True)


@pytest.mark.parametrize("name", ["EDEN2", "TQprod3", "RaBitQ3", "BQ4"])
def test_bad_codes(name, data):
    x, xq = data
    c = codec(name)
    codes = c.encode(x)
    for bad in (codes[:, :-1], np.concatenate([codes, codes[:, :1]], axis=1)):
        with pytest.raises(ValueError, match=rf"\(n, {c.code_size}\)"):
            c.decode(bad)
        with pytest.raises(ValueError, match="code_size"):
            c.estimate(xq, bad)
    for dtype in (np.int8, np.int64, np.float32):
        with pytest.raises(TypeError, match="uint8"):
            c.decode(codes.astype(dtype))
        with pytest.raises(TypeError, match="uint8"):
            c.estimate(xq, codes.astype(dtype))
    # a single code row (code_size,) is accepted as (1, code_size)
    np.testing.assert_array_equal(c.decode(codes[0]), c.decode(codes[:1]))


@pytest.mark.parametrize("name,spell", [
    ("EDEN", "EDEN0"), ("EDEN", "EDEN9"), ("TQmse", "TQmse0"), ("TQmse", "TQmse9"),
    ("TQprod", "TQprod1"), ("TQprod", "TQprod9"), ("RaBitQ", "RaBitQ0"), ("RaBitQ", "RaBitQ10"),
    ("BlockQuant", "BQ0"), ("BlockQuant", "BQ5"),
])
def test_bits_out_of_range(name, spell):
    with pytest.raises(ValueError, match=rf"{name} supports \d\.\.\d bits per dimension"):
        vqindex.codec_factory(D, spell)


@pytest.mark.parametrize("cls,bits", [(EDEN, 0), (EDEN, 2.5), (TurboQuantMSE, 9), (TurboQuantProd, 1),
                                      (RaBitQ, 10), (BlockQuant, 5), (EDEN, True)])
def test_bits_out_of_range_constructors(cls, bits):
    with pytest.raises(ValueError, match="bits per dimension"):
        cls(D, bits=bits)


def test_bad_options():
    with pytest.raises(ValueError, match="block size"):
        vqindex.codec_factory(D, "BQ2k7")
    with pytest.raises(ValueError, match="unknown scale rule"):
        EDEN(D, bits=2, scale="mse")
    with pytest.raises(ValueError, match="unknown RaBitQ rescale"):
        RaBitQ(D, bits=2, rescale="fixed")
    with pytest.raises(ValueError, match="unknown QJL projection"):
        TurboQuantProd(D, bits=2, qjl="sparse")
    with pytest.raises(ValueError, match="unknown TurboQuant codebook"):
        TurboQuantMSE(D, bits=2, codebook="uniform")
    with pytest.raises(ValueError, match="unknown BlockQuant variant"):
        BlockQuant(D, bits=2, variant="lattice")
    with pytest.raises(ValueError, match="dimension d must be >= 1"):
        EDEN(0, bits=2)


@pytest.mark.parametrize("spell", ["PQ4", "EDEN", "TQ4", "BQ2x", "RaBitQ4MSEX", "IVF100,EDEN4", ""])
def test_unknown_codec_string(spell):
    with pytest.raises(ValueError, match="unknown codec|exactly one codec|vqindex does not implement"):
        vqindex.codec_factory(D, spell)


def test_codec_description_type_and_count():
    with pytest.raises(TypeError, match="must be a string"):
        vqindex.codec_factory(D, 4)
    with pytest.raises(ValueError, match="exactly one codec"):
        vqindex.codec_factory(D, "EDEN4,BQ2")
    with pytest.raises(ValueError, match="exactly one codec"):
        vqindex.codec_factory(D, "RR")


def test_unknown_metric(data):
    x, xq = data
    c = codec("EDEN2")
    with pytest.raises(ValueError, match="unknown metric 'cosine'"):
        c.estimate(xq, c.encode(x), metric="cosine")


# ------------------------------------------------------------------ accepted input forms
@pytest.mark.parametrize("name", ["EDEN3", "TQprod3", "RaBitQ4", "BQ2", "TQmse2"])
def test_dtypes_and_layouts_equal_float32(name):
    c = codec(name)
    big = gauss(30, 2 * D, 3)
    x32 = np.ascontiguousarray(big[:, ::2])
    ref = c.encode(x32)
    assert not big[:, ::2].flags.c_contiguous
    assert np.array_equal(c.encode(big[:, ::2]), ref)                      # strided view
    assert np.array_equal(c.encode(np.asfortranarray(x32)), ref)           # Fortran order
    assert np.array_equal(c.encode(x32.astype(np.float64)), ref)           # float64
    x16 = x32.astype(np.float16)
    assert np.array_equal(c.encode(x16), c.encode(x16.astype(np.float32)))  # float16
    xi = np.round(x32 * 10).astype(np.int32)
    assert np.array_equal(c.encode(xi), c.encode(xi.astype(np.float32)))    # int
    assert np.array_equal(c.encode(xi.astype(np.uint8)), c.encode(xi.astype(np.uint8).astype(np.float32)))
    assert np.array_equal(c.encode(x32.tolist()), ref)                      # nested lists
    assert np.array_equal(c.encode(x32[0]), ref[:1])                        # one (d,) vector
    q = x32[:4]
    est = c.estimate(q, ref)
    np.testing.assert_array_equal(c.estimate(q.astype(np.float64), ref), est)
    np.testing.assert_array_equal(c.estimate(np.asfortranarray(q), ref), est)
    assert c.encode(np.zeros((0, D), np.float32)).shape == (0, c.code_size)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_zero_vector_encodes_to_zero(name):
    c = codec(name)
    x = unit_vectors(4, D, 5)
    x[1] = 0.0
    codes = c.encode(x)
    xh = c.decode(codes)
    assert np.isfinite(xh).all()
    np.testing.assert_array_equal(xh[1], 0.0)
    assert np.isfinite(c.factors(codes)).all()
    q = unit_vectors(3, D, 6)
    for metric in ("ip", "l2"):
        est = c.estimate(q, codes, metric=metric)
        assert np.isfinite(est).all()
        if metric == "ip":
            np.testing.assert_array_equal(est[:, 1], 0.0)
        else:
            np.testing.assert_allclose(est[:, 1], np.sum(q.astype(np.float64) ** 2, 1), rtol=1e-5)
    # the all-zero batch and a zero query
    z = c.encode(np.zeros((2, D), np.float32))
    assert not np.any(c.decode(z))
    assert np.isfinite(c.estimate(np.zeros((1, D), np.float32), codes)).all()


def test_centre_adds_one_factor_and_round_trips(data):
    x, xq = data
    c = vqindex.codec_factory(D, "EDEN4", seed=1)
    n0 = c.code_size
    c.train(x + 5.0, center=True)
    assert c.code_size == n0 + 4 and c.center.shape == (D,)
    xh = c.decode(c.encode(x + 5.0))
    assert np.mean(np.sum((xh - x - 5.0) ** 2, 1)) / np.mean(np.sum((x + 5.0 - c.center) ** 2, 1)) < 0.02
    c2 = vqindex.codec_factory(D, "EDEN4", seed=1).train(x)  # center=False: a no-op
    assert c2.center is None and c2.code_size == n0
