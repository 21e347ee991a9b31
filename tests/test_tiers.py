"""The two test tiers in one command: ``python -m pytest`` runs the fast tier first and stops
before the slow one when a fast test failed (``tests/conftest.py``); tried on a small suite with
this project's conftest."""

from __future__ import annotations

import os
import re
from pathlib import Path

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
SUITE = """
import pytest

@pytest.mark.slow
def test_slow_first_in_the_file():
    print("RAN", "slow_first")

def test_fast_a():
    print("RAN", "fast_a")

@pytest.mark.slow
def test_slow_last():
    print("RAN", "slow_last")

def test_fast_b():
    print("RAN", "fast_b")
    assert {fast_b_passes}
"""


def run(pytester, fast_b_passes: bool, *args: str):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    slow: the slow tier\n")
    pytester.makepyfile(test_suite=SUITE.format(fast_b_passes=fast_b_passes))
    return pytester.runpytest("-s", "-p", "no:cacheprovider", *args)


def ran(result) -> list[str]:
    """The tests that ran, in order (each prints ``RAN <name>``, which ``-s`` shows; the source line
    in a failure's traceback keeps the two words apart, so it does not count)."""
    return re.findall(r"RAN (\w+)", result.stdout.str())


def test_the_fast_tier_runs_first_then_the_slow_one(pytester):
    result = run(pytester, True)
    assert ran(result) == ["fast_a", "fast_b", "slow_first", "slow_last"]
    result.assert_outcomes(passed=4)


def test_a_fast_failure_stops_the_run_before_the_slow_tier(pytester):
    result = run(pytester, False)
    assert ran(result) == ["fast_a", "fast_b"]
    assert result.ret == 1
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the fast tier failed (1 test): the slow tier is not run*"])


def test_keep_going_slow_runs_the_slow_tier_after_a_fast_failure(pytester):
    result = run(pytester, False, "--keep-going-slow")
    assert ran(result) == ["fast_a", "fast_b", "slow_first", "slow_last"]
    result.assert_outcomes(passed=3, failed=1)


def test_the_fast_tier_alone_never_meets_the_slow_tests(pytester):
    result = run(pytester, False, "-m", "not slow")
    assert ran(result) == ["fast_a", "fast_b"] and result.ret == 1
    result.assert_outcomes(passed=1, failed=1, deselected=2)


def test_a_slow_failure_does_not_stop_the_other_slow_tests(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    slow: the slow tier\n")
    pytester.makepyfile(
        test_suite="""
import pytest

@pytest.mark.slow
def test_slow_fails():
    assert False

@pytest.mark.slow
def test_slow_after():
    print("RAN", "slow_after")
"""
    )
    result = pytester.runpytest("-s", "-p", "no:cacheprovider")
    assert ran(result) == ["slow_after"]
    result.assert_outcomes(passed=1, failed=1)


XDIST_SUITE = """
import os
import pytest

def test_fast_0():
    assert {fast_0_passes}

@pytest.mark.parametrize("i", range(1, 8))
def test_fast(i):
    print("THREADS", os.environ.get("OMP_NUM_THREADS"))

@pytest.mark.slow
@pytest.mark.parametrize("i", range(2))
def test_slow(i):
    pass
"""


def run_workers(pytester, monkeypatch, fast_0_passes: bool, workers: int):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    slow: the slow tier\n")
    pytester.makepyfile(test_suite=XDIST_SUITE.format(fast_0_passes=fast_0_passes))
    return pytester.runpytest_subprocess("-n", str(workers), "-s", "-p", "no:cacheprovider", "-rs")


def test_two_xdist_workers_run_both_tiers_with_a_core_each(pytester, monkeypatch):
    result = run_workers(pytester, monkeypatch, True, workers=2)
    result.assert_outcomes(passed=10)
    share = str(max(1, (os.cpu_count() or 1) // 2))
    assert set(re.findall(r"THREADS (\S+)", result.stdout.str())) <= {share}


def test_under_xdist_a_fast_failure_skips_the_slow_tier(pytester, monkeypatch):
    # one worker, so that the failure surely comes first; with two, a slow test that one worker
    # started before the other reported its failure runs to its end
    result = run_workers(pytester, monkeypatch, False, workers=1)
    result.assert_outcomes(passed=7, failed=1, skipped=2)
    result.stdout.fnmatch_lines(["*the fast tier failed: the slow tier is not run*"])
    assert result.ret == 1
