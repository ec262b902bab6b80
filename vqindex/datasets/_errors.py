"""The one exception type every data-set failure raises."""

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A data set could not be found, downloaded, verified, converted or read.

    The message is one line: what happened and what to do about it (line breaks from
    wrapped library errors are folded into spaces).
    """

    def __init__(self, message=""):
        """message: what happened and what to do; folded onto one line."""
        super().__init__(" ".join(str(message).split()))
