"""The house rules: imports run one way through the layers, and modules stay small.

The layers, bottom first (see docs/architecture.md)::

    0 base       exceptions, option checks, redaction, bounded caches, logging, files
    1 model      metricstream.event and its validation
    2 codecs     metricstream.codecs
    3 contract   metricstream.contract (Sink, EventBatch), metricstream.registry
      aggregate  metricstream.aggregate (series, windows, sketches), beside the
                 contract: it imports only the model and the base
    4 ends       metricstream.streamer | metricstream.sinks | metricstream.spool | testing
    5 top        metricstream.cli, metricstream.integrations, metricstream.query,
                 metricstream.server
    6 package    metricstream itself (its __init__) and __main__

A module may import its own layer or lower ones. In layer 4 the rooms are
separate: only the streamer's engine may use the spool. Inside the
streamer, the operations may import the engine; the engine never imports
the operations or the facade (`SEAMS`). The aggregation core imports
nothing above the model (`LOWER_LAYERS_ONLY`), so that the streamer and the
relay both stand on it.
separate: only the streamer may use the spool. Every import is an import
statement this test can see: no module imports another by a name it
computes or by a path at run time (see `TestNoHiddenImports`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import metricstream

PACKAGE_DIR = Path(metricstream.__file__).parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60
LONG_MODULES = {"metricstream.codecs.lineprotocol"}
"""The line protocol parser may be longer: it is one grammar."""

LAYERS: list[tuple[int, str]] = [
    (0, "metricstream.exceptions"),
    (0, "metricstream._options"),
    (0, "metricstream._secrets"),
    (0, "metricstream._bounded"),
    (0, "metricstream._log"),
    (0, "metricstream._files"),
    (0, "metricstream._threads"),
    (0, "metricstream._compiled"),
    (0, "metricstream._speedups"),
    (1, "metricstream._validate"),
    (1, "metricstream._timestamps"),
    (1, "metricstream.event"),
    (1, "metricstream.columns"),
    (1, "metricstream.properties"),
    (2, "metricstream.codecs"),
    (3, "metricstream.contract"),
    (3, "metricstream.registry"),
    (3, "metricstream.aggregate"),
    (4, "metricstream.streamer"),
    (4, "metricstream.sinks"),
    (4, "metricstream.spool"),
    (4, "metricstream.testing"),
    (5, "metricstream.cli"),
    (5, "metricstream.integrations"),
    (5, "metricstream.query"),
    (5, "metricstream.server"),
    (6, "metricstream.__main__"),
    (6, "metricstream"),
]
LOWER_LAYERS_ONLY = {"metricstream.aggregate": 1}
"""Rooms that may import, besides themselves, only the layers up to the one given."""
ROOM_IMPORTS_ALLOWED = {("metricstream.streamer.engine", "metricstream.spool")}
"""Imports allowed between two rooms of the same layer: (importer prefix, room)."""

SEAMS: list[tuple[str, str]] = [
    ("metricstream.streamer.engine", "metricstream.streamer.operations"),
    ("metricstream.streamer.engine", "metricstream.streamer.streamer"),
]
"""(importer prefix, target prefix) pairs inside a room that must never import one another."""


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def allowed_between_rooms(module: str, target_room: str) -> bool:
    return any(
        within(module, importer) and room_ == target_room
        for importer, room_ in ROOM_IMPORTS_ALLOWED
    )


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def room(module: str) -> tuple[int, str]:
    for layer, prefix in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer, prefix
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS")


def imported(path: Path, known: dict[str, Path]) -> Iterator[tuple[int, str]]:
    """Yield (line, module) for every metricstream module `path` imports, anywhere in it."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("metricstream"):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("metricstream"):
                continue
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield node.lineno, candidate if candidate in known else node.module


