"""vaegan-eval and vaegan-sample on the inputs a careful user can still get wrong: a run whose
newest checkpoint is truncated, a samples= file that is not the .npz it must be, an n no grid
holds, an out= that names a file, and a second set of samples that would overwrite the first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vaegan_runner.cli.sample as sample_cli
import vaegan_runner.cli.saved_run as saved_run
from runner_utils import FAST, SHAPES_CLASSES, compose_config
from vaegan_runner.cli.eval import main as eval_main
from vaegan_runner.cli.sample import main as sample_main
from vaegan_runner.train import run as train_run

# A class-conditional VAE (an encoder and labels: every mode of vaegan-sample can run) with
# checkpoints at steps 2 and 4; no evaluation during training, recon_mse (no classifier) at the end.
RUN = [
    *FAST,
    "model=vae",
    "model.conditional=true",
    "eval.metrics=[]",
    "eval.final_metrics=[recon_mse]",
    "eval.optimized_metric=recon_mse",
    "log.image_every_n_steps=1000",
    "eval.every_n_steps=1000",
    "trainer.max_steps=4",
    "checkpoint.every_n_steps=2",
    "checkpoint.keep_last=3",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("cvae") / "run"
    train_run(compose_config(RUN), run_dir)
    return run_dir


@pytest.fixture
def run_dir(trained, tmp_path) -> Path:
    """A copy of the trained run that a test may break or write into."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def refused(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    return err


# --- 1. a truncated newest checkpoint: the newest readable one, said on one line -------------------


def test_eval_and_sample_fall_back_past_a_truncated_newest_checkpoint(run_dir, tmp_path, capsys):
    broken = run_dir / "checkpoints" / "step_00000004.pt"
    truncate(broken)
    out = tmp_path / "e.json"
    assert eval_main([str(run_dir), "metrics=recon_mse", f"out={out}"]) == 0
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("checkpoint:")]
    assert str(broken) in line and "truncated or corrupt" in line and "using step_00000002.pt" in line
    report = json.loads(out.read_text())
    assert report["step"] == 2 and report["checkpoint"].endswith("step_00000002.pt")
    assert sample_main([str(run_dir), "n=4", f"out={tmp_path}/"]) == 0
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("checkpoint:")]
    assert str(broken) in line and "using step_00000002.pt" in line
    assert (tmp_path / "step_00000002-sample-n4-seed0.png").is_file()


def test_a_run_with_no_readable_checkpoint_is_refused_naming_each(run_dir, tmp_path, capsys):
    for path in (run_dir / "checkpoints").glob("step_*.pt"):
        truncate(path)
    assert eval_main([str(run_dir), "metrics=recon_mse", f"out={tmp_path / 'e.json'}"]) == 2
    err = refused(capsys, "checkpoint: no readable checkpoint in", "step_00000004.pt", "step_00000002.pt")
    assert err.count("truncated or corrupt") == 2
    assert sample_main([str(run_dir), f"out={tmp_path}/"]) == 2
    refused(capsys, "no readable checkpoint", "step_00000004.pt", "step_00000002.pt")
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob("*.png"))


def test_a_truncated_checkpoint_named_as_a_file_is_refused(run_dir, tmp_path, capsys):
    broken = run_dir / "checkpoints" / "step_00000004.pt"
    truncate(broken)
    assert sample_main([str(broken), f"out={tmp_path}/"]) == 2
    refused(capsys, str(broken), "truncated or corrupt")


# --- 2. samples= that is not the .npz it must be -----------------------------------------------------


def write_npz(path: Path, kind: str) -> None:
    images = np.zeros((8, 1, 28, 28), np.uint8)
    if kind == "garbage":
        path.write_bytes(b"not an archive at all")
    elif kind == "cut short":
        np.savez(path, images=images)
        truncate(path)
    elif kind == "npy":
        with open(path, "wb") as file:
            np.save(file, images)
    elif kind == "float":
        np.savez(path, images=images.astype(np.float32))
    elif kind == "flat":
        np.savez(path, images=images.reshape(8, -1))
    elif kind == "pickled":
        np.savez(path, images=np.array([{"a": 1}], dtype=object))
    elif kind == "no images":
        np.savez(path, pixels=images)
    elif kind == "empty":
        np.savez(path, images=images[:0])


