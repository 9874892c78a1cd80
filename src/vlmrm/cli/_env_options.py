"""``--option KEY=VALUE``: an env option on the command line (``vlmrm dataset collect``, ``vlmrm bench``)."""

from __future__ import annotations

import argparse


def add_option_argument(parser: argparse.ArgumentParser, example: str) -> None:
    """The repeatable ``--option KEY=VALUE`` flag, parsed by :func:`parse_options` into ``args.options``."""
    parser.add_argument(
        "--option",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"Environment option (repeatable; values are YAML), e.g. --option {example}.",
    )


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``["textured=true", ...]`` -> ``{"textured": True, ...}``; a :class:`ConfigError` for a malformed pair."""
    import yaml

    from vlmrm.errors import ConfigError

    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option must look like KEY=VALUE, got {pair!r}.")
        options[key.strip()] = yaml.safe_load(value)
    return options
