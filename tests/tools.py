"""External tools the tests need: skip locally when missing, fail in CI.

CI sets HLSPROXY_REQUIRE_TOOLS=1, so a test that needs ffmpeg can never pass there by
skipping.
"""

from __future__ import annotations

import os
import shutil

from twisted.trial.unittest import SkipTest

__all__ = ["require_tool", "run_process"]


def require_tool(name: str) -> str:
    """The path of `name`, or skip (fail when HLSPROXY_REQUIRE_TOOLS=1)."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed"
    if os.environ.get("HLSPROXY_REQUIRE_TOOLS") == "1":
        raise AssertionError(message + " (required: HLSPROXY_REQUIRE_TOOLS=1)")
    raise SkipTest(message)


async def run_process(
    executable: str, arguments: list[str], seconds: float = 60, path: str | None = None
) -> tuple[bytes, bytes, int]:
    """Run a player without blocking the reactor the servers run on; (out, err, exit code).

    Cancelled after `seconds`, so a hung player fails the test instead of blocking it.
    """
    from twisted.internet import reactor
    from twisted.internet.utils import getProcessOutputAndValue

    d = getProcessOutputAndValue(
        executable, arguments, env=dict(os.environ), path=path, reactor=reactor
    )
    timer = reactor.callLater(seconds, d.cancel)  # type: ignore[attr-defined]
    try:
        result: tuple[bytes, bytes, int] = await d
    finally:
        if timer.active():
            timer.cancel()
    return result
