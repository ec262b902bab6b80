"""What this vqindex runs on: versions, commit, native backend, CPU features, numba cache.

`show_config()` prints it; `environment()` returns it as a JSON-ready dict (the sweep records
it in results.json). Nothing here compiles a kernel.
"""
import functools
import json
import os
import platform
import subprocess
import sys

__all__ = ["show_config", "environment", "commit"]

_PKG = os.path.dirname(os.path.abspath(__file__))
#: CPU flags worth reporting for vqindex's kernels (x86 names as /proc/cpuinfo spells them)
_SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512vl",
               "avx512vbmi", "avx512_vnni", "avx_vnni", "asimd", "sve")


@functools.lru_cache(maxsize=None)
def commit():
    """The git commit vqindex was built from: _build_info.json of a built wheel, else
    `git rev-parse HEAD` of the checkout the package is imported from (an editable install),
    else None."""
    info = os.path.join(_PKG, "_build_info.json")
    if os.path.isfile(info):
        try:
            with open(info) as f:
                return json.load(f).get("commit")
        except (OSError, ValueError):
            return None
    root = os.path.dirname(_PKG)
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _version(mod):
    try:
        m = __import__(mod)
    except Exception:
        return None
    return getattr(m, "__version__", "?")


@functools.lru_cache(maxsize=None)
def _cpu():
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "Hardware") and model in ("", platform.machine(),
                                                                            platform.processor()):
                    model = val.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(val.split())
    except OSError:
        pass
    return {"model": model or "unknown", "machine": platform.machine(), "cores": os.cpu_count(),
            "simd": [f for f in _SIMD_FLAGS if f in flags]}


def _native():
    from .kernels import native
    from .kernels.fastscan import available_backends
    scan = available_backends()
    out = {"library": native.library_path, "load_error": native.load_error,
           "scan_backends": scan, "encode_backends": native.encode_backends(),
           "backend": scan[0] if native.lib is not None else "numba"}
    if native.lib is None:
        out["backend"] = f"numba ({native.load_error})"
    return out


def _numba():
    try:
        import numba
    except ImportError:
        return {}
    cache = numba.config.CACHE_DIR or ""
    try:
        layer = numba.threading_layer()
    except Exception:  # no parallel kernel has run yet
        layer = "not started"
    return {"cache_dir": cache or os.path.join(_PKG, "**", "__pycache__") + " (next to the sources)",
            "num_threads": numba.config.NUMBA_NUM_THREADS, "threading_layer": layer,
            "disable_jit": bool(numba.config.DISABLE_JIT)}


def environment():
    """A JSON-ready dict: vqindex version and commit, package versions, platform, CPU model and
    SIMD flags, the native library and its backends, numba's cache folder and threads."""
    from . import __version__
    versions = {"python": sys.version.split()[0]}
    for mod in ("numpy", "numba", "llvmlite", "faiss", "h5py"):
        versions[mod] = _version(mod)
    return {"vqindex": __version__, "commit": commit(), "package": _PKG, "versions": versions,
            "platform": platform.platform(), "cpu": dict(_cpu()), "native": _native(),
            "numba": _numba()}


def show_config(file=None):
    """Print vqindex's configuration: versions, commit, native backend, CPU features, numba cache.

    Parameters
    ----------
    file : file-like, optional
        Where to print (default: sys.stdout).
    """
    e = environment()
    p = functools.partial(print, file=file or sys.stdout)
    p(f"vqindex {e['vqindex']} (commit {e['commit'] or 'unknown'}) at {e['package']}")
    p("versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in e["versions"].items()))
    p(f"platform: {e['platform']}")
    c = e["cpu"]
    p(f"cpu: {c['model']} ({c['machine']}, {c['cores']} cores); SIMD: {' '.join(c['simd']) or 'none found'}")
    n = e["native"]
    p(f"native library: {n['library'] or 'not loaded: ' + str(n['load_error'])}")
    p(f"native backend: {n['backend']}; scan backends {', '.join(n['scan_backends'])}; "
      f"encode backends {', '.join(n['encode_backends']) or 'none (numba)'}")
    nb = e["numba"]
    if nb:
        p(f"numba cache: {nb['cache_dir']}; NUMBA_NUM_THREADS {nb['num_threads']}; "
          f"threading layer {nb['threading_layer']}")