@pytest.mark.parametrize(
    "name,kind,words",
    [
        ("g.npz", "garbage", ["is not an .npz: it is not a zip archive"]),
        ("cut.npz", "cut short", ["is not an .npz: it is not a zip archive"]),
        ("bare.npz", "npy", ["holds one bare array (an .npy file)"]),
        ("float.npz", "float", ["'images' is float32, not uint8"]),
        ("flat.npz", "flat", ["'images' has shape [8, 784]"]),
        ("pickled.npz", "pickled", ["is not a readable .npz", "Object arrays cannot be loaded"]),
        ("other.npz", "no images", ["has no 'images' array (it has: pixels)"]),
        ("empty.npz", "empty", ["holds no images"]),
        ("missing.npz", None, ["does not exist"]),
        ("notes.txt", "text", ["is a file but not an .npz"]),
    ],
)
def test_a_bad_samples_file_is_one_paragraph_naming_it_and_the_format(tmp_path, capsys, name, kind, words):
    from vaegan_runner.metrics.given_samples import NPZ_FORMAT

    path = tmp_path / name
    if kind == "text":
        path.write_text("hello")
    elif kind:
        write_npz(path, kind)
    assert eval_main([f"samples={path}", "dataset=shapes", f"out={tmp_path / 'e.json'}"]) == 2
    err = refused(capsys, f"vaegan-eval: error: samples: {path}", *words, NPZ_FORMAT)
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "e.json").exists()


# --- 3. any n: drawn and written in chunks; a grid refuses what it cannot hold ---------------------


class Drawn(Exception):
    """Raised by the guard once enough chunks were drawn."""


@pytest.fixture
def guarded(monkeypatch):
    """Draws of at most ``chunk`` images per call, counted; a larger one fails the test before
    it allocates anything. ``stop_after``: raise ``Drawn`` after that many decodings."""
    calls, limits = [], {"chunk": 7, "stop_after": None}
    monkeypatch.setattr(sample_cli, "chunk_images", lambda saved: limits["chunk"])
    real_load = saved_run.load_saved_run

    def load(*args, **kwargs):
        saved = real_load(*args, **kwargs)
        family, sample_latent, generate = saved.family, saved.family.sample_latent, saved.family.generate

        def guarded_latent(n, generator=None):
            assert n <= limits["chunk"], f"{n} codes drawn at once"
            return sample_latent(n, generator)

        def guarded_generate(z, y=None):
            assert z.shape[0] <= limits["chunk"], f"{z.shape[0]} images decoded at once"
            calls.append(z.shape[0])
            if limits["stop_after"] and len(calls) >= limits["stop_after"]:
                raise Drawn
            return generate(z, y)

        family.sample_latent, family.generate = guarded_latent, guarded_generate
        return saved

    monkeypatch.setattr(saved_run, "load_saved_run", load)
    return calls, limits


def test_png_sets_are_drawn_and_written_a_chunk_at_a_time(run_dir, tmp_path, guarded):
    calls, _ = guarded
    assert sample_main([str(run_dir), "n=50", "format=png", f"out={tmp_path / 'set'}"]) == 0
    assert calls == [7] * 7 + [1]
    files = sorted(p.name for p in (tmp_path / "set").iterdir())
    assert files == [f"{i:06d}.png" for i in range(50)]
    calls.clear()
    assert sample_main([str(run_dir), "n=50", f"out={tmp_path / 'grid.png'}"]) == 0
    assert calls == [7] * 7 + [1]  # the grid draws the same chunks: the same images
    grid = np.load(tmp_path / "grid.npz")["images"]
    assert all(np.array_equal(np.array(Image.open(tmp_path / "set" / f))[None], g) for f, g in zip(files, grid))


def test_classes_png_set_written_in_column_chunks_keeps_the_table_order(run_dir, tmp_path, guarded):
    calls, _ = guarded
    assert sample_main([str(run_dir), "mode=classes", "n=10", "format=png", f"out={tmp_path / 'set'}"]) == 0
    assert calls == [2 * SHAPES_CLASSES] * 5  # 2 columns of 3 classes: at most 7 images at once
    assert sample_main([str(run_dir), "mode=classes", "n=10", f"out={tmp_path / 'grid.png'}"]) == 0
    grid = np.load(tmp_path / "grid.npz")
    assert grid["labels"].tolist() == [k for k in range(SHAPES_CLASSES) for _ in range(10)]
    for i, image in enumerate(grid["images"]):  # file i: class i // 10, column i % 10
        assert np.array_equal(np.array(Image.open(tmp_path / "set" / f"{i:06d}.png"))[None], image)


def test_a_hundred_million_pngs_draw_one_chunk_at_a_time(run_dir, tmp_path, guarded):
    """Memory-cheap: the guard fails any draw of more than one chunk before it allocates, and
    stops the run after three chunks."""
    calls, limits = guarded
    limits["stop_after"] = 3
    with pytest.raises(Drawn):
        sample_cli.sample_checkpoint(str(run_dir), ["n=100000000", "format=png", f"out={tmp_path / 'set'}"])
    assert calls == [7, 7, 7]
    names = sorted(p.name for p in (tmp_path / "set").iterdir())
    assert names == [f"{i:08d}.png" for i in range(14)]  # 8 digits: file-name order is image order


