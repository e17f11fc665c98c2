"""The errors the data sources raise, in one place every loader imports from."""
from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are missing; the message says how to provide them."""
