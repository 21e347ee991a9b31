"""vaegan-runner: one config-driven runner for VAE, GAN, VAE-GAN, AAE and BiGAN/ALI."""

from .config.model_resolvers import register as _register_model_resolvers
from .version import __version__ as __version__  # pyproject.toml's version (version.py says how)

_register_model_resolvers()  # the model configs' ${if_conditional:...}, wherever a config is composed
