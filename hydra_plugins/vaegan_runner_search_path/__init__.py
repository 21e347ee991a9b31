"""vaegan-runner's Hydra search path plugin, where Hydra looks for plugins: Hydra imports every
module under the ``hydra_plugins`` namespace package and registers the plugin classes it finds
there. The plugin itself is ``vaegan_runner/config/search_path.py``."""

from vaegan_runner.config.search_path import VaeganRunnerSearchPathPlugin

__all__ = ["VaeganRunnerSearchPathPlugin"]
