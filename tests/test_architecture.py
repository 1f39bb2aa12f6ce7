"""The import contracts in pyproject.toml cover every module of the package."""

from __future__ import annotations

import pkgutil
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import hls_proxy

ROOT = Path(__file__).resolve().parent.parent


class LayersTests(SynchronousTestCase):
    def test_every_module_has_a_layer(self) -> None:
        import tomllib  # Python 3.11+, as CI runs; the package itself supports 3.10

        config = tomllib.loads((ROOT / "pyproject.toml").read_text())
        contracts = config["tool"]["importlinter"]["contracts"]
        layers = next(c for c in contracts if c["type"] == "layers")["layers"]
        placed = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
        modules = {f"hls_proxy.{info.name}" for info in pkgutil.iter_modules(hls_proxy.__path__)}
        self.assertEqual(sorted(modules - placed), [], "add each new module to a layer")
        self.assertEqual(sorted(placed - modules), [], "a layer names a module that is gone")
