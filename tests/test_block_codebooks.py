"""BlockQuant block codebooks (spec codecs.md §7.2): quality, shipped files, cache, errors."""
import hashlib
import json
import os
import shutil

import numpy as np
import pytest

import vqindex.codecs.block_codebooks as bc
from vqindex.codecs.block_codebooks import (
    block_codebook, block_distortion, build_block_codebook, read_codebook_file)

# §7.3 block distortion on fresh N(0, I_k) data, and §2.1 scalar D_b for the same b.
SPEC_DISTORTION = [
    (8, 1, "multishell", 0.3242), (4, 2, "multishell", 0.0981), (3, 3, "multishell", 0.0275),
    (2, 3, "multishell", 0.0299), (2, 4, "multishell", 0.00802), (8, 1, "sphere", 0.3257),
]
SCALAR_D = {1: 0.3633802276, 2: 0.1174818478, 3: 0.0345477608, 4: 0.0095010080}


@pytest.fixture
def fresh_memo(monkeypatch, tmp_path):
    """Empty in-process memo and a private cache folder."""
    monkeypatch.setattr(bc, "_memo", {})
    monkeypatch.setenv("VQINDEX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "codebooks"


@pytest.mark.parametrize("k,b,variant,spec", SPEC_DISTORTION)
def test_default_codebook_distortion_matches_spec_and_beats_scalar(k, b, variant, spec):
    codebook = block_codebook(k, b, variant)
    assert codebook.shape == (2 ** (k * b), k) and codebook.dtype == np.float32
    distortion = block_distortion(codebook, n=200000, seed=2024)
    assert abs(distortion - spec) <= 0.015 * spec, (distortion, spec)
    assert distortion <= SCALAR_D[b]


def test_sphere_codewords_are_unit_and_b1_sphere_starts_from_sign_code():
    assert np.allclose(np.linalg.norm(block_codebook(8, 1, "sphere"), axis=1), 1.0, atol=1e-6)
    # no Lloyd iteration: normalised jittered hypercube, i.e. close to the sign code
    start = build_block_codebook(8, 1, "sphere", n_iter=0)
    signs = np.array([[1.0 if bit == "1" else -1.0 for bit in f"{i:08b}"] for i in range(256)])
    assert np.abs(start - signs / np.sqrt(8)).max() < 0.1


def test_multishell_distortion_at_most_product_code():
    # Lloyd is monotone from the product initialisation (§7.2); n_iter=0 is that start.
    for k, b in [(4, 2), (2, 4)]:
        start = block_distortion(build_block_codebook(k, b, n_iter=0), n=50000)
        final = block_distortion(block_codebook(k, b), n=50000)
        assert final < start <= SCALAR_D[b] * 1.02


def test_shipped_files_match_manifest():
    manifest = json.loads(bc.MANIFEST_PATH.read_text(encoding="utf-8"))["files"]
    for k, b, variant, _ in SPEC_DISTORTION:
        assert bc.codebook_filename(k, b, variant) in manifest
    for name, entry in manifest.items():
        raw = (bc.DATA_DIR / name).read_bytes()
        assert len(raw) == entry["bytes"] == entry["K"] * entry["k"] * 4
        assert hashlib.sha256(raw).hexdigest() == entry["sha256"]
        assert name == bc.codebook_filename(entry["k"], entry["b"], entry["variant"])
        assert entry["K"] == 2 ** (entry["k"] * entry["b"])


@pytest.mark.parametrize("k,b,variant", [(2, 4, "multishell"), (4, 2, "multishell"),
                                         (2, 3, "sphere")])
def test_rebuild_reproduces_shipped_file(k, b, variant, fresh_memo):
    shipped = block_codebook(k, b, variant)
    rebuilt = build_block_codebook(k, b, variant)
    np.testing.assert_allclose(rebuilt, shipped, rtol=0, atol=1e-5)


def test_block_codebook_is_read_only_and_memoised():
    first = block_codebook(4, 2)
    assert block_codebook(4, 2) is first
    assert not first.flags.writeable
    with pytest.raises(ValueError):
        first[0, 0] = 0.0


def test_shipped_file_with_wrong_sha256_raises(fresh_memo, monkeypatch, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(bc.DATA_DIR, data)
    name = bc.codebook_filename(2, 3, "multishell")
    raw = bytearray((data / name).read_bytes())
    raw[0] ^= 1
    (data / name).write_bytes(bytes(raw))
    monkeypatch.setattr(bc, "DATA_DIR", data)
    monkeypatch.setattr(bc, "MANIFEST_PATH", data / "manifest.json")
    with pytest.raises(ValueError, match="sha256"):
        block_codebook(2, 3)


def test_cache_is_written_atomically_and_reused(fresh_memo, monkeypatch):
    # (3, 1) is not shipped: built on first use, then read from the cache
    built = block_codebook(3, 1)
    path = fresh_memo / "bq_k3_b1_multishell.f32"
    assert sorted(p.name for p in fresh_memo.iterdir()) == [path.name]   # no temp file left
    np.testing.assert_array_equal(read_codebook_file(path, 3, 1), built)
    monkeypatch.setattr(bc, "_memo", {})
    monkeypatch.setattr(bc, "build_block_codebook", lambda *a, **kw: pytest.fail("rebuilt"))
    np.testing.assert_array_equal(block_codebook(3, 1), built)


def test_cache_write_failure_leaves_old_file_and_no_temp(fresh_memo, monkeypatch):
    path = fresh_memo / "bq_k3_b1_multishell.f32"
    old = np.ones((8, 3), dtype=np.float32)
    bc.write_codebook_file(path, old)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(bc.os, "replace", broken_replace)
    with pytest.raises(OSError):
        bc.write_codebook_file(path, np.zeros((8, 3), dtype=np.float32))
    assert sorted(p.name for p in fresh_memo.iterdir()) == [path.name]
    np.testing.assert_array_equal(read_codebook_file(path, 3, 1), old)


@pytest.mark.parametrize("corrupt", [lambda raw: raw[:-4],
                                     lambda raw: b"\x00\x00\xc0\x7f" + raw[4:]])  # NaN
def test_corrupt_cache_file_is_detected_and_rebuilt(fresh_memo, corrupt):
    reference = build_block_codebook(3, 1)
    path = fresh_memo / "bq_k3_b1_multishell.f32"
    path.parent.mkdir(parents=True)
    path.write_bytes(corrupt(reference.astype("<f4").tobytes()))
    with pytest.raises(ValueError):
        read_codebook_file(path, 3, 1)
    np.testing.assert_array_equal(block_codebook(3, 1), reference)
    np.testing.assert_array_equal(read_codebook_file(path, 3, 1), reference)


@pytest.mark.parametrize("k,b,variant", [(13, 1, "multishell"), (4, 4, "multishell"),
                                         (1, 5, "multishell"), (0, 2, "multishell"),
                                         (2.0, 3, "multishell"), (2, 3, "shell")])
def test_unsupported_block_codebook_raises_value_error_naming_allowed(k, b, variant):
    with pytest.raises(ValueError, match=r"multishell|k\*b <= 12"):
        block_codebook(k, b, variant)
    if variant == "multishell":
        with pytest.raises(ValueError, match=r"\(8, 1\).*\(12, 1\)"):
            block_codebook(k, b, variant)


def test_block_distortion_of_product_code_is_scalar_lloyd_max():
    # the exact (unjittered) product code of b-bit levels has the scalar distortion D_b
    for b in (1, 2):
        assert abs(block_distortion(bc._product_init(2, b), n=100000) - SCALAR_D[b]) < 0.01 * SCALAR_D[b]
