"""The page's JavaScript modules under Node's own test runner (tests/js/unit/*.test.mjs):
the reconnect schedule, series and epochs, value ages. No browser, no server."""

from __future__ import annotations

import shutil
import subprocess

from tests.conftest import JS_DIR, need_service


def test_page_modules_pass_their_node_unit_tests():
    node = shutil.which("node")
    need_service(node is not None, "Node.js is not installed (needed for the page's unit tests)")
    units = sorted(str(p) for p in (JS_DIR / "unit").glob("*.test.mjs"))
    assert units, "no unit tests found under tests/js/unit"
    done = subprocess.run([node, "--test", *units], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
