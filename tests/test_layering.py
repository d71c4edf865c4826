"""Dependencies point one way (STYLE lesson 13): `stages/` and `flows/` use the package `hpo`, `flows/` may use
`stages/`, and nothing points back — not at import time, not inside a function, not through `importlib` with a
module name in a string. And a trial's stages are the functions their CLIs run (DESIGN C4)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from hpo.trials import finetune, generation, joint
from stages import trial_stages

ROOT = Path(__file__).resolve().parent.parent
IMPORTERS = {"import_module", "__import__"}  # importlib.import_module("…"), __import__("…")


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
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
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
