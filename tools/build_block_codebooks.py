"""Regenerate the shipped BlockQuant block codebooks (spec codecs.md §7.2) and their manifest.

Writes vqindex/codecs/data/bq_k{k}_b{b}_{variant}.f32 (raw little-endian float32, K*k values)
and updates vqindex/codecs/data/manifest.json (size, sha256, build time, distortion) after
each file, so an interrupted run keeps what it finished.

    python tools/build_block_codebooks.py                 # defaults, both variants
    python tools/build_block_codebooks.py --big           # K = 4096 ones, both variants
    python tools/build_block_codebooks.py --only 2,4,multishell --only 12,1,sphere
"""
import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vqindex.codecs.block_codebooks import (  # noqa: E402
    BIG_K, DATA_DIR, DEFAULT_K, MANIFEST_PATH, VARIANTS, block_distortion,
    build_block_codebook, codebook_filename, write_codebook_file)

DEFAULT_SET = [(DEFAULT_K[b], b) for b in sorted(DEFAULT_K)] + [(2, 3)]
BIG_SET = [(BIG_K[b], b) for b in sorted(BIG_K)]


def _update_manifest(name, entry):
    manifest = {"format": "raw little-endian float32, row-major (K, k); spec codecs.md §7.2",
                "files": {}}
    if MANIFEST_PATH.exists():
        manifest["files"] = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))["files"]
    manifest["files"][name] = entry
    manifest["files"] = dict(sorted(manifest["files"].items()))
    tmp = MANIFEST_PATH.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    tmp.replace(MANIFEST_PATH)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", action="store_true", help="build the K=4096 codebooks")
    parser.add_argument("--only", action="append", default=[], metavar="K,B,VARIANT",
                        help="build just this one (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="print every Lloyd iteration")
    args = parser.parse_args(argv)
    if args.only:
        jobs = [(int(k), int(b), v) for k, b, v in (s.split(",") for s in args.only)]
    else:
        jobs = [(k, b, v) for k, b in (BIG_SET if args.big else DEFAULT_SET) for v in VARIANTS]
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    print(f"{'file':28s} {'K':>5s} {'build s':>8s} {'distortion':>10s}")
    for k, b, variant in jobs:
        start = time.perf_counter()
        codebook = build_block_codebook(k, b, variant, verbose=args.verbose)
        seconds = time.perf_counter() - start
        name = codebook_filename(k, b, variant)
        write_codebook_file(DATA_DIR / name, codebook)
        raw = (DATA_DIR / name).read_bytes()
        distortion = block_distortion(codebook)
        _update_manifest(name, {"k": k, "b": b, "variant": variant, "K": len(codebook),
                                "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(),
                                "build_seconds": round(seconds, 1),
                                "distortion": round(distortion, 6)})
        print(f"{name:28s} {len(codebook):5d} {seconds:8.1f} {distortion:10.6f}", flush=True)


if __name__ == "__main__":
    main()
