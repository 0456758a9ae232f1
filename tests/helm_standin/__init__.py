"""A `helm` CLI for tests, on Helm's own Go engine (helm-python-sdk); never used by the product.

Run it as `tests/helm_standin/helm` (set HELM_STANDIN_PYTHON to a Python that
has helm-python-sdk). It takes Helm's flags for the commands the toolkit
calls and answers as Helm does: output on stdout, `Error: ...` on stderr and
exit code 1 on failure. HELM_STANDIN_MAJOR (3 or 4, default 3) selects which
Helm `version` claims to be. Each command is one function in `commands.py`;
more commands (upgrade, history, rollback, ...) add a subparser and a
function.
"""

from pathlib import Path

HELM = Path(__file__).resolve().parent / "helm"
