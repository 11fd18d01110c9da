"""What a robot runs: the package built by colcon (non-editable) in a workspace of its own, started by the
real `ros2 launch` and `ros2 run` from ../shared/ros2_wheels, fed KITTI frames over DDS from this process.

The robot's Python is a bare venv; the ROS packages and pip's packages (rclpy, messages, launch, torch,
...) reach it through PYTHONPATH and LD_LIBRARY_PATH as a distribution's setup.bash puts /opt/ros on
them, so the development venv's editable install of hydranet_ros is invisible: a module the install
lacks is missing here as on a robot. Skipped without ../shared/ros2_wheels (scripts/setup.sh installs
the wheels when it is there)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SHARED, shared_path
from ros_harness import OUTPUTS, RosClient, camera_info_message, image_message
from hydranet_ros.ros.output_topics import OUTPUTS as OUTPUT_TOPICS

VENV_BIN = Path(sys.executable).parent
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
STOP_LIMIT_S = 2.0


def _needs_launch_system():
    if not (SHARED / "ros2_wheels").is_dir():
        pytest.skip("../shared/ros2_wheels is absent (the real launch system is not on PyPI)")
    for tool in ("ros2", "colcon"):
        if not (VENV_BIN / tool).is_file():
            pytest.skip(f"{tool} is not installed in this venv: run scripts/setup.sh with ../shared beside it")


class Robot:
    """A colcon workspace with hydranet_ros built in it, and the commands a robot user types."""

    def __init__(self, root: Path, messages: dict):
        self.root = root
        python = root / "python"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(python)], check=True,
                       env=_without_venv(os.environ))
        self.bin = python / "bin"
        for tool in ("ros2", "colcon"):  # as /opt/ros/<distro>/bin/ros2: the same script, the robot's Python
            script = (VENV_BIN / tool).read_text().split("\n", 1)[1]
            (self.bin / tool).write_text(f"#!{self.bin / 'python'}\n{script}")
            (self.bin / tool).chmod(0o755)
        libraries = [str(SITE_PACKAGES.parents[1])] + sorted(str(p) for p in SITE_PACKAGES.glob("ros_*.libs"))
        self.paths = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join(filter(None, [messages["PYTHONPATH"].split(os.pathsep)[0],
                                                        str(SITE_PACKAGES)])),
            "LD_LIBRARY_PATH": os.pathsep.join([messages["LD_LIBRARY_PATH"].split(os.pathsep)[0]] + libraries),
            "AMENT_PREFIX_PATH": str(SITE_PACKAGES.parents[2]),  # the venv's share/ holds the ROS packages
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.workspace = root / "ws"
        source = self.workspace / "src" / "hydranet_ros"
        source.parent.mkdir(parents=True)
        shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "install", "log", "datasets", "runs", "demo_output", "__pycache__", "*.onnx"))
        self.build = self.run("colcon", "build", "--packages-select", "hydranet_ros", source_install=False,
                              timeout=300)
        self.install = self.workspace / "install" / "hydranet_ros"

    def command(self, *args: str, source_install: bool = True) -> list[str]:
        """args run by bash in the workspace, after `source install/setup.bash` as the README says."""
        prefix = "source install/setup.bash && " if source_install else ""
        return ["bash", "-c", prefix + 'exec "$@"', "bash", *args]

    def run(self, *args: str, source_install: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args, source_install=source_install), cwd=self.workspace,
                              env=self.environment(), capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str) -> "Started":
        return Started(subprocess.Popen(self.command(*args), cwd=self.workspace, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                        env=self.environment()))

    def environment(self) -> dict:
        """This process's environment (its ROS domain and discovery range too) as the robot's."""
        return _without_venv(os.environ) | self.paths


class Started:
    """A command started in a session of its own, as a terminal starts a foreground job."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.group = process.pid  # start_new_session: its pid is its process group's id

    def members(self) -> list[int]:
        """Every live process of this job's process group (a process that left it is not counted)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.group and fields[0] != "Z":
                found.append(int(stat.parent.name))
        return found

    def stop(self, how: str) -> tuple[str, float]:
        """'ctrl-c': SIGINT to the process group, as a terminal sends it; 'sigterm': SIGTERM to the
        launching process alone, as `systemctl stop` and `docker stop` send it to their main process.
        Returns the output and the seconds until no process of the job is left."""
        start = time.monotonic()
        if how == "ctrl-c":
            os.killpg(self.group, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.group, signal.SIGKILL)
            output, _ = self.process.communicate()
        while self.members() and time.monotonic() - start < 20:
            time.sleep(0.02)
        return output, time.monotonic() - start

    def kill(self):
        if self.members():
            os.killpg(self.group, signal.SIGKILL)
        self.process.communicate()


def _without_venv(environ) -> dict:
    """The environment without the development venv's activation (a robot has none)."""
    return {k: v for k, v in environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}


