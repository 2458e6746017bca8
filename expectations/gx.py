"""Great Expectations as segmint imports it: without its Spark integration or its charts, and only where it is used.

Importing GX takes about 3 CPU s (issue 18), so the modules that need it at import (the suites) are imported by
the checks that run them, and expectations/validate.py imports this module when it validates; loading the
definitions does not import GX.

GX imports pyspark whenever pyspark is installed (great_expectations/compatibility/pyspark.py), for its Spark
datasources: about 0.3 CPU s more, paid by every run, although segmint validates pandas frames only. pyspark is
in the environment for the Spark engine (orchestration/lib/spark_*.py), not for GX. So while GX is imported,
pyspark is made unimportable, and GX takes the path it takes when pyspark is not installed (its default install:
every use of pyspark in GX checks for it first). When something imported pyspark before, GX gets it as usual.

GX also imports altair (0.25 CPU s) for the charts of one expectation's renderer (KL divergence), which segmint
never renders: that expectation's module gets a stand-in that imports altair when a chart is drawn.
"""

import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def _unimportable(module: str) -> Iterator[None]:
    """`import module` (and its submodules) raises ImportError inside the block, unless it is already imported."""
    if module in sys.modules:
        yield
        return
    sys.modules[module] = None  # the import system's own marker for "not importable"
    try:
        yield
    finally:
        if module in sys.modules and sys.modules[module] is None:
            del sys.modules[module]


class _ImportedOnFirstUse(types.ModuleType):
    """Stands in for a module while GX is imported; the first attribute read imports the real one and reads it."""

    def __getattr__(self, name: str):
        return getattr(importlib.import_module(self.__name__), name)


@contextmanager
def _imported_on_first_use(module: str) -> Iterator[None]:
    """`import module` inside the block binds a stand-in (unless it is already imported); after the block, `import
    module` anywhere imports the real one."""
    if module in sys.modules:
        yield
        return
    stand_in = sys.modules[module] = _ImportedOnFirstUse(module)
    try:
        yield
    finally:
        if sys.modules.get(module) is stand_in:
            del sys.modules[module]


with _unimportable("pyspark"), _imported_on_first_use("altair"):
    import great_expectations as gx
    import great_expectations.expectations as gxe

__all__ = ["gx", "gxe"]
