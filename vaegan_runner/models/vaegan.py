"""VAE-GAN (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity metric").

    z ~ q(z|x) = N(mu(x), sigma^2(x)),  x~ = Dec(z);   z_p ~ p(z),  x_p = Dec(z_p)
    L_prior = KL(q(z|x) || p(z))     p(z) = N(0, I), or a mixture learned with the decoder
                                     (``model.prior=mixture``, models/learned_prior.py)
    L_llike = 1/2 ||D_l(x~) - D_l(x)||^2  [+ pixel_weight * 1/2 ||x~ - x||^2]
              (a unit Gaussian on the activations of D's block l = ``feature_layer``)
    L_GAN   = L_D(D(x); D(x~), D(x_p))
    Enc <- beta * L_prior + L_llike;   Dec <- gamma * L_llike + L_G(D(x~), D(x_p));   Dis <- L_GAN
    (a learned prior trains with the decoder, on beta * L_prior: the only term that reads it)

(beta = 1 in the paper; a larger beta pulls the codes onto the prior, so that decoded prior
draws look like decoded codes.)

All three losses come from one forward pass, and the three networks step together on
gradients taken at the same pre-update weights (the paper's Algorithm 1); the loop sends each
loss into its own network's parameters only. Optional equilibrium gating (Larsen's code):
D's update is skipped while D is too good, the decoder's GAN term while D is too bad.

One backward pass through D serves two losses (``shared_d_backward``): with the
non-saturating loss and no batch norm in D, each fake's logit l_i depends on that image alone,
and the two losses differ there only by a factor per image,
dL_G/dl_i = -exp(-l_i) dL_D/dl_i, so the decoder's GAN gradient at x~ and x_p is D's own
input gradient times that factor; and dL_llike/dx~ is taken once for the encoder and the
decoder. The gradients are those of the losses above (to float rounding; tested), for two
passes through D's input gradients fewer per step.

Class-conditional (``model.conditional=true``): encoder and decoder as in the CVAE (Sohn et
al. 2015, the one-hot label at both inputs), D the projection discriminator (Miyato & Koyama
2018); prior draws x_p are decoded with the batch's labels. L_llike compares D's label-free
features. With ``auxiliary_weight`` > 0, ACGAN's class head C on D's last features (Odena et
al. 2017), as in the GAN: Dis <- ... + w * CE(C(x), y), Dec <- ... + w * CE(C(x~ and x_p), y);
w = 1 by default when conditional: the projection D alone leaves more samples in a class other
than their label (docs/results.md#the-vae-gans-class-loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch.nn.utils import parametrize

from ..config.checks import ConfigError, non_negative, positive, require
from .adversarial import AdversarialConfig, check_auxiliary_weight, discriminator_terms
from .base import FAMILIES, Family, Phase
from .conditioning import decoder_for, discriminator_for, encoder_for, run
from .encoders import GaussianAutoencoder, gaussian_posterior
from .learned_prior import CodePrior, check_prior
from .losses import generator_loss, gradient_penalty, pixel_mse, reparameterize
from .nets import DiscriminatorConfig, body_blocks, sizes_with_blocks


@dataclass
class VAEGANConfig(AdversarialConfig):
    feature_layer: int = MISSING  # D block whose activations measure reconstruction (-1: last)
    pixel_weight: float = MISSING  # weight of an extra pixel-space squared error in L_llike
    gamma: float = MISSING  # weight of L_llike against the GAN loss in the decoder's loss
    beta: float = MISSING  # weight of the KL term in the encoder's loss
    equilibrium: float | None = MISSING  # D's loss per term at balance (null: no gating)
    margin: float = MISSING  # gating band around ``equilibrium``
    auxiliary_weight: float = MISSING  # conditional: ACGAN's class loss in D and the decoder (0: off)
    prior: str = MISSING  # gaussian (N(0, I)) | mixture (learned with the decoder)
    prior_components: int = MISSING  # mixture: number of Gaussians
    discriminator: DiscriminatorConfig = MISSING

    def __post_init__(self):
        super().__post_init__()
        non_negative(self.pixel_weight, "pixel_weight")
        non_negative(self.gamma, "gamma")
        non_negative(self.beta, "beta")
        non_negative(self.margin, "margin")
        check_auxiliary_weight(self)
        check_prior(self)
        if self.equilibrium is not None:
            positive(self.equilibrium, "equilibrium")
            require(
                self.loss == "nonsaturating",
                "equilibrium",
                "the gating compares D's cross-entropies with the equilibrium, which only "
                "model.loss=nonsaturating has: set model.equilibrium=null for other losses",
            )
        check_feature_layer(self)  # against every image size the networks can make

    def check_image_size(self, image_size: int) -> None:
        """The checks that need the image size (``run_schema.validate`` calls this with
        ``dataset.image_size``, before any data is loaded or network built)."""
        check_feature_layer(self, image_size)


def check_feature_layer(cfg: VAEGANConfig, image_size: int | None = None) -> None:
    """``feature_layer`` must index one of D's blocks. D is ``build_encoder``'s body, so it has
    one block per halving (conv: 2 to 5, by image size), one per residual block and the pooled
    vector (resnet: 5 at 32, 6 at 64) or one per hidden layer (mlp). Without the image size, an
    index is refused only when no size has that many blocks."""
    blocks = body_blocks(cfg.net, image_size)
    layer, arch = cfg.feature_layer, cfg.net.arch
    if any(-n <= layer < n for n in blocks):
        return

    def sizes(k: int) -> str:
        return " and ".join(map(str, sizes_with_blocks(k, arch)))

    if len(blocks) == 1:
        n = blocks[0]
        where = (
            f"at image size {image_size} (model.net.arch={arch})"
            if arch != "mlp"
            else "(model.net.arch=mlp: one per entry of model.net.hidden)"
        )
        message = (
            f"{layer} is out of range: D has {n} blocks {where}, so use 0..{n - 1}, or -{n}..-1 counting from the last"
        )
        if arch != "mlp" and any(-k <= layer < k for k in body_blocks(cfg.net)):
            more = "; ".join(f"{k} at {sizes(k)}" for k in body_blocks(cfg.net) if k > n)
            message += f"; a larger dataset.image_size gives D more blocks ({more})"
    else:
        counts = "; ".join(f"{k} blocks at image sizes {sizes(k)}" for k in blocks)
        message = (
            f"{layer} is out of range at every image size: with model.net.arch={arch} D has {counts}; "
            "use 0..n-1, or -n..-1 counting from the last (-1, the default, is the last block)"
        )
    raise ConfigError("model.feature_layer", message)


# Below this fake logit, D's cotangent sigmoid(l) / n nears float32's smallest normal number on
# its way through D, and the per-image factor exp(-l) would amplify what is left of it:
# ``shared_d_backward`` then takes the decoder's GAN gradient through D on its own instead.
SHARED_D_LOGIT_FLOOR = -50.0


class ForwardPass(NamedTuple):
    terms: dict[str, torch.Tensor]  # every loss term (``VAEGAN.terms``)
    l_dis: torch.Tensor  # D's loss L_GAN
    fakes: torch.Tensor  # [x~; x_p], one tensor (D reads its two halves)
    fake_logits: torch.Tensor  # D's logits on x~ and x_p


@FAMILIES.register("vaegan")
class VAEGAN(CodePrior, GaussianAutoencoder, Family):
    cfg: VAEGANConfig
    config_class = VAEGANConfig
    network_names = ("encoder", "decoder", "discriminator")
    label_networks = ("encoder", "decoder", "discriminator")
    added_keys = {"auxiliary_weight": 0.0, "prior": "gaussian", "prior_components": 10}

    def __init__(self, cfg: VAEGANConfig, channels: int, image_size: int, num_classes: int | None = None):
        super().__init__(cfg, channels, image_size, num_classes)
        check_feature_layer(cfg, image_size)  # normally already done by run_schema.validate
        k = self.num_classes
        self.encoder = encoder_for(cfg.net, channels, image_size, 2 * cfg.latent_dim, k)
        self.decoder = decoder_for(cfg.net, channels, image_size, cfg.latent_dim, k)
        self.build_prior()
        d = cfg.discriminator
        self.discriminator = discriminator_for(
            cfg.net, channels, image_size, d.norm, d.spectral_norm, k, cfg.auxiliary_weight > 0
        )
        body = self.discriminator.body if self.conditional else self.discriminator
        assert len(body.blocks) in body_blocks(cfg.net, image_size)
        self.phases = [Phase("vaegan", ("encoder", "decoder", "discriminator"), self.all_losses)]

    def discriminate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(activations of block ``feature_layer`` flattened, logits, class logits or None without
        ``auxiliary_weight``) from one pass through D."""
        feats = self.discriminator.features(x)
        last = feats[-1].flatten(1)
        logits = self.discriminator.logits(last, y) if self.conditional else self.discriminator.head(last)
        classes = self.discriminator.classifier(last) if self.cfg.auxiliary_weight else None
        return feats[self.cfg.feature_layer].flatten(1), logits, classes

    def discriminate_parts(
        self, parts: list[torch.Tensor], y: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """``discriminate`` of each part (real images, reconstructions, prior samples, each with
        the labels ``y``).

        With batch norm in D the parts go through as one batch: they share its statistics, as
        in Larsen's code. Otherwise D treats each image on its own, so each part gets its own
        pass, which changes no value, and the results stay apart: a backward pass then runs
        through D only for the parts its loss reads (the encoder's loss reads x~ alone, the
        decoder's x~ and x_p; with one batch, all three went through D's input gradients each
        time, x_p's as zeros, since the decoder's batch norm ties x_p to the encoder). The parts
        share one evaluation of the spectrally normalised weights (one power iteration per step,
        as with one batch).
        """
        if self.cfg.discriminator.norm == "batch":
            n = [len(part) for part in parts]
            outputs = self.discriminate(torch.cat(parts), torch.cat([y] * len(parts)))
            split = [output.split(n) if output is not None else [None] * len(n) for output in outputs]
            return list(zip(*split))
        with parametrize.cached():
            return [self.discriminate(part, y) for part in parts]

    def terms(self, x: torch.Tensor, y: torch.Tensor, with_penalty: bool = True) -> ForwardPass:
        """Every loss term of one forward pass (batch means of per-image sums), and D's loss L_GAN
        (with the weighted gradient penalty, for wgan-gp, unless ``with_penalty`` is false: the
        penalty needs gradients, which held-out evaluation does not take).

        D sees x, x~ and x_p through ``discriminate_parts``.
        """
        n = x.shape[0]
        mu, logvar = gaussian_posterior(self.encoder, x, y)
        z_prior = self.sample_latent(n)  # drawn before the posterior noise (as before the learned prior)
        z = reparameterize(mu, logvar)
        fakes = self.activate(run(self.decoder, torch.cat([z, z_prior]), torch.cat([y, y])))
        x_rec, x_prior = fakes.split(n)
        (
            (feats_real, real_logits, classes_real),
            (feats_rec, logits_rec, classes_rec),
            (_, logits_prior, classes_prior),
        ) = self.discriminate_parts([x, x_rec, x_prior], y)
        fake_logits = torch.cat([logits_rec, logits_prior])
        l_dis, d_terms = discriminator_terms(
            self.cfg,
            real_logits,
            fake_logits,
            penalty=(
                lambda: gradient_penalty(
                    lambda v: run(self.discriminator, v, torch.cat([y, y])),
                    torch.cat([x, x]),
                    torch.cat([x_rec, x_prior]),
                )
            )
            if with_penalty
            else None,
        )
        terms = {
            "kl": self.kl_to_prior(mu, logvar, z).mean(),
            "feature_rec": 0.5 * (feats_rec - feats_real).pow(2).sum(1).mean(),
            "pixel_rec": 0.5 * (x_rec - x).pow(2).flatten(1).sum(1).mean(),
            "d": d_terms.pop("d"),
            "g": generator_loss(self.cfg.loss, fake_logits),
            "d_real_bce": F.softplus(-real_logits).mean(),  # the costs Larsen's gating reads
            "d_fake_bce": F.softplus(fake_logits).mean(),
            **d_terms,  # acc/d_real, acc/d_fake, and gp for wgan-gp
        }
        if classes_real is not None:  # ACGAN: D learns the class of real images, the decoder to make it
            terms["d_class"] = self.cfg.auxiliary_weight * F.cross_entropy(classes_real, y)
            assert classes_rec is not None and classes_prior is not None  # D's class head sees every part
            fake_classes = torch.cat([classes_rec, classes_prior])
            terms["g_class"] = self.cfg.auxiliary_weight * F.cross_entropy(fake_classes, torch.cat([y, y]))
            l_dis = l_dis + terms["d_class"]
        return ForwardPass(terms, l_dis, fakes, fake_logits)

    def gates(self, terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(skip D's update, skip the decoder's GAN term) as 0/1 tensors: D too good when either
        cross-entropy is below equilibrium - margin, too bad when either is above
        equilibrium + margin; when both hold, neither is skipped."""
        real, fake = terms["d_real_bce"].detach(), terms["d_fake_bce"].detach()
        if self.cfg.equilibrium is None:
            return real.new_zeros(()), real.new_zeros(())
        low, high = self.cfg.equilibrium - self.cfg.margin, self.cfg.equilibrium + self.cfg.margin
        too_good, too_bad = (real < low) | (fake < low), (real > high) | (fake > high)
        return (too_good & ~too_bad).float(), (too_bad & ~too_good).float()

    def all_losses(self, x, y, step):
        """The three networks' losses from one forward pass (``terms``); where D's backward pass
        can be shared, stand-ins with the same gradients (``shared_d_backward``)."""
        forward = self.terms(x, y)
        terms = forward.terms
        llike = terms["feature_rec"] + self.cfg.pixel_weight * terms["pixel_rec"]
        skip_d, skip_gan = self.gates(terms)
        if self.can_share_d_backward():
            llike, gan, l_dis = self.shared_d_backward(forward, llike)
        else:
            gan, l_dis = terms["g"], forward.l_dis
        decoder = self.cfg.gamma * llike + (1 - skip_gan) * gan + terms.get("g_class", 0.0)
        if self.prior is not None:  # the learned prior lives in the decoder and learns from the KL alone
            decoder = decoder + self.cfg.beta * terms["kl"]
        losses = {
            "encoder": self.cfg.beta * terms["kl"] + llike,
            "decoder": decoder,
            # A skipped update is a zero gradient (no host sync to decide it); with Adam the
            # weights then move only by the momentum left over, which decays by beta1 per step.
            "discriminator": (1 - skip_d) * l_dis,
        }
        logs = {**terms, "gate/discriminator_skipped": skip_d, "gate/decoder_gan_skipped": skip_gan}
        return losses, logs

    def can_share_d_backward(self) -> bool:
        """Whether D's logit on a fake depends on that image alone and D's cotangent on it is
        never zero (the non-saturating loss, no batch norm, no class head), in a precision whose
        gradients keep small values (not fp16)."""
        if self.cfg.loss != "nonsaturating" or self.cfg.discriminator.norm == "batch" or self.cfg.auxiliary_weight:
            return False
        device = self.device.type
        return not (torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.float16)

    def shared_d_backward(
        self, forward: ForwardPass, llike: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stand-ins for L_llike, the decoder's GAN loss and L_GAN: losses whose gradients for the
        networks they train are those of the real ones, computed here from two backward passes
        through D (D's weights and its input gradient on the fakes from L_GAN; dL_llike/dx~)
        instead of four (the encoder's and the decoder's passes through D each went through it
        again). Each stand-in is <tensor, its gradient> with the gradient held fixed."""
        d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
        fakes, logits, gan = forward.fakes, forward.fake_logits, forward.terms["g"]
        *d_grads, d_fakes = torch.autograd.grad(forward.l_dis, [*d_params, fakes], retain_graph=True)
        (llike_fakes,) = torch.autograd.grad(llike, fakes, retain_graph=True)
        if bool((logits.detach() > SHARED_D_LOGIT_FLOOR).all()):  # one host sync per step
            (d_slope,) = torch.autograd.grad(forward.l_dis, logits, retain_graph=True)
            (g_slope,) = torch.autograd.grad(gan, logits, retain_graph=True)
            factor = (g_slope / d_slope).reshape(len(fakes), *[1] * (fakes.dim() - 1))  # -exp(-l) here
            gan_fakes = d_fakes * factor
        else:
            (gan_fakes,) = torch.autograd.grad(gan, fakes, retain_graph=True)
        d_stand_in = sum((p * g).sum() for p, g in zip(d_params, d_grads))
        return (fakes * llike_fakes).sum(), (fakes * gan_fakes).sum(), d_stand_in

    @torch.no_grad()
    def evaluate(self, x, y):
        """Held-out KL, reconstruction in D's features and in pixels ([0,1] scale, per pixel),
        and D's accuracy on held-out real images and on reconstructions + prior samples."""
        terms = self.terms(x, y, with_penalty=False).terms
        mu, _ = gaussian_posterior(self.encoder, x, y)
        return {
            "kl": terms["kl"],
            "feature_rec": terms["feature_rec"],
            "recon_mse": pixel_mse(self.generate(mu, y), x, self.pixel_range),
            "d": terms["d"],
            "d_acc_real": terms["acc/d_real"],
            "d_acc_fake": terms["acc/d_fake"],
        }
