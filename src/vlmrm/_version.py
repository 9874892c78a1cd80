"""The version of vlmrm: written here only (``pyproject.toml`` reads it, ``vlmrm.__version__`` is it)."""

__version__ = "0.2.0.dev0"
