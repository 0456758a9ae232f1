"""The toolkit's layout: stages never reach into each other, and the noxfile runs every command the CLI has.

Read from the source with `ast`, so a lazy import inside a function counts as
much as one at the top of a module.

- The ground floor (below) is vocabulary every stage may use: errors, files,
  the lock format, image references, channels, the registry client, the YAML
  editor, the order of the stages. Ground-floor modules import no stage.
- Every other module under tooling/ is a stage, or part of one's family (a
  package, or a module listed in FAMILIES). A stage imports the ground floor
  and its own family only; the one exception is the build's gate on the lock
  (`tooling.lock`'s check, and the request and verdict it names from
  `tooling.lockrequest`).
- `tooling.cli` is the face: it may import anything, and nothing imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tooling import cli

TOOLING = Path(__file__).resolve().parents[1] / "tooling"
NOXFILE = TOOLING.parent / "noxfile.py"

GROUND_FLOOR = frozenset(
    {
        "tooling",
        "tooling.channels",
        # What a check found, and the hub spawn check: the smoke test and verify both run it.
        "tooling.checkresult",
        "tooling.config",
        "tooling.docker",
        "tooling.errors",
        "tooling.files",
        "tooling.hubcheck",
        "tooling.images",
        "tooling.lockfile",
        "tooling.log",
        # The order of the stages: it names them as data and imports none of them.
        "tooling.pipeline",
        "tooling.proc",
        "tooling.registry",
        "tooling.report",
        "tooling.state",
        "tooling.yamledit",
        "tooling.yamlfiles",
    }
)
# The face and the entry point.
FACE = ("tooling.cli", "tooling.__main__")
# Modules that belong to a stage without being inside its package.
FAMILIES = {
    "tooling.solve": "lock",
    "tooling.lockrequest": "lock",  # what the stage reads and its check says, without conda-lock's import
    "tooling.lockdiff": "lock",  # the lock stage's change report; `lock-diff` shows it for any two locks
    "tooling.buildpack": "build",
    "tooling.r2d_engine": "build",
}
# (importing stage, imported module): the build refuses a stale lock with the lock stage's own check.
ALLOWED_CROSSINGS = frozenset({("build", "tooling.lock"), ("build", "tooling.lockrequest")})


def module_name(path: Path) -> str:
    parts = path.relative_to(TOOLING.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules() -> dict[str, Path]:
    """Every Python module of the toolkit, except the files shipped into images (they run elsewhere)."""
    return {
        module_name(path): path
        for path in sorted(TOOLING.rglob("*.py"))
        if "files" not in path.relative_to(TOOLING).parts[:-1]
    }


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The toolkit's modules a module imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("tooling"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("tooling"):
            # `from tooling import proc` imports a module; `from tooling import __version__` a name of the package.
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known
            found.update(submodules or {node.module})
    return found


def is_face(module: str) -> bool:
    return any(module == face or module.startswith(face + ".") for face in FACE)


def stage_of(module: str) -> str | None:
    """The stage a module belongs to; None for the ground floor and the face."""
    if module in GROUND_FLOOR or is_face(module):
        return None
    for member, family in FAMILIES.items():
        if module == member or module.startswith(member + "."):
            return family
    return module.split(".")[1]


def import_graph() -> dict[str, set[str]]:
    modules = product_modules()
    known = set(modules)
    return {module: imports_of(path, known) for module, path in modules.items()}


def test_the_graph_is_read_whole() -> None:
    graph = import_graph()

    assert {"tooling.build", "tooling.smoke", "tooling.smoke.checks", "tooling.push", "tooling.cli"} <= set(graph)
    assert "tooling.lock" in graph["tooling.build"]
    assert "tooling.checkresult" in graph["tooling.smoke.checks"]
    assert {stage_of(m) for m in graph} >= {"lock", "build", "smoke", "push", "values", None}


def test_no_stage_imports_another_stage() -> None:
    crossings = sorted(
        f"{module} imports {imported}"
        for module, imported_modules in import_graph().items()
        if (stage := stage_of(module)) is not None
        for imported in imported_modules
        if (other := stage_of(imported)) is not None
        and other != stage
        and not is_face(imported)
        and (stage, imported) not in ALLOWED_CROSSINGS
    )

    assert crossings == []


def test_the_ground_floor_imports_no_stage_and_nothing_imports_the_cli() -> None:
    upward = sorted(
        f"{module} imports {imported}"
        for module, imported_modules in import_graph().items()
        if not is_face(module)
        for imported in imported_modules
        if (module in GROUND_FLOOR and stage_of(imported) is not None) or is_face(imported)
    )

    assert upward == []


@pytest.mark.parametrize("module", sorted(GROUND_FLOOR - {"tooling.report"}))
def test_every_ground_floor_module_exists(module: str) -> None:
    assert module in product_modules()


def test_the_noxfile_has_a_session_for_every_command_in_the_cli_order() -> None:
    """The noxfile cannot import the toolkit (nox runs it in its own interpreter), so its list is read with ast."""
    tree = ast.parse(NOXFILE.read_text(encoding="utf-8"))
    assigned = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "STAGE_COMMANDS" for t in node.targets)
    )

    assert tuple(ast.literal_eval(assigned)) == tuple(cli.COMMANDS)
