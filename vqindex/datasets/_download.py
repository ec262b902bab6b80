"""Resumable, checksummed downloads with urllib (HTTP Range from the .part size)."""
import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from ._errors import DatasetError

__all__ = ["download", "sha256_file", "verify_sha256", "fetch_json"]

_CHUNK = 1 << 20
_TIMEOUT = 60


def sha256_file(path):
    """Return the hex sha256 of the file at `path`."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path, expected, remove=True):
    """Raise DatasetError if `path`'s sha256 differs from `expected` (None skips the check).

    path: file to check; expected: hex digest or None; remove: delete the file on a mismatch.
    """
    if not expected:
        return
    got = sha256_file(path)
    if got.lower() != str(expected).lower():
        if remove:
            Path(path).unlink(missing_ok=True)
        raise DatasetError(f"checksum mismatch for {Path(path).name}: sha256 {got}, expected {expected}; "
                           f"the {'file was deleted' if remove else 'file is corrupt'}: download it again "
                           f"(or fix the registry entry if the upstream file changed)")


def _progress(total, initial, desc, enabled):
    """Return a tqdm bar (or None when tqdm is missing or disabled)."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, leave=False)


def fetch_json(url):
    """GET `url` and return the decoded JSON; raise DatasetError on any network failure."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "vqindex"}),
                                    timeout=_TIMEOUT) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DatasetError(f"could not fetch {url} ({exc}); check the network connection or place "
                           f"the files in the data directory by hand") from exc


def download(url, dest, sha256=None, progress=True):
    """Download `url` to `dest` unless it exists; resume a `<dest>.part`, verify, rename atomically.

    url: http(s):// or file:// address; dest: final file path; sha256: expected hex digest or
    None; progress: show a tqdm bar when tqdm is importable.
    Returns dest as a Path. On a network error the .part file is kept so a rerun resumes;
    on a checksum mismatch it is deleted. Raises DatasetError.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create data directory {dest.parent} ({exc}); set VQINDEX_DATA "
                           f"to a writable folder") from exc
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "vqindex"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        try:
            resp = urllib.request.urlopen(req, timeout=_TIMEOUT)
        except urllib.error.HTTPError as exc:
            if exc.code != 416 or not have:  # 416: the .part already holds the whole file
                raise
            resp = None
        if resp is not None:
            with resp:
                status = getattr(resp, "status", None) or resp.getcode()
                resumed = have and status == 206
                if not resumed:
                    have = 0
                length = resp.headers.get("Content-Length") if resp.headers else None
                total = have + int(length) if length and length.isdigit() else None
                bar = _progress(total, have, dest.name, progress)
                try:
                    with open(part, "ab" if resumed else "wb") as out:
                        for chunk in iter(lambda: resp.read(_CHUNK), b""):
                            out.write(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
                finally:
                    if bar is not None:
                        bar.close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        kept = f"; partial download kept as {part} and resumed by the next call" \
            if part.exists() and part.stat().st_size else ""
        if part.exists() and not part.stat().st_size:
            part.unlink()
        raise DatasetError(f"download of {url} failed ({exc}){kept}; check the network connection "
                           f"or put {dest.name} into {dest.parent} by hand") from exc
    verify_sha256(part, sha256, remove=True)
    os.replace(part, dest)
    return dest
