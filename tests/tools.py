"""External tools the tests need: skip locally when missing, fail in CI.

CI sets HLSPROXY_REQUIRE_TOOLS=1, so a test that needs ffmpeg can never pass there by
skipping.
"""

from __future__ import annotations

import os
import shutil

from twisted.trial.unittest import SkipTest

__all__ = ["require_tool"]


def require_tool(name: str) -> str:
    """The path of `name`, or skip (fail when HLSPROXY_REQUIRE_TOOLS=1)."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed"
    if os.environ.get("HLSPROXY_REQUIRE_TOOLS") == "1":
        raise AssertionError(message + " (required: HLSPROXY_REQUIRE_TOOLS=1)")
    raise SkipTest(message)
