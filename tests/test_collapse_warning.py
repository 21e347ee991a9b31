"""Mode-collapse warnings: from the metrics' class coverage and diversity to a TensorBoard note."""

from __future__ import annotations

import pytest
import torch

from runner_utils import FAST, compose_config, read_events
from vaegan_runner.data import load_data
from vaegan_runner.data.pixels import to_pixels
from vaegan_runner.metrics.collapse import CollapseWatch
from vaegan_runner.models.gan import GAN
from vaegan_runner.run_schema import validate
from vaegan_runner.train import run as train_run


def test_coverage_that_falls_to_half_the_classes_warns_once():
    watch = CollapseWatch(num_classes=10)
    assert watch.check({"class_coverage": 3, "diversity": 0.2}) is None  # early samples: not yet spread
    assert watch.check({"class_coverage": 10, "diversity": 0.9}) is None
    warning = watch.check({"class_coverage": 4, "diversity": 0.8})
    assert warning and "class coverage fell to 4 of 10" in warning
    assert watch.check({"class_coverage": 4, "diversity": 0.8}) is None  # still collapsed: said already
    assert watch.check({"class_coverage": 9, "diversity": 0.8}) is None  # recovered
    assert "diversity fell to 0.30" in watch.check({"class_coverage": 9, "diversity": 0.3})


def test_samples_that_never_spread_out_are_not_a_collapse():
    watch = CollapseWatch(num_classes=10)
    assert watch.check({"diversity": 0.2}) is None
    assert watch.check({"diversity": 0.01}) is None


@pytest.mark.slow
def test_a_collapsing_generator_leaves_a_warning_in_tensorboard(tmp_path, monkeypatch):
    """The generator draws held-out images (the data's own variety) until step 15, then one
    image whatever z is."""
    cfg = compose_config(
        [
            "model=gan",
            *FAST,
            "trainer.max_steps=30",
            "eval.every_n_steps=10",
            "log.image_every_n_steps=1000",
            "eval.metrics=[class_coverage,diversity]",
        ]
    )
    real = to_pixels(load_data(validate(cfg).dataset, torch.device("cpu")).test.take(64)[0], "symmetric")
    original_update_ema = GAN.update_ema
    collapsed = []

    def update_ema(self, step):  # runs after each generator update
        original_update_ema(self, step)
        if step >= 15:
            collapsed.append(step)

    def generate(self, z, y=None):
        images = real[torch.arange(z.shape[0]) % real.shape[0]]
        return images[:1].expand_as(images).clone() if collapsed else images

    monkeypatch.setattr(GAN, "update_ema", update_ema)
    monkeypatch.setattr(GAN, "generate", generate)
    train_run(cfg, tmp_path)
    events = read_events(tmp_path)
    notes = [t for t in events.Tags()["tensors"] if t.startswith("warnings")]
    assert len(notes) == 1
    (note,) = events.Tensors(notes[0])
    assert note.step == 20
    text = note.tensor_proto.string_val[0].decode()
    assert "possible mode collapse" in text and "class coverage fell to 1 of 3" in text
    assert "diversity fell to 0.00" in text
    diversity = dict((e.step, e.value) for e in events.Scalars("metrics/diversity"))
    assert diversity[10] == pytest.approx(1.0) and diversity[20] < 1e-6
