"""Write files under a temporary name and rename them into place (no partial files)."""
import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["atomic_path", "writable_dir", "user_cache_dir"]


def user_cache_dir():
    """Return the per-user cache folder: $XDG_CACHE_HOME/vqindex or ~/.cache/vqindex."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vqindex"


def _can_write(d):
    """Return True if folder `d` exists (or can be made) and is writable.

    A folder with no write permission bits counts as read-only even for root (who could
    write anyway): a shared, read-only data folder must not receive cache files.
    """
    try:
        d.mkdir(parents=True, exist_ok=True)
        mode = d.stat().st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(d, os.W_OK | os.X_OK)


def writable_dir(preferred):
    """Return `preferred` if writable, else the user cache folder, else None.

    preferred: Path of the folder where a derived file would best go (beside its source).
    """
    for d in (Path(preferred), user_cache_dir()):
        if _can_write(d):
            return d
    return None


@contextlib.contextmanager
def atomic_path(final):
    """Yield a temporary Path beside `final`; rename it to `final` on success, delete it on error.

    final: Path the finished file should have.
    """
    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            try:
                tmp.unlink()
            except OSError:
                pass
