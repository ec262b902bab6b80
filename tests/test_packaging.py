"""Packaging: dependencies, LICENSE, the sdist's contents, the wheel's tag and contents, the
warning without the native library, show_config.

The sdist test builds one (no compiler needed, a few seconds). The wheel checks run where a
built wheel is named by $VQINDEX_WHEEL (.ci/run builds one and runs the suite against it
installed), and the installed-package checks where $VQINDEX_EXPECT_INSTALLED=1.
"""
import configparser
import io
import os
import re
import subprocess
import sys
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

import vqindex

REPO = Path(__file__).resolve().parents[1]
CFG = REPO / "setup.cfg"


def _requirements(text):
    return [re.split(r"[<>=!~ ;\[]", line.strip())[0].lower() for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def cfg():
    if not CFG.is_file():
        pytest.skip("setup.cfg not found (not run from a checkout or an unpacked sdist)")
    c = configparser.ConfigParser()
    c.read(CFG)
    return c


def test_install_requires(cfg):
    assert sorted(_requirements(cfg["options"]["install_requires"])) == ["faiss-cpu", "h5py", "numba", "numpy"]
    extras = cfg["options.extras_require"]
    assert "hnswlib" in _requirements(extras["bench"])
    assert "hnswlib" not in _requirements(extras["test"])
    assert cfg["metadata"]["license"] == "MIT" and "LICENSE" in cfg["metadata"]["license_files"]


def test_license_file():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 vqindex authors" in text


def _tracked(prefixes):
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", *prefixes], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.split() if out.returncode == 0 and out.stdout.strip() else None


def test_sdist_holds_what_the_tests_need(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (tar,) = tmp_path.glob("vqindex-*.tar.gz")
    with tarfile.open(tar) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
        info = t.extractfile(next(n for n in t.getnames() if n.endswith("vqindex/_build_info.json"))).read()
    for must in ("LICENSE", "README.md", "setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in",
                 "tests/conftest.py", "datasets/registry.json", "bench/ann_benchmarks/module.py",
                 "bench/ann_benchmarks/config.yml", "bench/ann_benchmarks/Dockerfile", "native/fastscan.c",
                 "vqindex/bench/peers/usearch.py", "vqindex/bench/sweep.py"):
        assert must in names, must
    tracked = _tracked(["tests", "native", "vqindex", "datasets", "bench"])
    missing = [f for f in tracked or () if f not in names and (REPO / f).is_file()]
    assert not missing, f"tracked files missing from the sdist: {missing}"
    assert not [n for n in names if n.endswith((".so", ".pyd", ".dll", ".dylib", ".pyc"))]
    assert b'"commit"' in info


def test_no_native_library_warns_once(monkeypatch):
    from vqindex.kernels import native
    monkeypatch.setattr(native, "lib", None)
    monkeypatch.setattr(native, "load_error", "native library not built")
    monkeypatch.setattr(native, "_warned_missing", False)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert native.scan_q_address() == 0
        native.encode_preferred()
        native.scan_q_address()
    msgs = [str(x.message) for x in w if issubclass(x.category, RuntimeWarning)]
    assert len(msgs) == 1 and "numba kernels" in msgs[0] and "native library not built" in msgs[0]
    monkeypatch.setattr(native, "_warned_missing", False)
    monkeypatch.setattr(native, "load_error", "disabled by VQINDEX_NO_NATIVE")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        native.scan_q_address()
    assert not [x for x in w if issubclass(x.category, RuntimeWarning)]


def test_show_config():
    buf = io.StringIO()
    vqindex.show_config(file=buf)
    text = buf.getvalue()
    for key in ("vqindex " + vqindex.__version__, "numpy ", "numba ", "faiss ", "cpu:", "SIMD:",
                "native backend:", "numba cache:"):
        assert key in text, key
    env = vqindex._config.environment()
    assert env["native"]["backend"] and env["cpu"]["model"]


WHEEL = os.environ.get("VQINDEX_WHEEL")


@pytest.mark.skipif(not WHEEL, reason="$VQINDEX_WHEEL names no built wheel")
def test_wheel_tag_and_contents():
    path = Path(WHEEL)
    name = path.name
    m = re.match(r"vqindex-[^-]+-py3-none-(.+)\.whl$", name)
    assert m, f"{name}: expected a py3-none-<platform> wheel"
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        wheel_meta = z.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
    libs = [n for n in names if re.match(r"vqindex/_fastscan.*\.(so|pyd|dylib|dll)$", n)]
    if sys.platform.startswith("linux") and libs:
        assert m.group(1).startswith("manylinux_"), name
    assert len(libs) <= 1 and not [n for n in libs if "cpython" in n]  # no Python ABI
    assert f"Tag: py3-none-{m.group(1).split('.')[0]}" in wheel_meta
    for must in ("vqindex/bench/peers/usearch.py", "vqindex/bench/codecs.py", "vqindex/cli.py",
                 "vqindex/_build_info.json", "vqindex/codecs/data/"):
        assert any(n.startswith(must) for n in names), must
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)


@pytest.mark.skipif(os.environ.get("VQINDEX_EXPECT_INSTALLED") != "1",
                    reason="set VQINDEX_EXPECT_INSTALLED=1 when testing an installed (non-editable) wheel")
def test_running_against_the_installed_package():
    pkg = Path(vqindex.__file__).resolve().parent
    assert "site-packages" in pkg.parts, pkg
    assert (pkg / "_build_info.json").is_file()
    from vqindex.bench import peers
    assert all(peers.module(m) for m in peers.METHODS)
    exe = Path(sys.executable).with_name("vqindex-bench")
    out = subprocess.run([str(exe), "datasets"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "sift-128-euclidean" in out.stdout
