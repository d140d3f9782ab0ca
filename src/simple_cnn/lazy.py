"""Heavy modules imported by the node that uses them, not by the pipeline that names it.

Every ``kedro`` command builds the pipelines and checks the parameters before it does anything;
that needs the node functions and the parameter models, not torch, scikit-learn or matplotlib
(seconds each to import). So the project keeps one rule, which ``tests/test_startup.py`` holds:

- the modules that describe parameters (``parameters.py`` and the ``config``/``*_params``
  modules it reads) and the pipelines' ``nodes.py`` import no heavy library;
- a ``nodes.py`` names each heavy core module it calls with :func:`deferred`, at the top, as it
  would import it; the import happens when a node first uses it;
- a node's annotations name only light types (Kedro reads them to validate parameters).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

HEAVY = ("torch", "torchvision", "kornia", "sklearn", "scipy", "skimage", "matplotlib", "pandas",
         "mlflow")
"""What the pipelines' registration and the parameter checks never import."""


class _Deferred:
    """A module, imported on its first attribute access. ``importlib.import_module`` holds
    Python's import lock, so threads that first use it together import it once."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        if attribute == "_name":  # not set yet: a copy being made
            raise AttributeError(attribute)
        return getattr(self._module(), attribute)

    def _module(self) -> ModuleType:
        return importlib.import_module(self._name)

    def __repr__(self) -> str:
        return f"<deferred module {self._name!r}>"


def deferred(name: str) -> Any:
    """``training = deferred("simple_cnn.training.run")``: ``training.train_cnn(...)`` imports
    the module the first time it runs."""
    return _Deferred(name)