class TestLayers:
    """Imports run one way through the layers, with no cycles."""

    def test_every_module_belongs_to_a_layer(self) -> None:
        for module in modules():
            room(module)

    def test_no_module_imports_a_higher_layer_or_another_room(self) -> None:
        known = modules()
        wrong = []
        for module, path in known.items():
            layer, own_room = room(module)
            for line, target in imported(path, known):
                target_layer, target_room = room(target)
                if target_layer > layer:
                    wrong.append(
                        f"{module}:{line} imports {target} (layer {target_layer} > {layer})"
                    )
                elif (
                    target_layer == layer
                    and target_room != own_room
                    and not allowed_between_rooms(module, target_room)
                    and layer == 4
                ):
                    wrong.append(f"{module}:{line} imports {target} from another room")
        assert wrong == []

    def test_the_engine_never_imports_the_operations_or_the_facade(self) -> None:
        known = modules()
        wrong = [
            f"{module}:{line} imports {target}"
            for module, path in known.items()
            for line, target in imported(path, known)
            for importer, forbidden in SEAMS
            if within(module, importer) and within(target, forbidden)
        ]
        assert wrong == []

    def test_only_the_engine_uses_the_spool_in_its_layer(self) -> None:
        known = modules()
        users = {
            module
            for module, path in known.items()
            if room(module)[0] == 4 and not within(module, "metricstream.spool")
            for _, target in imported(path, known)
            if within(target, "metricstream.spool")
        }
        assert users
        assert {u for u in users if not within(u, "metricstream.streamer.engine")} == set()

    def test_rooms_kept_low_import_only_the_layers_below(self) -> None:
        known = modules()
        wrong = []
        for module, path in known.items():
            _, own_room = room(module)
            highest = LOWER_LAYERS_ONLY.get(own_room)
            if highest is None:
                continue
            for line, target in imported(path, known):
                target_layer, target_room = room(target)
                if target_room != own_room and target_layer > highest:
                    wrong.append(f"{module}:{line} imports {target} (layer {target_layer})")
        assert wrong == []

    def test_there_are_no_import_cycles(self) -> None:
        known = modules()
        graph = {
            module: {target for _, target in imported(path, known) if target != module}
            for module, path in known.items()
        }
        cycles = []
        state: dict[str, int] = {}

        def visit(module: str, trail: list[str]) -> None:
            state[module] = 1
            for target in sorted(graph.get(module, ())):
                if state.get(target) == 1:
                    cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
                elif target not in state:
                    visit(target, [*trail, target])
            state[module] = 2

        for module in sorted(graph):
            if module not in state:
                visit(module, [module])
        assert cycles == []

    def test_the_checker_sees_an_engine_module_importing_the_operations(
        self, tmp_path: Path
    ) -> None:
        bad = tmp_path / "bad.py"
        bad.write_text("from metricstream.streamer.operations import lifecycle\n", "utf-8")
        found = list(imported(bad, modules()))
        assert found == [(1, "metricstream.streamer.operations.lifecycle")]
        module = "metricstream.streamer.engine.pipeline"
        assert any(
            within(module, importer) and within(found[0][1], forbidden)
            for importer, forbidden in SEAMS
        )

    def test_the_checker_sees_a_wrong_import(self, tmp_path: Path) -> None:
        """A model module importing the streamer would be reported."""
        bad = tmp_path / "bad.py"
        bad.write_text("from metricstream.streamer import EventStreamer\n", encoding="utf-8")
        found = list(imported(bad, modules()))
        assert found == [(1, "metricstream.streamer")]
        assert room(found[0][1])[0] > room("metricstream.event")[0]


DYNAMIC_IMPORTS_ALLOWED: dict[str, str] = {
    "metricstream.registry": "loads the entry points of the metricstream.sinks group: the "
    "plug-in mechanism, by which built-in and third-party sinks register alike",
}
"""Modules that may load code by a name they do not spell out, and why."""

_HIDDEN_IMPORT_CALLS = {
    "__import__",
    "spec_from_file_location",
    "module_from_spec",
    "SourceFileLoader",
    "run_path",
    "run_module",
    "iter_modules",
    "walk_packages",
}
_HIDDEN_IMPORT_MODULES = {"pkgutil", "runpy", "imp"}


def hidden_imports(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line, what) for each import this test could not see in `path`.

    That is: ``importlib.import_module`` with anything but a string literal,
    ``__import__``, loading a module from a file (``spec_from_file_location``,
    ``SourceFileLoader``, ``runpy``), scanning packages (``pkgutil``), and an
    entry point's ``load()``.
    """
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in _HIDDEN_IMPORT_MODULES:
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.module in _HIDDEN_IMPORT_MODULES:
            yield node.lineno, f"from {node.module} import ..."
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            literal = bool(node.args) and isinstance(node.args[0], ast.Constant)
            if name == "import_module" and not literal:
                yield node.lineno, "importlib.import_module of a computed name"
            elif name in _HIDDEN_IMPORT_CALLS:
                yield node.lineno, f"{name}()"
            elif name == "load" and not node.args and "entry" in ast.unparse(func).lower():
                yield node.lineno, "an entry point's load()"


class TestNoHiddenImports:
    """Imports the layer checks cannot see are refused, so the layers hold at run time too."""

    def test_no_module_imports_by_a_computed_name_or_a_path(self) -> None:
        found = [
            f"{module}:{line}: {what}"
            for module, path in modules().items()
            if module not in DYNAMIC_IMPORTS_ALLOWED
            for line, what in hidden_imports(path)
        ]
        assert found == []

    def test_each_allowed_exception_still_needs_its_place(self) -> None:
        for module in DYNAMIC_IMPORTS_ALLOWED:
            assert list(hidden_imports(modules()[module])), f"{module} no longer needs it"

    def test_the_checker_sees_hidden_imports(self, tmp_path: Path) -> None:
        """Each way of importing out of the layer checks' sight is reported."""
        bad = tmp_path / "bad.py"
        bad.write_text(
            "import importlib\nimport pkgutil\n"
            "importlib.import_module(f'metricstream.sinks.{name}')\n"
            "importlib.import_module('json')\n"
            "__import__('metricstream.streamer')\n"
            "importlib.util.spec_from_file_location('m', '/tmp/m.py')\n"
            "entry_point.load()\n",
            encoding="utf-8",
        )
        assert sorted(line for line, _ in hidden_imports(bad)) == [2, 3, 5, 6, 7]


class TestSizes:
    """A newcomer reads a module in one sitting and a function on one screen."""

    @pytest.mark.parametrize("module", sorted(modules()))
    def test_module_length(self, module: str) -> None:
        lines = modules()[module].read_text(encoding="utf-8").count("\n")
        limit = 10_000 if module in LONG_MODULES else MAX_MODULE_LINES
        assert lines <= limit, f"{module} has {lines} lines"

    @pytest.mark.parametrize("module", sorted(modules()))
    def test_function_length(self, module: str) -> None:
        tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
        long = [
            f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno is not None
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
        ]
        assert long == []
