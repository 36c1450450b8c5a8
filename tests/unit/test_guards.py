"""The autouse guards of tests/conftest.py fire: a leaked task and a blocking call fail the test."""

from __future__ import annotations

from pathlib import Path

import pytest

import drivers
import gateway
import simulator

# Only this module runs pytest inside pytest: pytester is not loaded for the rest of the suite.
pytest_plugins = ["pytester"]

ROOT = Path(__file__).parents[2]
#: Where a guard-probe's code pretends to live. blockbuster decides by the file name of each frame
#: on the stack (a prefix of the scanned packages' folders), so code compiled under that name is
#: "ours" to it; nothing is written there.
PROBE_FILES = {
    "gateway": Path(gateway.__file__).parent / "_guard_probe.py",
    "drivers": Path(drivers.__file__).parent / "_guard_probe.py",
    "simulator": Path(simulator.__file__).parent / "_guard_probe.py",
}
UNSCANNED_FILE = Path(__file__).parent / "_guard_probe.py"


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester with the suite's own conftest (the guards under test) and pytest settings."""
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyprojecttoml((ROOT / "pyproject.toml").read_text())
    return pytester


def failed_phases(result: pytest.HookRecorder) -> list[tuple[str, str, str]]:
    """Each test phase that failed: test id, phase, and the end of its report (the guard's message)."""
    return [(r.nodeid, r.when, str(r.longrepr)[-400:])
            for r in result.getreports("pytest_runtest_logreport") if r.failed]


def test_a_leaked_task_fails_the_test(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_inner="""
        import asyncio

        async def test_leaks_a_task():
            asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="leaker")

        async def test_awaits_its_task():
            await asyncio.get_running_loop().create_task(asyncio.sleep(0), name="awaited")
    """)
    result = inner.inline_run("test_inner.py", "-p", "no:cacheprovider")
    result.assertoutcome(passed=2, failed=1)  # both calls pass; one teardown fails
    failures = failed_phases(result)
    assert len(failures) == 1, failures
    nodeid, when, message = failures[0]
    assert (nodeid, when) == ("test_inner.py::test_leaks_a_task", "teardown")
    assert "test leaked 1 asyncio task(s): ['leaker: <coroutine object sleep" in message


@pytest.mark.parametrize("package", ["gateway", "drivers", "simulator"])
def test_a_blocking_call_from_our_code_on_the_loop_fails_the_test(
    inner: pytest.Pytester, package: str,
) -> None:
    inner.makepyfile(test_inner=f"""
        import asyncio

        namespace = {{}}
        exec(compile("import time\\ndef block():\\n    time.sleep(0.001)\\n",
                     {str(PROBE_FILES[package])!r}, "exec"), namespace)

        async def test_blocks_the_loop():
            namespace["block"]()

        def test_blocks_without_a_loop():
            namespace["block"]()  # no running loop: nothing to block

        async def test_blocks_in_a_thread():
            await asyncio.to_thread(namespace["block"])
    """)
    result = inner.inline_run("test_inner.py", "-p", "no:cacheprovider")
    result.assertoutcome(passed=2, failed=1)
    failures = failed_phases(result)
    assert [(nodeid, when) for nodeid, when, _ in failures] == [
        ("test_inner.py::test_blocks_the_loop", "call")]
    assert "BlockingError: Blocking call to time.sleep" in failures[0][2]


def test_a_blocking_call_from_test_code_is_not_ours_to_police(inner: pytest.Pytester) -> None:
    """The control for the test above: the same probe outside the scanned packages passes."""
    inner.makepyfile(test_inner=f"""
        namespace = {{}}
        exec(compile("import time\\ndef block():\\n    time.sleep(0.001)\\n",
                     {str(UNSCANNED_FILE)!r}, "exec"), namespace)

        async def test_blocks_the_loop():
            namespace["block"]()
    """)
    inner.inline_run("test_inner.py", "-p", "no:cacheprovider").assertoutcome(passed=1)
