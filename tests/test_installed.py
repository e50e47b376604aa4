"""Under tox, the suite tests the installed package: its process and its children alike."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import walrus

from .conftest import PLUGINS, ROOT

pytestmark = pytest.mark.skipif(not os.environ.get("TESTS_EXPECT_INSTALLED"),
                                reason="only where the installed package is tested (tox)")

INSTALLED = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}


@pytest.mark.parametrize("name", ["walrus", "walrus_bench"])
def test_the_packages_come_from_site_packages(name: str) -> None:
    spec = importlib.util.find_spec(name)
    if spec is None:
        pytest.skip(f"no package {name} in this version")
    assert spec.origin is not None
    here = Path(spec.origin).resolve()
    assert any(here.is_relative_to(lib) for lib in INSTALLED), here
    assert not (ROOT / name).exists()  # the sources are not where the tests run


def test_child_processes_import_the_installed_package_too() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(PLUGINS)]))
    done = subprocess.run([sys.executable, "-c", "import walrus; print(walrus.__file__)"],
                          env=env, capture_output=True, text=True, check=True)
    assert Path(done.stdout.strip()).resolve() == Path(walrus.__file__).resolve()
