"""A griffe extension for the API reference: docstrings written with Sphinx habits read as Markdown.

The library's docstrings use Google style with three reST habits that Markdown does not know:
roles (``:class:`~vlmrm.reward.VLMReward` ``), ``Example::`` before an indented code block, and
doctest paragraphs (``>>> ...``), which Markdown reads as nested quotes and joins into one line.
This extension rewrites each docstring as griffe loads it: a role becomes inline code naming its
target (``~`` keeps the last part, as Sphinx shows it), a paragraph's closing ``::`` becomes ``:``
(a lone ``::`` line goes; the indented block after it stays a code block), and each doctest
paragraph becomes a fenced ``pycon`` code block.

Configured in mkdocs.yml (``extensions`` of the python handler); tests/test_docs_claims.py checks
the built pages for raw roles.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|mod|meth|attr|data|exc|obj|const):`([^`]+)`")
DOUBLE_COLON = re.compile(r"(?m)^([ \t]*\S.*?)::[ \t]*$")
LONE_DOUBLE_COLON = re.compile(r"(?m)^[ \t]*::[ \t]*\n")


def _shown(match: re.Match[str]) -> str:
    target = match.group(1).strip()
    if target.endswith(">") and "<" in target:  # :class:`text <target>`
        return f"`{target.split('<')[0].strip()}`"
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target.lstrip('.')}`"


def _fence_doctests(text: str) -> str:
    """Each paragraph that starts with ``>>>`` as a fenced ``pycon`` block (it ends at a blank line)."""
    lines: list[str] = []
    block: list[str] = []
    indent = ""
    for line in [*text.split("\n"), ""]:
        stripped = line.lstrip()
        if not block and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
        if block or stripped.startswith(">>>"):
            if stripped:
                block.append(line)
                continue
            lines += [f"{indent}```pycon", *block, f"{indent}```"]
            block = []
        lines.append(line)
    return "\n".join(lines[:-1])


def markdown_docstring(text: str) -> str:
    """``text`` with Sphinx roles as inline code, reST ``::`` block markers as plain colons and doctests fenced."""
    text = ROLE.sub(_shown, text)
    text = LONE_DOUBLE_COLON.sub("", text)
    text = DOUBLE_COLON.sub(r"\1:", text)
    return _fence_doctests(text)


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring griffe loads with :func:`markdown_docstring`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
