"""Imports each module named on the command line, inside the image; run by the smoke test's import check.

Prints one line per module: MARK and JSON with the module's name and, when
the import failed, the exception's last line (`ModuleNotFoundError: ...`).
Every module is tried, whatever the ones before it did; SystemExit on import
counts as a failure too.
"""

import importlib
import json
import sys
import traceback

MARK = "hubship-import:"

for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        error = None
    except BaseException as exc:  # anything a module raises on import is its failure, SystemExit too
        error = traceback.format_exception_only(type(exc), exc)[-1].strip()
    print(MARK + json.dumps({"module": name, "error": error}), flush=True)
