"""The ``vlmrm`` command line."""
