"""``vlmrm``: the command-line entry point.

Each subcommand lives in its own module under ``vlmrm.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` to a function taking the
parsed arguments and returning an exit code. Heavy imports (torch, MuJoCo) happen inside the
handlers, so ``vlmrm --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence

from vlmrm._version import __version__
from vlmrm.errors import ModelLoadError, VLMRMError

# One module per subcommand, in the order --help lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "vlmrm.cli.train",
    "vlmrm.cli.enjoy",
    "vlmrm.cli.inspect",
    "vlmrm.cli.score",
    "vlmrm.cli.landscape",
    "vlmrm.cli.dataset",
    "vlmrm.cli.epic",
    "vlmrm.cli.rewards",
    "vlmrm.cli.render",
    "vlmrm.cli.bench",
    "vlmrm.cli.sweep",
    "vlmrm.cli.report",
    "vlmrm.cli.push",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlmrm",
        description="Vision-language models as zero-shot reward models for reinforcement learning.",
    )
    parser.add_argument("--version", action="version", version=f"vlmrm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="Show debug logging.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def error_message(exc: VLMRMError, model_option: str = "--model {spec}") -> str:
    """The message of ``exc``, with hints worded as options of the subcommand's command line.

    ``model_option`` is how the subcommand names a model (each sets it with ``set_defaults``; ``train``
    says ``--set reward.model={spec}``).
    """
    if isinstance(exc, ModelLoadError):
        return exc.describe(model_option)
    return str(exc)


def one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """A warning on the terminal: its message alone, not the library source line that raised it."""
    return f"warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    # PyOpenGL announces at INFO level that an optional accelerator module is missing: noise.
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    # huggingface_hub has a stderr handler of its own: without this each of its warnings prints twice.
    logging.getLogger("huggingface_hub").propagate = False
    warnings.formatwarning = one_line_warning
    try:
        return int(args.handler(args) or 0)
    except VLMRMError as exc:
        print(f"error: {error_message(exc, getattr(args, 'model_option', '--model {spec}'))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
