"""The one exception type every data-set failure raises (defined in vqindex.errors)."""
from ..errors import DatasetError

__all__ = ["DatasetError"]
