"""Results written to disk: tables as CSV, figures as PNG."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def write_rows_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, columns: Sequence[str]) -> Path:
    """Write ``rows`` to ``path`` with exactly ``columns``, in that order; create parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row[key] for key in columns})
    return path


def headless_pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, which draws without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` to ``path`` (parent folders created) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
