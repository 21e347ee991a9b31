"""vaegan-runner: one config-driven runner for VAE, GAN, VAE-GAN, AAE and BiGAN/ALI."""

from .config.model_resolvers import register as _register_model_resolvers

_register_model_resolvers()  # the model configs' ${if_conditional:...}, wherever a config is composed
