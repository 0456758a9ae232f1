"""The tutorial notebooks a simulated user runs: their code cells, read from the .ipynb JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tooling.errors import ConfigError
from tooling.loadtest.journey import Notebook


def read_notebook(path: Path, label: str) -> Notebook:
    """The non-empty code cells of the notebook at `path`, in order; `label` is how hub.toml names it."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        cells = document["cells"]
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such notebook ([smoke] notebooks names it).") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a Jupyter notebook ({exc}).") from None
    code = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        if text.strip():
            code.append(text)
    if not code:
        raise ConfigError(f"{path}: the notebook has no code cell to run.")
    return Notebook(label, tuple(code))
