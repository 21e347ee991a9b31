"""trainer.channels_last (on by default): the conv weights in NHWC memory, the same numbers as NCHW."""

import torch

from runner_utils import compose_config
from vaegan_runner.data import load_data, to_pixels
from vaegan_runner.run_schema import validate
from vaegan_runner.train import build_family
from vaegan_runner.training.distributed import Distributed

SHAPES = ["dataset=shapes", "dataset.n_train=64", "dataset.n_test=16", "dataset.channels=3", "dataset.image_size=16"]


def family_with(layout: list[str], model: str = "gan"):
    run = validate(compose_config([f"model={model}", *SHAPES, "model.net.width=8", "device=cpu", *layout]))
    data = load_data(run.dataset, torch.device("cpu"))
    torch.manual_seed(0)
    return run, data, build_family(run, data, torch.device("cpu"), Distributed())


def conv_weights(family) -> list[torch.Tensor]:
    return [p for p in family.parameters() if p.dim() == 4]


def test_on_by_default_and_off_on_request():
    run, _, on = family_with([])
    assert run.trainer.channels_last
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights(on))
    assert not all(w.is_contiguous() for w in conv_weights(on))  # NHWC, not the default layout
    _, _, off = family_with(["trainer.channels_last=false"])
    assert all(w.is_contiguous() for w in conv_weights(off))


def test_both_layouts_compute_the_same_losses_and_gradients():
    _, data, on = family_with([], model="vae")
    _, _, off = family_with(["trainer.channels_last=false"], model="vae")
    x = to_pixels(data.train.take(16)[0], on.pixel_range)
    results = []
    for family in (on, off):
        torch.manual_seed(1)  # the same posterior noise
        losses, _ = family.elbo_losses(x, None, 0)
        losses["encoder"].backward()
        results.append((losses["encoder"].detach(), [p.grad.clone() for p in family.parameters()]))
    (loss_on, grads_on), (loss_off, grads_off) = results
    assert torch.allclose(loss_on, loss_off, rtol=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-3, atol=1e-5) for a, b in zip(grads_on, grads_off))
