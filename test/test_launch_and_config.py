"""The launch file, parameter files and rviz view agree with the node. test_robot_path.py runs the launch
file with the real launch system; the two launch tests here check, against small stand-ins that record
what it asks for, what a run without rviz2 or on a CPU cannot show: the rviz view it writes and the
parameters it hands the node."""
import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from hydranet_ros.ros import parameters
from hydranet_ros.ros.output_topics import ALL_TOPICS

NODE_INPUTS = {"image", "image/compressed", "camera_info"}


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _RecordedLifecycleNode(_Recorded):
    pass


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


@pytest.fixture
def launch_module(monkeypatch):
    stand_ins = {
        "launch": {"LaunchDescription": _Recorded}, "launch.actions": {"DeclareLaunchArgument": _Recorded,
                                                                       "OpaqueFunction": _Recorded,
                                                                       "RegisterEventHandler": _Recorded},
        "launch.event_handlers": {"OnShutdown": _Recorded},
        "launch.substitutions": {"LaunchConfiguration": _LaunchConfiguration},
        "launch_ros": {}, "launch_ros.actions": {"Node": _Recorded,
                                                 "LifecycleNode": _RecordedLifecycleNode},
        "ament_index_python": {}, "ament_index_python.packages": {"get_package_share_directory": lambda _: str(REPO)},
    }
    for name, attributes in stand_ins.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("perception_launch", REPO / "launch" / "perception.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry_points():
    tree = ast.parse((REPO / "setup.py").read_text())
    scripts = next(node for node in ast.walk(tree) if isinstance(node, ast.Dict)
                   and any(isinstance(k, ast.Constant) and k.value == "console_scripts" for k in node.keys))
    return {entry.value.split("=")[0].strip() for entry in scripts.values[0].elts}


@pytest.mark.parametrize("config", ["outdoor_kitti6.yaml", "indoor_nyud40.yaml"])
def test_the_node_it_starts_exists_with_existing_config_and_known_names(launch_module, config):
    node = launch_module._perception_node(_context(launch_module, config=config, model_path="/models/mine.pt"))
    kwargs = node.kwargs
    assert kwargs["package"] == "hydranet_ros" and kwargs["executable"] in _entry_points()
    config_path, overrides = kwargs["parameters"]
    assert Path(config_path).is_file()
    assert set(overrides) <= set(parameters.BY_NAME) | {"use_sim_time"}
    assert overrides["model_path"] == "/models/mine.pt" and "backend" not in overrides
    assert {source for source, _ in kwargs["remappings"]} <= NODE_INPUTS
    assert dict(kwargs["remappings"])["image"] == "/camera/image_raw"


@pytest.mark.parametrize("distro, variable", [("humble", "FASTRTPS_DEFAULT_PROFILES_FILE"),
                                              ("jazzy", "FASTRTPS_DEFAULT_PROFILES_FILE"),
                                              ("kilted", "FASTDDS_DEFAULT_PROFILES_FILE"),
                                              ("", "FASTDDS_DEFAULT_PROFILES_FILE")])
def test_the_large_data_profile_is_set_on_the_started_processes_in_what_their_fast_dds_reads(
        launch_module, monkeypatch, distro, variable):
    """Fast DDS 2.x (Humble, Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE only, 3.x (Kilted; PyPI's wheels
    set no ROS_DISTRO) FASTDDS_DEFAULT_PROFILES_FILE only; nothing at launch level, which an including
    bringup would inherit."""
    monkeypatch.setenv("ROS_DISTRO", distro)
    node, rviz, _ = launch_module._actions(_context(launch_module, rviz="true"))
    for action in (node, rviz):
        [(name, profile)] = action.kwargs["additional_env"].items()
        assert name == variable and Path(profile).name == "fastdds_large_data.xml" and Path(profile).is_file()
    # The description: the argument declarations and the one function that builds the actions, no
    # environment action.
    assert len(launch_module.generate_launch_description().args[0]) == len(launch_module.ARGUMENTS) + 1
    quiet = launch_module._actions(_context(launch_module, large_data_transport="false"))
    assert quiet[0].kwargs["additional_env"] == {}


def _context(launch_module, **changes):
    return {name: default for name, (default, _) in launch_module.ARGUMENTS.items()} | changes


def _rviz_view(launch_module, **changes):
    [rviz, cleanup] = launch_module._actions(_context(launch_module, rviz="true", **changes))[1:]
    assert rviz.kwargs["package"] == "rviz2" and rviz.kwargs["arguments"][0] == "-d"
    path = Path(rviz.kwargs["arguments"][1])
    view = yaml.safe_load(path.read_text())
    [on_shutdown] = cleanup.args  # the launch's shutdown removes the copy rviz read
    on_shutdown.kwargs["on_shutdown"](None, None)
    assert not path.exists()
    displays = view["Visualization Manager"]["Displays"]
    return {d["Name"]: d["Topic"]["Value"] for d in displays if "Topic" in d}, \
        view["Visualization Manager"]["Global Options"]["Fixed Frame"]


def test_rviz_follows_the_namespace_image_topic_and_frame(launch_module):
    shipped = yaml.safe_load((REPO / "config" / "perception.rviz").read_text())["Visualization Manager"]
    default_topics, default_frame = _rviz_view(launch_module)
    assert default_topics == {d["Name"]: d["Topic"]["Value"] for d in shipped["Displays"] if "Topic" in d}
    assert default_frame == shipped["Global Options"]["Fixed Frame"] == "camera_optical_frame"
    topics, frame = _rviz_view(launch_module, namespace="robot1/perception", image_topic="front/image_color",
                               frame="front_camera_optical")
    assert frame == "front_camera_optical"
    assert topics["Camera image"] == "/front/image_color"
    outputs = {name: topic for name, topic in topics.items() if name != "Camera image"}
    assert outputs and all(t.startswith("/robot1/perception/") for t in outputs.values())
    assert {t.removeprefix("/robot1/perception/") for t in outputs.values()} <= set(ALL_TOPICS)
    assert {t.removeprefix("/robot1/perception/") for t in outputs.values()} == \
        {t.removeprefix("/hydranet/") for n, t in default_topics.items() if n != "Camera image"}
    root_topics, _ = _rviz_view(launch_module, namespace="")  # the node in the root namespace
    assert root_topics["Segmentation overlay"] == "/segmentation/overlay"
    assert len(launch_module._actions(_context(launch_module))) == 1  # rviz:=false starts the node alone


def test_cameras_give_each_camera_its_topics_in_the_node_and_in_rviz(launch_module):
    node = launch_module._perception_node(_context(launch_module, cameras="front, rear"))
    assert node.kwargs["parameters"][1]["cameras"] == ["front", "rear"]
    assert dict(node.kwargs["remappings"]) == {
        "front/image": "/front/image_raw", "front/image/compressed": "/front/image_raw/compressed",
        "front/camera_info": "/front/camera_info", "rear/image": "/rear/image_raw",
        "rear/image/compressed": "/rear/image_raw/compressed", "rear/camera_info": "/rear/camera_info"}
    templated = launch_module._perception_node(_context(launch_module, cameras="left", image_topic="/{camera}/color",
                                                        camera_info_topic="/{camera}/color/info"))
    assert dict(templated.kwargs["remappings"])["left/camera_info"] == "/left/color/info"
    topics, _ = _rviz_view(launch_module, cameras="front,rear")
    assert topics["Camera image (front)"] == "/front/image_raw" and topics["Camera image (rear)"] == "/rear/image_raw"
    assert topics["Segmentation overlay (rear)"] == "/hydranet/rear/segmentation/overlay"
    assert topics["Points (rgb) (front)"] == "/hydranet/front/points"
    with pytest.raises(ValueError, match="write {camera} where each name goes"):
        launch_module._perception_node(_context(launch_module, cameras="front,rear", image_topic="/cam/image_raw"))


NODE_CONFIGS = [p for p in sorted((REPO / "config").glob("*.yaml")) if not p.name.startswith("train_")]


@pytest.mark.parametrize("config", NODE_CONFIGS, ids=lambda p: p.name)
def test_parameter_files_set_declared_parameters_to_valid_values(config):
    values = yaml.safe_load(config.read_text())["/**"]["ros__parameters"]
    assert set(values) == set(parameters.BY_NAME)
    for name, value in values.items():
        assert parameters.validate(name, value) is None, (name, value)
        assert type(value) is type(parameters.BY_NAME[name].default), name  # ROS parameters are typed


def test_models_named_by_the_configs_are_shipped():
    for config in ("outdoor_kitti6.yaml", "indoor_nyud40.yaml"):
        name = yaml.safe_load((REPO / "config" / config).read_text())["/**"]["ros__parameters"]["model_path"]
        assert (REPO / "models" / name).is_file(), name


def test_rviz_view_shows_node_outputs():
    view = yaml.safe_load((REPO / "config" / "perception.rviz").read_text())
    topics = {d["Topic"]["Value"] for d in view["Visualization Manager"]["Displays"] if "Topic" in d}
    assert {"/hydranet/segmentation/overlay", "/hydranet/depth/image", "/hydranet/points"} <= topics
    cloud = next(d for d in view["Visualization Manager"]["Displays"] if d["Class"].endswith("PointCloud2"))
    assert cloud["Color Transformer"] == "RGB8"


def test_the_node_page_holds_the_parameter_table_generated_from_the_parameters():
    """docs/perception_node.md's table is parameters.markdown_table() verbatim: one row per parameter
    with its default, range and whether it changes at run time."""
    page = (REPO / "docs" / "perception_node.md").read_text()
    table = parameters.markdown_table()
    assert table in page, "regenerate it: python -m hydranet_ros.ros.parameters"
    rows = table.splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [spec.name for spec in parameters.PARAMETERS]
    for spec, row in zip(parameters.PARAMETERS, rows):
        assert f"| {'run time' if spec.dynamic else 'restart'} |" in row, spec.name
    assert "| `points_max_depth` | `40.0` | 0.1 … 1000 | run time |" in table


def test_readme_is_short_and_every_page_it_links_exists():
    import re
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 160
    links = re.findall(r"\]\(((?:docs|models)/[^)#]+)", readme)
    assert len(links) >= 10 and all((REPO / link).is_file() for link in links), links
    for page in (REPO / "docs").glob("*.md"):
        for link in re.findall(r"\]\(([^)#:]+\.md)", page.read_text()):
            assert (page.parent / link).resolve().is_file(), (page.name, link)


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    command = "scripts/setup.sh && .venv/bin/python -m pytest -q test"
    assert command in readme and command in (REPO / ".ci" / "run").read_text()


def _layout_panels(tree):
    """Panel ids in a Foxglove layout tree (a panel id, or a split with first and second)."""
    if isinstance(tree, str):
        return [tree]
    return _layout_panels(tree["first"]) + _layout_panels(tree["second"])


def test_foxglove_layout_shows_the_node_outputs_and_colours_the_cloud_by_rgb_and_by_label():
    import json
    layout = json.loads((REPO / "config" / "foxglove_layout.json").read_text())
    panels = layout["configById"]
    assert sorted(_layout_panels(layout["layout"])) == sorted(panels)  # every panel placed, none missing
    images = {config["imageMode"]["imageTopic"] for name, config in panels.items() if name.startswith("Image!")}
    assert images == {"/camera/image_raw", "/hydranet/segmentation/overlay", "/hydranet/depth/image"}
    clouds = [(topic, settings) for name, config in panels.items() if name.startswith("3D!")
              for topic, settings in config["topics"].items()]
    assert {topic.removeprefix("/hydranet/") for topic, _ in clouds} <= set(ALL_TOPICS)
    coloured_by = {(settings["colorField"], settings["colorMode"]) for topic, settings in clouds
                   if topic == "/hydranet/points" and settings["visible"]}
    assert coloured_by == {("rgb", "rgb"), ("label", "colormap")}
    assert panels["DiagnosticSummary!diagnostics"]["topicToRender"] == "/diagnostics"


def test_foxglove_layout_for_a_nodes_cameras_places_every_panel_with_its_cameras_topics(tmp_path):
    import json
    from hydranet_ros.cli.main import main as hydranet
    assert hydranet(["foxglove-layout", "--out", str(tmp_path / "two.json"), "--cameras", "front,rear",
                     "--namespace", "robot1/perception"]) == 0
    layout = json.loads((tmp_path / "two.json").read_text())
    panels = layout["configById"]
    assert sorted(_layout_panels(layout["layout"])) == sorted(panels)
    for camera in ("front", "rear"):
        assert panels[f"Image!camera_{camera}"]["imageMode"]["imageTopic"] == f"/{camera}/image_raw"
        assert panels[f"Image!overlay_{camera}"]["imageMode"]["imageTopic"] == \
            f"/robot1/perception/{camera}/segmentation/overlay"
        assert f"/robot1/perception/{camera}/points" in panels[f"3D!points_rgb_{camera}"]["topics"]
    assert hydranet(["foxglove-layout", "--out", str(tmp_path / "one.json")]) == 0  # the shipped layout itself
    shipped = json.loads((REPO / "config" / "foxglove_layout.json").read_text())
    assert json.loads((tmp_path / "one.json").read_text()) == shipped
    assert hydranet(["foxglove-layout", "--out", str(tmp_path / "x.json"), "--cameras", "a,b",
                     "--image-topic", "/x/image"]) == 2  # one topic for two cameras: refused in one line
    assert not (tmp_path / "x.json").exists()


def test_package_xml_declares_the_ros_packages_the_code_imports_and_only_rosdep_keys():
    import re
    from test_package_structure import imported_names
    package_xml = (REPO / "package.xml").read_text()
    depends = set(re.findall(r"<(?:exec_|build_|buildtool_|test_)?depend(?: [^>]*)?>([^<]+)<", package_xml))
    assert "ament_python" not in depends  # not a rosdep key: rosdep install fails on it
    assert '<exec_depend version_gte="4.1.0">vision_msgs</exec_depend>' in package_xml  # LabelInfo: 4.1.0
    assert {"ros2launch", "rviz2"} <= depends  # the launch file, and its rviz:=true
    ros_packages = {"rclpy", "std_msgs", "sensor_msgs", "diagnostic_msgs", "rcl_interfaces", "vision_msgs",
                    "lifecycle_msgs", "launch", "launch_ros", "ament_index_python"}
    imported = {name.split(".")[0] for path in [*(REPO / "hydranet_ros").rglob("*.py"), REPO / "launch" /
                                                "perception.launch.py"] for name in imported_names(path)}
    assert imported & ros_packages <= depends, sorted(imported & ros_packages - depends)


@pytest.mark.parametrize("distro, variable",
                         [("humble", "ROS_LOCALHOST_ONLY"), ("jazzy", "ROS_AUTOMATIC_DISCOVERY_RANGE"),
                          ("", "ROS_AUTOMATIC_DISCOVERY_RANGE")])
def test_the_apps_keep_discovery_on_localhost_with_what_each_distribution_reads(distro, variable):
    """Humble's rcl reads ROS_LOCALHOST_ONLY only; Jazzy reads ROS_AUTOMATIC_DISCOVERY_RANGE and warns that
    ROS_LOCALHOST_ONLY is deprecated (so it is not set there). A user's own setting is kept."""
    from hydranet_ros.ros.discovery import keep_graph_private
    environ = {"ROS_DISTRO": distro} if distro else {}
    keep_graph_private(environ)
    other = ({"ROS_LOCALHOST_ONLY", "ROS_AUTOMATIC_DISCOVERY_RANGE"} - {variable}).pop()
    assert environ[variable] in ("1", "LOCALHOST") and other not in environ
    assert 100 <= int(environ["ROS_DOMAIN_ID"]) <= 232
    mine = {"ROS_DISTRO": distro, "ROS_DOMAIN_ID": "7", variable: "0"}
    keep_graph_private(mine)
    assert mine["ROS_DOMAIN_ID"] == "7" and mine[variable] == "0"


def test_processes_at_the_same_time_claim_different_ros_domains():
    """Two test suites (or a demo beside a benchmark) on one machine never share a domain: each process
    holds a lock on its own until it exits; one process keeps one."""
    import subprocess
    import sys
    from hydranet_ros.ros.discovery import claim_free_domain
    mine = claim_free_domain()
    assert claim_free_domain() == mine
    others = [subprocess.Popen([sys.executable, "-c", "import sys, time; from hydranet_ros.ros.discovery import "
                                "claim_free_domain; print(claim_free_domain(), flush=True); sys.stdin.read()"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    claimed = [int(process.stdout.readline()) for process in others]  # all three hold theirs now
    for process in others:
        process.communicate("")
    assert len({mine, *claimed}) == 4, (mine, claimed)