def _node_processes(install: Path) -> list[int]:
    """Processes running an executable of this workspace's install (the node, wherever its group is)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(install / "lib").encode() in argument for argument in arguments):
            found.append(int(cmdline.parent.name))
    return found


@pytest.fixture(scope="module")
def robot(tmp_path_factory, ros_test_messages):
    _needs_launch_system()
    robot = Robot(tmp_path_factory.mktemp("robot"), ros_test_messages)
    assert robot.build.returncode == 0, robot.build.stdout + robot.build.stderr
    return robot


def _kitti_camera():
    from hydranet_ros.data.dataset import read_rgb
    from hydranet_ros.data.kitti import read_tracking_calibration
    root = shared_path("data", "kitti_tracking_0001")
    rgb = read_rgb(root / "image_2" / "0001" / "000000.png")
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    return rgb[..., ::-1].copy(), calibration.intrinsics(rgb.shape[1], rgb.shape[0])


def _outputs_on_in(config: str) -> tuple[str, ...]:
    """The outputs a shipped parameter file switches on."""
    values = yaml.safe_load((REPO / "config" / config).read_text())["/**"]["ros__parameters"]
    return tuple(topic.name for topic in OUTPUT_TOPICS if values[topic.toggle])


def _serves_every_output(namespace: str, image_topic: str, info_topic: str, ready=None, timeout=90.0,
                         topics=_outputs_on_in("outdoor_kitti6.yaml")):
    """Publishes KITTI frames with their camera_info until every output of `topics` (default: those the
    launch's default config switches on) has answered one of them with its header; returns the tester's
    received messages."""
    bgr, intrinsics = _kitti_camera()
    tester = RosClient(namespace, topics=topics)
    try:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        image_pub = tester.node.create_publisher(Image, image_topic, qos)
        info_pub = tester.node.create_publisher(CameraInfo, info_topic, qos)
        if ready:
            ready(tester)
        sent = set()
        deadline = time.monotonic() + timeout
        stamp = 1_000_000_000
        while time.monotonic() < deadline and not all(tester.stamps(t) & sent for t in topics):
            image = image_message(bgr, stamp, frame_id="camera_color_left")
            info_pub.publish(camera_info_message(intrinsics, image.header))
            image_pub.publish(image)
            sent.add(stamp)
            stamp += 100_000_000
            tester.spin(0.5)
        missing = [t for t in topics if not tester.stamps(t) & sent]
        assert not missing, f"no output on {missing} under {namespace or '/'} after {len(sent)} frames"
        for topic in topics:
            for msg in tester.received[topic]:
                assert msg.header.frame_id == "camera_color_left"
        return tester.received
    finally:
        tester.destroy()


def _assert_stopped_cleanly(robot: Robot, job: Started, how: str):
    output, seconds = job.stop(how)
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    assert not job.members(), f"left running: {job.members()}"
    assert not _node_processes(robot.install), "perception_node left running"
    assert seconds < STOP_LIMIT_S, f"{how}: {seconds:.2f} s to stop\n{output[-2000:]}"
    return output


LAUNCHES = {
    "defaults": ([], "/hydranet", "/camera/image_raw", "/camera/camera_info", "ctrl-c"),
    "remapped camera, its size given": (["image_topic:=/front/image_color", "camera_info_topic:=/front/camera_info",
                                         "image_size:=[375, 1242]"],
                                        "/hydranet", "/front/image_color", "/front/camera_info", "sigterm"),
    "root namespace": (["namespace:=/"], "", "/camera/image_raw", "/camera/camera_info", "ctrl-c"),
    "indoor config": (["config:=indoor_nyud40.yaml"], "/hydranet", "/camera/image_raw", "/camera/camera_info",
                      "sigterm"),
    "two cameras": (["cameras:=front,rear"], "/hydranet/{camera}", "/{camera}/image_raw", "/{camera}/camera_info",
                    "ctrl-c"),
}


@pytest.mark.parametrize("name", LAUNCHES)
def test_ros2_launch_serves_every_output_with_the_input_header_and_stops_cleanly(ros, robot, name):
    arguments, namespace, image_topic, info_topic, stop = LAUNCHES[name]
    job = robot.start("ros2", "launch", "hydranet_ros", "perception.launch.py", *arguments)
    try:
        config = next((a.split(":=")[1] for a in arguments if a.startswith("config:=")), "outdoor_kitti6.yaml")
        for camera in ("front", "rear") if name == "two cameras" else ("",):  # each under its own name
            received = _serves_every_output(namespace.format(camera=camera), image_topic.format(camera=camera),
                                            info_topic.format(camera=camera), topics=_outputs_on_in(config))
        if name == "indoor config":
            assert max(max(m.data) for m in received["segmentation"]) < 40
        # The robot configs' outputs: at the network's size, depth/camera_info describing it, obstacles
        # holding only their points (nothing for Nav2 to transform in vain).
        segmentation, info = received["segmentation"][-1], received["depth/camera_info"][-1]
        assert segmentation.width < 1242 and (info.width, info.height) == (segmentation.width, segmentation.height)
        obstacles = received["points/obstacles"][-1]
        assert obstacles.height == 1 and obstacles.is_dense and obstacles.width > 0
        output = _assert_stopped_cleanly(robot, job, stop)
    finally:
        job.kill()
    # The node ran from the workspace's install, never the source tree.
    assert f"{robot.install}/share/hydranet_ros/models/" in output
    # KITTI's size, from image_size:= or from the camera_info the camera sends from the start
    assert "prepared for 1242x375 camera images" in output, output[-3000:]
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in output  # Kilted's Fast DDS warns when it is set


def test_ros2_run_starts_the_node_and_a_terminal_ctrl_c_stops_it(ros, robot):
    job = robot.start("ros2", "run", "hydranet_ros", "perception_node", "--ros-args", "-r", "__ns:=/hydranet",
                      "-r", "image:=/camera/image_raw", "-r", "camera_info:=/camera/camera_info")
    try:
        _serves_every_output("/hydranet", "/camera/image_raw", "/camera/camera_info", topics=tuple(OUTPUTS))
        _assert_stopped_cleanly(robot, job, "ctrl-c")
    finally:
        job.kill()


def test_lifecycle_launch_serves_outputs_after_configure_and_activate(ros, robot):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    def configure_and_activate(tester):
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            response = tester.call(ChangeState, "/hydranet/perception_node/change_state",
                                   ChangeState.Request(transition=Transition(id=transition)), timeout=60.0)
            assert response is not None and response.success

    job = robot.start("ros2", "launch", "hydranet_ros", "perception.launch.py", "lifecycle:=true")
    try:
        _serves_every_output("/hydranet", "/camera/image_raw", "/camera/camera_info", ready=configure_and_activate)
        _assert_stopped_cleanly(robot, job, "ctrl-c")
    finally:
        job.kill()


def _hydranet_rviz_copies() -> set[Path]:
    import tempfile
    return set(Path(tempfile.gettempdir()).glob("hydranet_*.rviz"))


@pytest.mark.parametrize("arguments, message", [
    (["config:=outdoor_kiti6.yaml"], "config:=outdoor_kiti6.yaml: no such parameter file"),
    (["rviz:=true"], "rviz:=true, but rviz2 is not installed"),
    (["lifecycle:=yes"], "lifecycle:='yes' must be true or false"),
    (["image_size:=[0, 5]"], "image_size:='[0, 5]': image_size must be [height, width] with each side in [32, 4096]"),
    (["cameras:=front,front"], "cameras:='front,front': cameras must be distinct"),
    (["cameras:=front,rear", "image_topic:=/front/image_color"], "write {camera} where each name goes"),
])
def test_a_refused_launch_starts_nothing_and_says_why_in_one_line(robot, arguments, message):
    before = _hydranet_rviz_copies()
    result = robot.run("ros2", "launch", "hydranet_ros", "perception.launch.py", *arguments)
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "[ERROR]" in line]
    assert result.returncode == 1 and len(errors) == 1 and message in errors[0], result.stdout + result.stderr
    assert "process started" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not _node_processes(robot.install)
    assert _hydranet_rviz_copies() <= before


def test_show_args_lists_exactly_the_arguments_and_defaults_install_md_documents(robot):
    result = robot.run("ros2", "launch", "hydranet_ros", "perception.launch.py", "--show-args")
    assert result.returncode == 0, result.stderr
    shown = dict(re.findall(r"'(\w+)':\n(?:.*\n)*?\s+\(default: '([^']*)'\)", result.stdout))
    documented = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", (REPO / "docs" / "install.md").read_text(), re.M))
    assert len(shown) >= 10 and shown == documented


def test_ros2_pkg_finds_the_package_its_executables_and_its_launch_file(robot):
    prefix = robot.run("ros2", "pkg", "prefix", "hydranet_ros")
    assert prefix.stdout.strip() == str(robot.install)
    executables = robot.run("ros2", "pkg", "executables", "hydranet_ros").stdout.split()
    assert {"perception_node", "managed_perception_node", "hydranet"} <= set(executables)
    share = robot.install / "share" / "hydranet_ros"
    assert (share / "launch" / "perception.launch.py").is_file()


# The packaging: what `pip wheel .` and colcon put where the node and the launch file look.

def _package_modules() -> set[str]:
    return {str(p.relative_to(REPO)) for p in (REPO / "hydranet_ros").rglob("*.py")}


def test_the_wheel_holds_every_module_and_data_file_of_the_package(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("hydranet_ros-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert _package_modules() <= names, sorted(_package_modules() - names)
    data = {str(p.relative_to(REPO)) for pattern in ("hydranet_ros/model/label_spaces/*.json",
                                                     "hydranet_ros/training/teacher_maps/*.yaml")
            for p in REPO.glob(pattern)}
    assert data and data <= names
    shared = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    for pattern in ("launch/*.py", "config/*.yaml", "config/*.rviz", "config/*.xml", "models/*.pt"):
        assert {f"share/hydranet_ros/{p.relative_to(REPO)}" for p in REPO.glob(pattern)} <= shared, pattern


def test_every_package_folder_is_a_package():
    """find_packages skips a folder without __init__.py: its modules are missing from every install."""
    folders = {p.parent for p in (REPO / "hydranet_ros").rglob("*.py")}
    assert [str(f) for f in folders if not (f / "__init__.py").is_file()] == []


def test_the_colcon_install_holds_every_module_and_imports_each_one(robot):
    site = next(robot.install.glob("lib/python3*/site-packages"))
    installed = {str(p.relative_to(site)) for p in (site / "hydranet_ros").rglob("*.py")}
    assert _package_modules() == installed, sorted(_package_modules() ^ installed)
    modules = sorted(m[:-3].replace("/", ".").removesuffix(".__init__") for m in installed)
    script = ("import importlib, sys\nfor m in sys.argv[1:]:\n    module = importlib.import_module(m)\n"
              f"    assert module.__file__.startswith({str(site)!r}), module.__file__\n"
              "print('imported', len(sys.argv) - 1)")
    result = robot.run("python", "-c", script, *modules)
    assert result.returncode == 0 and f"imported {len(modules)}" in result.stdout, result.stderr[-3000:]
    share = robot.install / "share" / "hydranet_ros"
    for folder, pattern in (("config", "*.yaml"), ("config", "*.rviz"), ("config", "*.xml"), ("models", "*.pt")):
        assert {p.name for p in (REPO / folder).glob(pattern)} <= {p.name for p in (share / folder).glob(pattern)}
