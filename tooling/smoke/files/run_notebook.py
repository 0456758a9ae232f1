"""Runs one notebook top to bottom with nbclient, inside the image; run by the smoke test's notebook check.

    python - NOTEBOOK OUTPUT_DIR CELL_TIMEOUT < run_notebook.py

The kernel's working folder is OUTPUT_DIR/work (the notebook itself is
mounted read-only). Writes OUTPUT_DIR/result.json: whether every cell ran,
and for the first that did not, its index (0-based, counting every cell),
its first source lines and its error (`ename: evalue`, or the timeout), with
the traceback's last lines.
"""

import json
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

SOURCE_LINES = 6
TRACEBACK_LINES = 12
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

notebook_path, output, cell_timeout = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
work = output / "work"
work.mkdir(parents=True, exist_ok=True)
notebook = nbformat.read(notebook_path, as_version=4)  # type: ignore[no-untyped-call]
current = {"index": -1}


def remember_cell(cell: object, cell_index: int, **_: object) -> None:
    current["index"] = cell_index


def error_traceback(cell: dict[str, Any]) -> list[str]:
    """The traceback the cell's error output shows (what the user sees), without terminal colours."""
    for output in cell.get("outputs", ()):
        if output.get("output_type") == "error":
            return ANSI.sub("", "\n".join(output.get("traceback", ()))).splitlines()
    return []


client = NotebookClient(
    notebook,
    timeout=cell_timeout,
    resources={"metadata": {"path": str(work)}},
    on_cell_execute=remember_cell,
)
result: dict[str, object] = {"cells": len(notebook.cells), "passed": True}
try:
    client.execute()
except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
    index = current["index"]
    cell: dict[str, Any] = notebook.cells[index] if 0 <= index < len(notebook.cells) else {"source": ""}
    source = str(cell["source"]).splitlines()
    if isinstance(exc, CellTimeoutError):
        error = f"timed out: the cell was still running after {cell_timeout} s (notebook_timeout)"
        lines: list[str] = []
    elif isinstance(exc, CellExecutionError):
        error = f"{exc.ename}: {exc.evalue}"
        lines = error_traceback(cell)[-TRACEBACK_LINES:]
    else:
        error = f"the kernel died: {exc}"
        lines = []
    result = {
        "cells": len(notebook.cells),
        "passed": False,
        "cell": index,
        "source": source[:SOURCE_LINES],
        "error": error,
        "traceback": lines,
    }
(output / "result.json").write_text(json.dumps(result), encoding="utf-8")
