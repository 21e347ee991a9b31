"""Cache entries that two processes need at once are built once: the second waits, then reads
(vaegan_runner/build_once.py, used by the decoded-dataset cache, the domain classifiers and the
Inception reference features)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import torch

from runner_utils import REPO
from vaegan_runner.build_once import built_once
from vaegan_runner.data import decoded_cache
from vaegan_runner.metrics import domain_classifier as dc
from vaegan_runner.metrics.domain_classifier import DomainClassifier, domain_classifier

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from vaegan_runner.build_once import built_once
    path = Path(sys.argv[1])
    with built_once(path, "the entry"):
        print("holding", flush=True)
        time.sleep(1.0)
        path.write_text("built by the holder")
    """
)


def test_a_second_process_waits_for_the_first_and_finds_its_entry(tmp_path):
    entry = tmp_path / "cache" / "entry.bin"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(entry)],
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        said: list[str] = []
        with built_once(entry, "the entry", said.append):
            assert entry.read_text() == "built by the holder"  # the holder finished before this ran
        assert len(said) == 1 and said[0].startswith("waiting for another process that is building the entry")
    finally:
        assert holder.wait(timeout=60) == 0
    assert list(entry.parent.iterdir()) == [entry]  # no lock file left beside the entry


def test_nothing_is_said_and_nothing_is_left_when_no_one_else_holds_it(tmp_path):
    entry = tmp_path / "entry.bin"
    said: list[str] = []
    with built_once(entry, "the entry", said.append):
        entry.write_text("x")
    assert said == [] and list(tmp_path.iterdir()) == [entry]


def test_a_cache_folder_that_cannot_be_made_only_loses_the_turn_taking(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    ran = []
    with built_once(blocker / "sub" / "entry.bin", "the entry", ran.append):
        ran.append("body")
    assert ran == ["body"]


def run_together(target, n: int = 2) -> list:
    """Call ``target()`` in ``n`` threads started 0.1 s apart; their results in start order."""
    results: list = [None] * n

    def call(i: int) -> None:
        results[i] = target()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_runs_needing_one_domain_classifier_train_it_once(tmp_path, monkeypatch):
    from test_domain_classifier import shapes

    data, trainings = shapes(n_train=64, n_test=32), []

    def slow_training(data, device, seed):
        trainings.append(seed)
        time.sleep(0.5)  # long enough for the second caller to arrive while this one holds the lock
        model = DomainClassifier(data.channels, data.image_size, data.image_size, data.num_classes).eval()
        model.test_accuracy = 0.5
        return model

    monkeypatch.setattr(dc, "train_classifier", slow_training)
    logs: list[str] = []
    first, second = run_together(lambda: domain_classifier(data, tmp_path, torch.device("cpu"), log=logs.append))
    assert trainings == [0]
    assert any(line.startswith("waiting for another process that is building the domain classifier") for line in logs)
    assert any(": loaded " in line for line in logs)
    probe = data.test.images[:8].float() / 255
    assert torch.equal(first.logits(probe), second.logits(probe))


def test_two_runs_needing_one_decoded_dataset_decode_it_once(tmp_path):
    decodes = []
    split = (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64))

    def slow_decode():
        decodes.append(1)
        time.sleep(0.5)
        return split, split

    def load():
        return decoded_cache.cached_splits(str(tmp_path), "toy", 8, 1, {"n": 4}, slow_decode)

    first, second = run_together(load)
    assert len(decodes) == 1
    assert torch.equal(first[0][0], second[0][0]) and torch.equal(first[1][1], second[1][1])
    assert [p.suffix for p in tmp_path.iterdir()] == [".npz"]
