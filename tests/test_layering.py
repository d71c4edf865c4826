"""Dependencies point one way (docs/design.md#layers): `stages/` and `flows/` use the package `hpo`, `flows/` may
use `stages/`, and nothing points back — not at import time, not inside a function, not through `importlib` with a
module name in a string. Inside `hpo` the layers of `LAYERS` go one way too, and no import — at the top of a module
or inside a function — closes a cycle between modules. And a trial's stages are the functions their CLIs run
(docs/design.md#stages)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hpo.trials import finetune, generation, joint
from stages import trial_stages

ROOT = Path(__file__).resolve().parent.parent
IMPORTERS = {"import_module", "__import__"}  # importlib.import_module("…"), __import__("…")


def from_module(node: ast.ImportFrom, package: tuple[str, ...]) -> str:
    """The module a `from … import` names, absolute (a relative one resolved against the file's `package`)."""
    base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
    return ".".join(p for p in (base, node.module or "") if p)


def imported(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every module a file names in an import statement, or as a string given to `import_module`/`__import__`,
    with its line (relative imports resolved against the file's package below `root`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(root).parent.parts
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = from_module(node, package)
            found.append((node.lineno, module))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            first = node.args[0] if node.args else None
            if name in IMPORTERS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return sorted(found)


def offending(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    """`file:line imports module` for each import under `folder` of a module in (or below) `forbidden`."""
    return [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, module in imported(path)
        if module.split(".")[0] in forbidden
    ]


@pytest.mark.parametrize(
    ("folder", "forbidden"), [("hpo", ("stages", "flows")), ("stages", ("flows",))], ids=["hpo", "stages"]
)
def test_dependencies_point_one_way(folder: str, forbidden: tuple[str, ...]) -> None:
    assert offending(folder, forbidden) == []


def test_the_check_sees_every_way_of_importing(tmp_path: Path) -> None:
    probe = tmp_path / "hpo" / "trials" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "import stages.score\nfrom flows import campaign\n"
        "def f():\n    from stages import score\n    importlib.import_module('stages.generate')\n"
        "from .. import record\n"
    )
    assert imported(probe, tmp_path) == [
        (1, "stages.score"),
        (2, "flows"),
        (4, "stages"),
        (5, "stages.generate"),
        (6, "hpo"),
    ]


def test_trial_stages_are_the_functions_their_clis_run() -> None:
    functions = trial_stages()
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, function in functions.items():
        assert function.__module__ == f"stages.{name}" and function.__name__ == "run"
        assert stages[name]["do"]["cmd"].startswith(f"python -m stages.{name} ")
    for kind in (finetune, generation, joint):
        assert set(kind.STAGES) <= set(functions), kind.__name__


# The layers inside `hpo`, lowest first: a module imports only from its own layer or a lower one. Each entry is a
# module or a package (with everything below it). docs/design.md#layers says what each layer is for.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # what every layer may use: text files, record files and their locks, the folder layout, library internals
    ("foundation", ("hpo.textfile", "hpo.files", "hpo.layout", "hpo.internals", "hpo.tinytopic", "hpo.placement")),
    ("config", ("hpo.config",)),  # the declaration: params file -> typed, frozen Params; the space's dimensions
    ("search", ("hpo.search",)),  # the study, design, proposers, strategies, pruning decisions, objectives
    ("record", ("hpo.record",)),  # decision records, lineage, DVC, warm-start priors read from earlier records
    # what a trial computes with: data, checkpoints, tasks, models in and out, evaluation, validation
    (
        "compute",
        (
            "hpo.data",
            "hpo.checkpoint",
            "hpo.tasks",
            "hpo.cache",
            "hpo.utility",
            "hpo.litgpt_cli",
            "hpo.convert",
            "hpo.export",
            "hpo.generation",
            "hpo.evaluation",
            "hpo.validate",
        ),
    ),
    ("campaign", ("hpo.campaign",)),  # a campaign's bookkeeping behind one object: ask, tell, resume, report
    ("trials", ("hpo.trials",)),  # trial kinds, the live pruners, the warm worker
    ("analysis", ("hpo.analysis",)),  # reading records back: tables, compare, trace, the HTML report
]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    """The index in `LAYERS` of the layer a module of `hpo` belongs to (the package `hpo` itself: None)."""
    for index, (_, members) in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in members):
            return index
    return None


def runtime_imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """The `hpo` modules a file imports when it runs — at its top or inside a function, but not under `if
    TYPE_CHECKING:` — each resolved to the module it loads: `from hpo.x import y` is `hpo.x.y` where that is a
    module, else `hpo.x`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(root).parent.parts

    def exists(module: str) -> bool:
        base = root.joinpath(*module.split("."))
        return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()

    def visit(node: ast.AST) -> Iterator[tuple[int, str]]:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (x for child in node.orelse for x in visit(child))
            return
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("hpo"))
        elif isinstance(node, ast.ImportFrom):
            module = from_module(node, package)
            if module.startswith("hpo"):
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}" if exists(f"{module}.{alias.name}") else module
        for child in ast.iter_child_nodes(node):
            yield from visit(child)

    yield from visit(tree)


def hpo_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ROOT / "hpo").rglob("*.py"))}


def test_every_module_of_hpo_has_a_layer() -> None:
    assert [m for m in hpo_modules() if m != "hpo" and layer_of(m) is None] == []


def test_layers_inside_hpo_point_one_way() -> None:
    upward = [
        f"{path.relative_to(ROOT)}:{line} ({LAYERS[low][0]}) imports {module} ({LAYERS[high][0]})"
        for name, path in hpo_modules().items()
        if (low := layer_of(name)) is not None
        for line, module in runtime_imports(path)
        if (high := layer_of(module)) is not None and high > low
    ]
    assert upward == []


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle of the import graph once (as the path of modules that closes it), by depth-first search."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_closes_a_cycle_inside_hpo() -> None:
    modules = hpo_modules()
    graph = {
        name: {m for _, m in runtime_imports(path) if m in modules and m != name} for name, path in modules.items()
    }
    assert import_cycles(graph) == []


def test_the_layer_checks_see_an_upward_import_and_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    (tmp_path / "hpo" / "record").mkdir(parents=True)
    (tmp_path / "hpo" / "__init__.py").write_text("")
    (tmp_path / "hpo" / "record" / "__init__.py").write_text("")
    (tmp_path / "hpo" / "record" / "a.py").write_text("from hpo.record import b\n")
    probe = tmp_path / "hpo" / "record" / "b.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hpo.trials import worker\n"
        "def f():\n    from hpo.record import a\n    from hpo.analysis import table\n"
    )
    found = list(runtime_imports(probe, tmp_path))
    assert found == [(5, "hpo.record.a"), (6, "hpo.analysis")]  # the type-only import is not run
    assert layer_of("hpo.analysis") > layer_of("hpo.record.b")  # type: ignore[operator]
    a = {m for _, m in runtime_imports(tmp_path / "hpo/record/a.py", tmp_path)}
    assert import_cycles({"hpo.record.a": a, "hpo.record.b": {"hpo.record.a"}}) == [
        ["hpo.record.a", "hpo.record.b", "hpo.record.a"]
    ]
