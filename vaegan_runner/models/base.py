"""What a model family is, as far as the training loop is concerned.

A family is an ``nn.Module`` that owns its networks and says, as data, which update
phases it has (the StyleGAN2-ADA idea): each phase names the networks it updates, how often
it runs, and the method that computes its losses, one per network it updates. The loop
back-propagates each loss into that network's parameters only, so one network's loss can
never leak into another network's weights, whatever the family's graph looks like.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from omegaconf import MISSING
from torch import nn

from ..config.checks import ConfigError, one_of, positive
from ..data.pixels import PIXEL_RANGES
from ..registry import Registry
from .conditioning import balanced_labels
from .nets import NetConfig


@dataclass
class FamilyConfig:
    """Keys every ``configs/model/*.yaml`` has; a family's own config class adds the rest."""

    name: str = MISSING
    latent_dim: int = MISSING
    pixel_range: str = MISSING  # unit = [0,1] (sigmoid output), symmetric = [-1,1] (tanh output)
    conditional: bool = MISSING  # class-conditional networks (models/conditioning.py); needs labelled data
    net: NetConfig = MISSING

    def __post_init__(self):
        positive(self.latent_dim, "latent_dim")
        one_of(self.pixel_range, PIXEL_RANGES, "pixel_range")


Losses = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Phase:
    """One update: the networks it trains, on steps where ``step % interval == 0``.

    ``losses(x, y, step)`` takes a batch ``x`` (pixels in ``pixel_range``) and its labels ``y``
    (int64; all 0 for unlabelled data; a family reads them only when class-conditional) and
    returns the loss each network of the phase minimises, and the scalars to log: ``loss/<name>`` in
    TensorBoard, or the name as it is when it has a slash (``acc/d_real``). ``after(step)``,
    if given, runs after the phase's optimizer steps (an EMA update, say).
    """

    name: str
    networks: tuple[str, ...]
    losses: Callable[[torch.Tensor, torch.Tensor, int], tuple[Losses, Losses]]
    interval: int = 1
    after: Callable[[int], None] | None = None


class Family(nn.Module):
    """Base class of the model families: the built-in ones in ``vaegan_runner/models/`` and
    those other packages declare (``models/external.py``).

    What the rest of the runner knows of a family comes from these class attributes:

    ``config_class``
        the dataclass of ``model.*`` (a ``FamilyConfig`` subclass): every key of the family's
        YAML, checked before any work.
    ``network_names``
        the attributes holding its networks; each gets its own optimizer. ``encoder``,
        ``decoder``, ``generator`` and ``discriminator`` also get their own
        ``optimizer.<network>.lr`` / ``weight_decay``; a network of another name trains with
        the top-level ``optimizer.lr`` / ``weight_decay``. An ``encoder`` enables the metrics
        that need codes (reconstructions, probes).
    ``has_likelihood`` / ``has_classifier``
        the family defines ``log_importance_weights`` (the likelihood metrics) / ``classify``
        (``classifier_error``, and training on ``dataset.labelled``).
    ``label_networks``
        the networks that read the class label when ``model.conditional=true`` (with the
        family's default settings); ``tests/test_conditional.py`` checks the phases against it.
    ``conditional_only``
        the family always reads a class, so ``model.conditional`` must be true.
    ``added_keys``
        keys added to the family's model config since its first checkpoints, relative to
        ``model.`` (``{"prior": "gaussian"}``), each with the value that behaves as before the
        key existed: a checkpoint that lacks one loads with it (``training/checkpoint_migrations.py``).
    """

    config_class: ClassVar[type[FamilyConfig]] = FamilyConfig
    network_names: ClassVar[tuple[str, ...]] = ()
    has_likelihood: ClassVar[bool] = False  # defines log_importance_weights (IWAE, test ELBO)
    has_classifier: ClassVar[bool] = False  # defines classify, and learns from dataset.labelled
    label_networks: ClassVar[tuple[str, ...]] = ()  # read the label when model.conditional=true
    conditional_only: ClassVar[bool] = False  # model.conditional must be true
    added_keys: ClassVar[dict[str, object]] = {}  # model key -> its value before it existed

    def __init__(self, cfg: FamilyConfig, channels: int, image_size: int, num_classes: int | None = None):
        super().__init__()
        if cfg.conditional and not num_classes:
            raise ConfigError("model.conditional", "a class-conditional model needs a dataset with class labels")
        self.cfg = cfg
        self.channels = channels
        self.image_size = image_size
        self.latent_dim = cfg.latent_dim
        self.pixel_range = cfg.pixel_range
        self.num_classes = num_classes if cfg.conditional else None  # None: the labels are ignored
        self.phases: list[Phase] = []

    # --- what the loop needs -------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        """The networks that get an optimizer, by name."""
        return {name: getattr(self, name) for name in self.network_names}

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Held-out scalars for one batch and its labels, averaged by the loop (``eval/<name>``)."""
        return {}

    # --- sampling and encoding ------------------------------------------------------------
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws from the prior p(z)."""
        return torch.randn(n, self.latent_dim, generator=generator, device=self.device)

    def sample_labels(self, n: int) -> torch.Tensor | None:
        """Labels for n samples of a conditional family, every class equally often (0, 1, ...,
        K-1, 0, ...); None for an unconditional one."""
        if not self.conditional:
            return None
        assert self.num_classes is not None  # conditional: the classes are set
        return balanced_labels(n, self.num_classes, self.device)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images in ``pixel_range`` for latent codes ``z`` (and, conditional, labels ``y``;
        None: ``sample_labels``)."""
        raise NotImplementedError

    @property
    def code_categories(self) -> int:
        """Categories of a discrete code in the latent (the GAN's InfoGAN option); 0: none."""
        return 0

    def code_grid(self, z: torch.Tensor) -> torch.Tensor | None:
        """Row k: the latents ``z`` [n, ...] with their discrete code set to category k, for every
        category of a family whose latent holds such a code (the GAN's InfoGAN option); None for
        the others."""
        return None

    def labels_or_balanced(self, n: int, y: torch.Tensor | None) -> torch.Tensor | None:
        """``y`` for a conditional family (``sample_labels(n)`` when None), None otherwise."""
        if not self.conditional:
            return None
        return self.sample_labels(n) if y is None else y

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor | None:
        """A latent code for each image (the posterior mean, for stochastic encoders); None for
        families without an encoder. ``y``: the images' labels (a conditional encoder needs them)."""
        return None

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor | None:
        """``generate(encode(x, y), y)``; None for families without an encoder."""
        z = self.encode(x, y)
        return None if z is None else self.generate(z, y)

    def log_importance_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """[k, B] values of log p(x, z_i) - log q(z_i|x) for z_i ~ q(z|x), in nats: their mean
        is an ELBO, their log-mean-exp the IWAE bound (families with ``has_likelihood``)."""
        raise NotImplementedError(f"{type(self).__name__} defines no likelihood")

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [B, K] of the model's own classifier (families with ``has_classifier``)."""
        raise NotImplementedError(f"{type(self).__name__} has no classifier")

    @property
    def has_encoder(self) -> bool:
        return "encoder" in self.network_names

    # --- helpers ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """The output activation that matches ``pixel_range``: sigmoid (unit) or tanh (symmetric)."""
        return torch.sigmoid(logits) if self.pixel_range == "unit" else torch.tanh(logits)


FAMILIES: Registry[type[Family]] = Registry(
    "model family", "model.name", message="unknown model family {name!r}; allowed: {allowed}", sort=True
)
