"""Config folders that other packages add to vaegan-runner's Hydra search path.

A package that ships a family (``vaegan_runner/models/external.py``) ships its YAML too: a
package holding a ``model/<family>.yaml`` (and, if it likes, ``family_optimizer/``,
``family_dataset/``, ``hparams_search/`` or ``experiment/`` files), declared by an entry point
of ``CONFIG_GROUP``::

    [project.entry-points."vaegan_runner.configs"]
    toyfam = "toyfam.configs"      # any name; the value is the package's dotted name

The package needs an ``__init__.py`` (Hydra's ``pkg://`` source reads only regular packages).
Each is appended to the search path as ``pkg://<value>``, after the runner's own configs, so a
file there never replaces one of the runner's; ``hydra.searchpath=[pkg://...]`` on the command
line does the same for a package without the entry point. ``vaegan-train --info searchpath``
lists the result.

Hydra finds the plugin in two ways: by scanning the ``hydra_plugins`` namespace package, where
``hydra_plugins/vaegan_runner_search_path`` imports it (a wheel, or any install that puts the
folder on the path), and by ``register``, which ``vaegan-train`` calls, since setuptools'
editable installs expose ``hydra_plugins`` subpackages through an import hook that Hydra's scan
cannot list (hydra issue 2359). Hydra runs search path plugins for every application it
composes; this one adds only the packages that declare its group, after the application's own
folders.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin

CONFIG_GROUP = "vaegan_runner.configs"


class VaeganRunnerSearchPathPlugin(SearchPathPlugin):
    """Appends ``pkg://<value>`` for every entry point of ``CONFIG_GROUP``, once each."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        present = {element.path for element in search_path.get_path()}
        for point in entry_points(group=CONFIG_GROUP):
            path = f"pkg://{point.value.strip()}"
            if path not in present:
                provider = point.dist.name if point.dist is not None else point.name
                search_path.append(provider=f"{CONFIG_GROUP}:{provider}", path=path)
                present.add(path)


def register() -> None:
    """Register the plugin with Hydra (idempotent), whether or not Hydra's scan found it."""
    Plugins.instance().register(VaeganRunnerSearchPathPlugin)
