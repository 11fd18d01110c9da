"""The linters ROS packages run through ament_lint (ament_flake8, ament_pep257), with the settings in
setup.cfg: flake8 (pycodestyle and pyflakes) and pydocstyle with the pep257 convention."""
import subprocess
import sys

from conftest import REPO

SOURCES = ["hydranet_ros", "test", "scripts", "launch", "setup.py"]


def test_flake8_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "flake8", *SOURCES], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout, result.stdout + result.stderr


def test_pydocstyle_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "pydocstyle", *SOURCES[:-1]], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0 and not result.stdout, result.stdout + result.stderr
