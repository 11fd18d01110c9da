#!/usr/bin/env bash
# Creates .venv with hydranet_ros, its pinned dependencies and ROS 2 client libraries from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt -r requirements-ros-pypi.txt -r requirements-test.txt
.venv/bin/python -m pip install -q --no-deps -e .
