"""Scores of generated samples from a classifier's logits: a classifier score and class coverage.

``classifier_score`` is the Inception Score formula of Salimans et al. 2016, "Improved Techniques
for Training GANs", exp(E_x KL(p(y|x) || p(y))), here over the logits of any classifier (one
split, no averaging over splits). It is high when each sample is classified confidently and the
samples spread over the classes; it is 1 when every sample gets the same prediction and the
number of classes C when the samples are confident and spread evenly over C classes.

``class_coverage`` counts the classes that receive a fair share of the argmax predictions.
"""

from __future__ import annotations

import math

import torch


def class_histogram(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Share [num_classes] (float64, sums to 1) of the samples whose argmax is each class."""
    counts = torch.bincount(logits.argmax(dim=1), minlength=num_classes)
    return counts.to(torch.float64) / logits.shape[0]


def class_coverage(logits: torch.Tensor, num_classes: int, min_share: float = 0.25) -> int:
    """Number of classes that get at least ``min_share / num_classes`` of the argmax predictions.

    The threshold is a fraction (a quarter by default) of the uniform share 1 / num_classes rather
    than "at least one sample": a generator collapsed onto a few classes still puts a few stray
    samples in most other classes, so counting any class that appears at all would hide collapse.
    """
    return int((class_histogram(logits, num_classes) >= min_share / num_classes).sum())


def classifier_score(logits: torch.Tensor) -> float:
    """exp(mean over samples of KL(p(y|x) || p(y))), p(y) the mean of p(y|x); float64 throughout."""
    log_p_given_x = torch.log_softmax(logits.to(torch.float64), dim=1)  # [N, C]
    log_p = torch.logsumexp(log_p_given_x, dim=0) - math.log(logits.shape[0])  # log of the marginal
    kl = (log_p_given_x.exp() * (log_p_given_x - log_p)).sum(dim=1)
    return math.exp(float(kl.mean()))
