"""Fixtures of the end-to-end suite: running deployments, one per database engine.

``deployed`` is session-scoped (one server process per engine for every module that only needs
the standard configuration); modules that need another configuration build their own with
``tests.e2e.harness.deployment``. A failing test's report carries the log of every node of the
deployments it used, and every test body here is cut off after ``TEST_TIMEOUT`` seconds.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine, Generator, Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from tests.dbkit import KINDS
from tests.e2e.harness import Deployment, deployment, generate_key_file

#: The most any one end-to-end test body may take (a hung node fails the test, not CI).
TEST_TIMEOUT: Final = 120.0
_HERE: Final = Path(__file__).parent


@pytest.fixture(scope="session")
def e2e_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One signing key file for the whole suite (RSA generation is slow)."""
    return generate_key_file(tmp_path_factory.mktemp("e2e-keys") / "authward-keys.json")


@pytest.fixture(scope="session", params=KINDS)
def deployed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, e2e_keys: Path
) -> Iterator[Deployment]:
    """One running node with the standard test configuration, on each engine in turn."""
    kind = str(request.param)
    with deployment(kind, tmp_path_factory.mktemp(f"e2e-{kind}"), e2e_keys) as running:
        yield running


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Attach the server logs of the test's deployments to a failing report."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    for value in funcargs.values():
        if isinstance(value, Deployment):
            for name, log in value.server_logs():
                report.sections.append((f"server log: {name}", log))


def _bounded(
    test: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., Coroutine[Any, Any, None]]:
    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> None:
        try:
            await asyncio.wait_for(test(*args, **kwargs), TEST_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"{test.__name__} did not finish within {TEST_TIMEOUT} s")

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Bound every async test of this directory by ``TEST_TIMEOUT``."""
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and _HERE in item.path.parents
            and inspect.iscoroutinefunction(item.obj)
        ):
            item.obj = _bounded(item.obj)
