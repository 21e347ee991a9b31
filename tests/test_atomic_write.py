"""vaegan_runner/atomic_write.py: a file appears whole or not at all, and no temporary file stays."""

from __future__ import annotations

import os

import pytest

from vaegan_runner.atomic_write import atomic_open, atomic_path, stale_temporaries, write_text_atomic


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_file_appears_whole_only_when_the_write_ends(tmp_path):
    path = tmp_path / "out.bin"
    with atomic_open(path) as f:
        f.write(b"first half, ")
        assert not path.exists()  # nothing under the name while it is written
        f.write(b"second half")
    assert path.read_bytes() == b"first half, second half"
    assert listing(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_an_error_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, error):
    path = tmp_path / "record.json"
    path.write_text("old")
    with pytest.raises(type(error)), atomic_open(path, "w") as f:
        f.write("half of the new")
        raise error
    assert path.read_text() == "old" and listing(tmp_path) == ["record.json"]


def test_an_error_before_the_file_exists_leaves_nothing(tmp_path):
    path = tmp_path / "new.pt"
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("cut short")
    assert listing(tmp_path) == []
    with pytest.raises(RuntimeError), atomic_path(path):
        raise RuntimeError("before anything was written")
    assert listing(tmp_path) == []


def test_two_writers_in_a_row_leave_the_last_content(tmp_path):
    path = tmp_path / "metrics.json"
    write_text_atomic(path, "one")
    write_text_atomic(path, "two")
    assert path.read_text() == "two" and listing(tmp_path) == ["metrics.json"]


def test_the_temporary_file_is_beside_the_file_unique_hidden_and_found_as_stale(tmp_path):
    path = tmp_path / "step_00000002.pt"
    with atomic_path(path) as first, atomic_path(tmp_path / "step_00000004.pt") as second:
        assert first.parent == second.parent == tmp_path  # the same filesystem: os.replace renames
        assert first.name.startswith(".") and first.name.endswith(".pt.tmp") and first != second
        assert str(os.getpid()) in first.name
        first.write_bytes(b"a")
        second.write_bytes(b"b")
        assert sorted(stale_temporaries(tmp_path, ".pt")) == sorted([first, second])
    assert listing(tmp_path) == ["step_00000002.pt", "step_00000004.pt"]
    assert list(stale_temporaries(tmp_path, ".pt")) == []


def test_atomic_open_creates_a_new_file_only(tmp_path):
    with pytest.raises(ValueError, match="mode"), atomic_open(tmp_path / "x", "ab"):
        pass
    assert listing(tmp_path) == []
