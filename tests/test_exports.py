"""The public names of the metricstream package."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import itertools
import types
from pathlib import Path

import metricstream

PACKAGE_DIR = Path(metricstream.__file__).parent


def attribute_docstrings() -> dict[str, str]:
    """Map each module-level name in the package to the docstring written under it."""
    docs: dict[str, str] = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        body = ast.parse(path.read_text(encoding="utf-8")).body
        for statement, following in itertools.pairwise(body):
            if isinstance(statement, ast.Assign):
                targets = statement.targets
            elif isinstance(statement, ast.AnnAssign):
                targets = [statement.target]
            else:
                continue
            if (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                for target in targets:
                    if isinstance(target, ast.Name):
                        docs[target.id] = following.value.value
    return docs


def defined_in_package(obj: object) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module == "metricstream" or module.startswith("metricstream.")


class TestExports:
    """__all__ is sorted, complete, importable and documented."""

    def test_all_is_sorted_without_duplicates(self) -> None:
        assert metricstream.__all__ == sorted(metricstream.__all__)
        assert len(set(metricstream.__all__)) == len(metricstream.__all__)

    def test_every_exported_name_is_importable(self) -> None:
        namespace: dict[str, object] = {}
        exec("from metricstream import *", namespace)
        namespace.pop("__builtins__")
        assert sorted(namespace) == metricstream.__all__
        for name in metricstream.__all__:
            assert getattr(metricstream, name) is namespace[name]

    def test_every_exported_name_has_a_docstring(self) -> None:
        docs = attribute_docstrings()
        undocumented = []
        for name in metricstream.__all__:
            obj = getattr(metricstream, name)
            if isinstance(obj, (type, types.FunctionType, types.ModuleType)):
                documented = bool((obj.__doc__ or "").strip())
            elif name.startswith("__") and name.endswith("__"):
                documented = True  # package metadata such as __version__
            else:
                documented = bool(docs.get(name, "").strip())
            if not documented:
                undocumented.append(name)
        assert undocumented == []

    def test_every_public_class_and_function_is_exported(self) -> None:
        public = {
            name
            for name, obj in vars(metricstream).items()
            if not name.startswith("_")
            and (inspect.isclass(obj) or inspect.isfunction(obj))
            and defined_in_package(obj)
        }
        assert public - set(metricstream.__all__) == set()

    def test_public_submodules_define_all_their_names(self) -> None:
        for module in (
            metricstream.event,
            metricstream.codecs.lineprotocol,
            metricstream.exceptions,
        ):
            for name in module.__all__:
                assert hasattr(module, name), f"{module.__name__}.{name}"

    def test_version_matches_the_installed_distribution(self) -> None:
        assert metricstream.__version__ == importlib.metadata.version("metricstream")