@pytest.mark.parametrize(
    "settings,words",
    [
        (["n=100000000"], ["n: format=grid puts all 100000000 images", "PIL.Image.MAX_IMAGE_PIXELS", "format=png"]),
        (["mode=classes", "n=100000000"], ["300000000 images of mode=classes", "n<="]),
        (["mode=traverse", "steps=100000000"], ["a smaller steps= (even n=1 is too large with steps=100000000)"]),
    ],
)
def test_a_grid_larger_than_pillow_opens_is_refused_with_the_largest_n(
    run_dir, tmp_path, capsys, guarded, settings, words
):
    calls, _ = guarded
    assert sample_main([str(run_dir), *settings, f"out={tmp_path}/"]) == 2
    refused(capsys, *words)
    assert calls == [] and not list(tmp_path.glob("*.png"))


def test_the_largest_grid_named_is_one_pillow_opens(run_dir, tmp_path, capsys, guarded):
    assert sample_main([str(run_dir), "n=100000000", f"out={tmp_path}/"]) == 2
    largest = int(capsys.readouterr().err.split("n<=")[1].split(" ")[0])
    layout = sample_cli.MODES["sample"].layout
    assert layout(largest, 10, None).grid_pixels(28) <= Image.MAX_IMAGE_PIXELS
    assert layout(largest + 1, 10, None).grid_pixels(28) > Image.MAX_IMAGE_PIXELS


# --- 4. out= an existing file where a folder is meant ----------------------------------------------


def test_out_an_existing_file_without_a_suffix_is_one_error(run_dir, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    assert sample_main([str(run_dir), "n=4", f"out={blocker}"]) == 2
    refused(capsys, f"out: {blocker} is an existing file", "out= is the grid's file name", "or a folder")
    assert sample_main([str(run_dir), "n=4", f"out={blocker / 'x.png'}"]) == 2
    refused(capsys, f"cannot write {blocker / 'x.png'}: {blocker} is a file, not a folder")
    assert sample_main([str(run_dir), "n=4", "format=png", f"out={blocker / 'set'}"]) == 2
    refused(capsys, f"{blocker} is a file, not a folder")
    assert eval_main([str(run_dir), "metrics=recon_mse", f"out={blocker}"]) == 2
    refused(capsys, f"out: {blocker} is an existing file", "the report's .json file name")
    assert blocker.read_text() == ""


# --- 5. outputs named by what they hold; never overwritten unasked ----------------------------------


def test_default_names_say_what_the_images_are(run_dir, tmp_path, capsys):
    for settings in (["label=1"], ["label=2"], ["label=2", "seed=1"], ["mode=interpolate", "n=3", "steps=4"]):
        assert sample_main([str(run_dir), "n=4", *settings]) == 0
    names = sorted(p.name for p in (run_dir / "samples").glob("*.png"))
    assert names == [
        "step_00000004-interpolate-n3-steps4-seed0.png",
        "step_00000004-sample-label1-n4-seed0.png",
        "step_00000004-sample-label2-n4-seed0.png",
        "step_00000004-sample-label2-n4-seed1.png",
    ]
    assert np.load(run_dir / "samples" / "step_00000004-sample-label1-n4-seed0.npz")["labels"].tolist() == [1] * 4


def test_an_existing_output_is_replaced_only_with_overwrite(run_dir, tmp_path, capsys):
    grid = tmp_path / "g.png"
    assert sample_main([str(run_dir), "label=1", "n=4", f"out={grid}"]) == 0
    first = grid.read_bytes()
    assert sample_main([str(run_dir), "label=2", "n=4", f"out={grid}"]) == 2
    refused(capsys, f"out: {grid} and {grid.with_suffix('.npz')} already exist", "overwrite=true")
    assert grid.read_bytes() == first
    assert sample_main([str(run_dir), "label=2", "n=4", f"out={grid}", "overwrite=true"]) == 0
    assert np.load(grid.with_suffix(".npz"))["labels"].tolist() == [2] * 4
    assert sample_main([str(run_dir), "label=1", "n=4"]) == 0
    assert sample_main([str(run_dir), "label=1", "n=4"]) == 2  # the default name too
    refused(capsys, "step_00000004-sample-label1-n4-seed0.png", "already exist", "overwrite=true")


def test_a_png_set_is_replaced_whole_only_with_overwrite(run_dir, tmp_path, capsys):
    folder = tmp_path / "set"
    assert sample_main([str(run_dir), "n=5", "format=png", f"out={folder}"]) == 0
    assert sample_main([str(run_dir), "n=3", "format=png", f"out={folder}"]) == 2
    refused(capsys, "already holds PNG files (5)", "overwrite=true")
    assert sample_main([str(run_dir), "n=3", "format=png", f"out={folder}", "overwrite=true"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["000000.png", "000001.png", "000002.png"]  # no mix
    Image.new("L", (28, 28)).save(folder / "mine.png")
    assert sample_main([str(run_dir), "n=3", "format=png", f"out={folder}", "overwrite=true"]) == 2
    refused(capsys, "PNG files that vaegan-sample did not write (mine.png)")
    assert (folder / "mine.png").is_file() and (folder / "000002.png").is_file()


def test_overwrite_takes_true_or_false(run_dir, capsys):
    assert sample_main([str(run_dir), "overwrite=yes"]) == 2
    refused(capsys, "overwrite: must be bool, got 'yes'")
