"""The version of vlmrm: written here only (``pyproject.toml`` reads it, ``vlmrm.__version__`` is it)."""

__version__ = "0.1.0"
