"""What `pip install .` ships: every subpackage and the page, as a newcomer gets them."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import zipfile
from pathlib import Path

import aura_dashboard
from tests.conftest import ROOT


def test_every_package_directory_is_a_regular_package():
    package_root = Path(aura_dashboard.__file__).parent
    for directory in package_root.rglob("*"):
        if directory.is_dir() and any(directory.glob("*.py")) and directory.name != "__pycache__":
            assert (directory / "__init__.py").exists(), f"{directory} lacks __init__.py: pip would not ship it"


def test_wheel_contains_every_module_config_and_page(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("aura_dashboard-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {f"{m.name.replace('.', '/')}" for m in pkgutil.walk_packages(aura_dashboard.__path__, "aura_dashboard.")}
    for module in modules:
        assert f"{module}.py" in names or f"{module}/__init__.py" in names, module
    assert "aura_dashboard/config/dashboard_config.yaml" in names
    assert "aura_dashboard/web/static/index.html" in names
