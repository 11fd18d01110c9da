"""What Nav2 consumes (confidence, the aligned cloud, LabelInfo, class_names) and the managed
(lifecycle) node, each across processes."""
import sys

import numpy as np
import pytest

from ros_harness import InProcessNode, NodeProcess, RosClient, camera_info_message, image_message
from hydranet_ros.camera.intrinsics import Intrinsics
from hydranet_ros.inference.backends import BackendOptions, create_backend
from hydranet_ros.model.model_file import load_label_space
from hydranet_ros.ros.conversions import image_to_array, pointcloud2_to_array, stamp_ns
from hydranet_ros.ros.outputs import label_info

rclpy = pytest.importorskip("rclpy")
K = Intrinsics(300.0, 300.0, 159.5, 47.5, 320, 96)
NODE = "/hydranet/perception_node"
KITTI6 = ["sky", "building", "road", "sidewalk", "vegetation", "car"]  # label_spaces/kitti6.json, by id


def _frame(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (96, 320, 3), dtype=np.uint8)


def _send(tester, bgr, stamp):
    msg = image_message(bgr, stamp)
    tester.info_pub.publish(camera_info_message(K, msg.header))
    tester.spin(0.05)
    tester.image_pub.publish(msg)


def _parameter(tester, name):
    from rcl_interfaces.srv import GetParameters
    response = tester.call(GetParameters, f"{NODE}/get_parameters", GetParameters.Request(names=[name]))
    return response.values[0] if response else None


def _set_parameter(tester, name, value):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return tester.call(SetParameters, f"{NODE}/set_parameters", request).results[0]


class _Fields:
    """A message stand-in that keeps its fields (vision_msgs is not installable here)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def test_label_info_maps_every_class_id_to_its_name():
    header = object()
    message = label_info(_Fields, _Fields, load_label_space("kitti6").class_names, header)
    assert message.header is header and message.threshold == 0.0
    assert [(c.class_id, c.class_name) for c in message.class_map] == list(enumerate(KITTI6))


def test_label_info_says_whether_vision_msgs_is_missing_or_too_old(monkeypatch):
    import types
    from hydranet_ros.ros.outputs import label_info_types
    monkeypatch.setitem(sys.modules, "vision_msgs", None)  # not installed
    assert label_info_types() == "vision_msgs is not installed"
    old = types.ModuleType("vision_msgs")
    old.msg = types.SimpleNamespace(Detection2D=object)  # 4.0.0: no LabelInfo yet
    monkeypatch.setitem(sys.modules, "vision_msgs", old)
    monkeypatch.setitem(sys.modules, "vision_msgs.msg", old.msg)
    assert label_info_types().startswith("vision_msgs is older than 4.1.0")
    new = types.SimpleNamespace(LabelInfo=dict, VisionClass=list)
    old.msg = new
    monkeypatch.setitem(sys.modules, "vision_msgs.msg", new)
    assert label_info_types() == (dict, list)


def test_confidence_aligned_cloud_and_class_names_for_nav2(ros, street_model_file):
    topics = ("segmentation", "segmentation/confidence", "points")
    params = {"backend": "onnxruntime", "publish_confidence": "true", "points_aligned": "true",
              "points_stride": 4, "points_organized": "false"}  # aligned overrides both
    with InProcessNode(street_model_file, params) as node:
        tester = RosClient(topics=topics)
        assert tester.wait_for_node(), node.stop()[1]
        _send(tester, _frame(1), 1000)
        assert tester.wait_for(lambda: all(1000 in tester.stamps(t) for t in topics), 30.0)
        class_names = _parameter(tester, "class_names")
        refused = _set_parameter(tester, "class_names", ["a", "b"])
        switched_off = _set_parameter(tester, "publish_confidence", False)
        _send(tester, _frame(2), 2000)
        assert tester.wait_for(lambda: 2000 in tester.stamps("points"), 30.0)
        tester.spin(0.5)
        code, output, _ = node.stop()
        tester.destroy()
    assert code == 0, output
    segmentation, confidence, cloud = (next(m for m in tester.received[t] if stamp_ns(m.header) == 1000)
                                       for t in topics)
    labels = image_to_array(segmentation)
    # Confidence: mono8 at the segmentation's size and header, the graph's own values.
    assert confidence.encoding == "mono8" and confidence.header == segmentation.header
    expected, _ = create_backend(street_model_file, BackendOptions(backend="onnxruntime", device="cpu",
                                                                   precision="fp32"))
    reference = expected.infer(_frame(1)[..., ::-1].copy()).confidence
    assert np.abs(image_to_array(confidence).astype(int) - reference).max() <= 1
    assert reference.min() >= 255 // 6  # the highest of 6 probabilities is at least 1/6
    # The aligned cloud: one point per segmentation pixel, in the same order, labels equal.
    assert (cloud.height, cloud.width) == (segmentation.height, segmentation.width)
    points = pointcloud2_to_array(cloud)
    assert np.array_equal(points["label"], labels)
    # class_names: the model's, read-only.
    assert list(class_names.string_array_value) == KITTI6
    assert not refused.successful
    # publish_confidence off at run time: the next frame has no confidence.
    assert switched_off.successful and 2000 not in tester.stamps("segmentation/confidence")
    assert "vision_msgs is not installed: segmentation/label_info is not published" in output


LATE_SUBSCRIBER = """
import json, sys, time
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from vision_msgs.msg import LabelInfo
rclpy.init()
node = rclpy.create_node("late_label_info_subscriber")
received = []
qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
node.create_subscription(LabelInfo, "/hydranet/segmentation/label_info", received.append, qos)
end = time.monotonic() + 30
while not received and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.1)
print(json.dumps([{"class_map": [[c.class_id, c.class_name] for c in m.class_map], "threshold": m.threshold}
                  for m in received]))
"""


def test_label_info_reaches_a_late_subscriber_with_the_class_map(ros, street_model_file, ros_test_messages):
    """With the real vision_msgs interface: LabelInfo is latched (transient local), so a subscriber
    that joins after the model loaded still gets the class map once."""
    import json
    import os
    import subprocess
    import sys
    environment = ros_test_messages
    with NodeProcess(street_model_file, {"backend": "onnxruntime"}, env=environment) as node:
        tester = RosClient(topics=("segmentation",))
        assert tester.wait_for_node(), node.stop()[1]
        tester.destroy()
        late = subprocess.run([sys.executable, "-c", LATE_SUBSCRIBER], capture_output=True, text=True, timeout=60,
                              env=os.environ | environment)
        code, output, _ = node.stop()
    assert code == 0 and "vision_msgs is not installed" not in output, output
    [message] = json.loads(late.stdout)
    assert message == {"class_map": [[i, name] for i, name in enumerate(KITTI6)], "threshold": 0.0}


def _lifecycle(tester, transition=None):
    """Requests a transition (by label), or none; returns (success, the state's label afterwards)."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    success = None
    if transition:
        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP,
               "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}
        response = tester.call(ChangeState, f"{NODE}/change_state",
                               ChangeState.Request(transition=Transition(id=ids[transition])), timeout=120.0)
        success = response.success
    return success, tester.call(GetState, f"{NODE}/get_state", GetState.Request()).current_state.label


def _counts(tester):
    image_subscribers = tester.image_pub.get_subscription_count()
    segmentation_publishers = tester.node.count_publishers("/hydranet/segmentation")
    return image_subscribers, segmentation_publishers


def _camera_exports():
    import os
    from pathlib import Path
    return sorted(p.name.split("-")[1] for p in (Path(os.environ["HYDRANET_CACHE"]) / "onnx").glob("*.onnx"))


def test_managed_node_loads_on_configure_and_subscribes_only_while_active(ros, street_model_file):
    """image_size: configure also prepares the graph for the camera's resolution, so activate is instant."""
    params = {"backend": "onnxruntime", "image_size": "[120, 400]"}
    exported_before = _camera_exports()
    with InProcessNode(street_model_file, params, node_class="managed") as node:
        tester = RosClient(topics=("segmentation",))
        assert tester.wait_for(lambda: tester.node.count_publishers("/hydranet/perception_node/transition_event"), 60)
        steps = {"start": (_lifecycle(tester), _counts(tester))}
        for transition in ("configure", "activate", "deactivate", "cleanup", "configure", "activate"):
            result = _lifecycle(tester, transition)
            if len(steps) == 1:
                exported_on_configure = _camera_exports()
            tester.spin(1.0)  # discovery catches up with created and destroyed endpoints
            # A camera keeps publishing: frames until one is served (a node whose new publishers have not
            # yet matched our subscription skips a frame as unsubscribed) or the wait ends.
            first = len(steps) * 1000
            stamps = range(first, first + 40)
            for stamp in stamps if result[1] == "active" else stamps[:4]:
                _send(tester, _frame(stamp), stamp)
                if tester.wait_for(lambda: any(s in tester.stamps("segmentation") for s in stamps), 0.5):
                    break
            served = any(s in tester.stamps("segmentation") for s in stamps)
            steps[f"{len(steps)} {transition}"] = (result, _counts(tester), served)
        code, output, _ = node.stop()
        tester.destroy()
    assert code == 0 and "Traceback" not in output, output
    assert steps["start"] == ((None, "unconfigured"), (0, 0))
    outcomes = [(success, state, subscribers > 0, publishers > 0, served)
                for (success, state), (subscribers, publishers), served in list(steps.values())[1:]]
    assert outcomes == [
        (True, "inactive", False, True, False),     # configure: model loaded, publishers, no subscription
        (True, "active", True, True, True),         # activate: frames served
        (True, "inactive", False, True, False),     # deactivate: unsubscribed
        (True, "unconfigured", False, False, False),  # cleanup: backend and publishers gone
        (True, "inactive", False, True, False),     # configure again
        (True, "active", True, True, True),         # and serving again
    ], steps
    assert output.count("HydraNet ready") == 2
    assert output.count("the bond messages are not installed (ros-$ROS_DISTRO-bond)") == 2  # one line per activate
    assert "120x400" not in exported_before and "120x400" in exported_on_configure


def test_managed_node_configure_fails_with_the_reason_and_stays_unconfigured(ros, tmp_path):
    with InProcessNode(tmp_path / "missing.pt", {"backend": "onnxruntime"}, node_class="managed") as node:
        tester = RosClient(topics=("segmentation",))
        assert tester.wait_for(lambda: tester.node.count_publishers("/hydranet/perception_node/transition_event"), 60)
        result = _lifecycle(tester, "configure")
        code, output, _ = node.stop()
        tester.destroy()
    assert result == (False, "unconfigured")
    assert "cannot configure:" in output and "missing.pt" in output and "Traceback" not in output
    assert code == 0


def test_a_configure_that_fails_after_loading_leaves_nothing_and_every_later_transition_works(ros,
                                                                                              street_model_file):
    """An unknown class fails configure after the backend loaded: it must be released, and shutdown must
    then finalize the node (it returned ERROR on the publishers the failed configure never made)."""
    params = {"backend": "onnxruntime", "points_exclude_classes": "[skyy]"}
    with InProcessNode(street_model_file, params, node_class="managed") as node:
        tester = RosClient(topics=("segmentation",))
        assert tester.wait_for(lambda: tester.node.count_publishers("/hydranet/perception_node/transition_event"), 60)
        results = [_lifecycle(tester, transition) for transition in ("configure", "configure", "shutdown")]
        publishers = tester.node.count_publishers("/hydranet/segmentation")
        code, output, _ = node.stop()
        tester.destroy()
    assert results == [(False, "unconfigured"), (False, "unconfigured"), (True, "finalized")], output
    assert output.count("cannot configure: points_exclude_classes: unknown classes ['skyy']") == 2, output
    assert publishers == 0 and "Traceback" not in output and "AttributeError" not in output


# What nav2_lifecycle_manager does for one node, with bondcpp's rules (lifecycle_manager.cpp
# createBondConnection, bondcpp bond.cpp bondStatusCB): change_state, then its own bond on "bond" with the
# node's name as id, formed when an active Status of another instance arrives within bond_timeout / 2.
NAV2_MANAGER = """
import json, time, uuid
import rclpy
from bond.msg import Status
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState

BOND_TIMEOUT = 4.0  # the manager's default bond_timeout
rclpy.init()
node = rclpy.create_node("lifecycle_manager", namespace="/hydranet")
me = str(uuid.uuid4())
heard = []  # (time, instance_id, active) of the managed node's Status messages


def on_status(message):
    if message.id == "perception_node" and message.instance_id != me:
        heard.append((time.monotonic(), message.instance_id, message.active))


node.create_subscription(Status, "bond", on_status, 100)
publisher = node.create_publisher(Status, "bond", 5)
client = node.create_client(ChangeState, "perception_node/change_state")


def beat(active, seconds=0.0):
    end = time.monotonic() + seconds
    while True:
        publisher.publish(Status(id="perception_node", instance_id=me, active=active,
                                 heartbeat_timeout=BOND_TIMEOUT, heartbeat_period=0.1))
        rclpy.spin_once(node, timeout_sec=0.1)
        if time.monotonic() >= end:
            return


def change(transition):
    future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
    rclpy.spin_until_future_complete(node, future, timeout_sec=120.0)
    return future.result().success


def form():
    started = time.monotonic()
    while time.monotonic() - started < BOND_TIMEOUT / 2:
        beat(True)
        formed = [t for t, _, active in heard if active and t >= started]
        if formed:
            return formed[0] - started
    return None


def after(mark):
    return [(round(t - mark, 2), active) for t, _, active in heard if t >= mark]


assert client.wait_for_service(timeout_sec=60.0)
report = {"configure": change(Transition.TRANSITION_CONFIGURE), "activate": change(Transition.TRANSITION_ACTIVATE)}
report["formed_after_s"] = form()
window = time.monotonic()
beat(True, 2.0)
times = [t for t, _, active in heard if active and t >= window]
report["heartbeats_in_2_s"] = len(times)
report["longest_gap_s"] = max(b - a for a, b in zip(times, times[1:]))
first_bond = {instance for _, instance, _ in heard}
mark = time.monotonic()
report["deactivate"] = change(Transition.TRANSITION_DEACTIVATE)
beat(True, 1.0)
report["after_deactivate"] = after(mark)
report["activate_again"] = change(Transition.TRANSITION_ACTIVATE)
report["formed_again_after_s"] = form()
report["new_instance"] = not ({instance for _, instance, _ in heard[-1:]} & first_bond)
mark = time.monotonic()
beat(False, 1.5)  # the manager breaks the bond (as its Bond's destructor does)
report["after_manager_broke"] = after(mark)
print(json.dumps(report))
"""


def test_managed_node_bonds_with_nav2s_lifecycle_manager(ros, street_model_file, ros_test_messages):
    """Across processes, with the real bond messages: heartbeats start with activate (Nav2's manager
    gives up after bond_timeout / 2 = 2 s), keep coming, end with one `active` false on deactivate, and a
    break by the manager is answered at once, as bondcpp answers it."""
    import json
    import os
    import subprocess
    module = "hydranet_ros.ros.managed_perception_node"
    params = {"backend": "onnxruntime", "bond_heartbeat_period": 0.1}
    with NodeProcess(street_model_file, params, module=module, env=ros_test_messages) as node:
        manager = subprocess.run([sys.executable, "-c", NAV2_MANAGER], capture_output=True, text=True, timeout=240,
                                 env=os.environ | ros_test_messages)
        code, output, _ = node.stop()
    assert manager.returncode == 0, manager.stdout + manager.stderr + output
    report = json.loads(manager.stdout)
    assert report["configure"] and report["activate"] and report["deactivate"] and report["activate_again"]
    assert report["formed_after_s"] is not None and report["formed_after_s"] < 2.0, report
    assert report["heartbeats_in_2_s"] >= 10 and report["longest_gap_s"] < 1.0, report  # 0.1 s period, loaded machine
    # Deactivate: one `active` false, nothing after it (heartbeats until then are fine).
    actives = [active for _, active in report["after_deactivate"]]
    assert actives.count(False) == 1 and actives[-1] is False, report
    # Activate again: a new bond (a new instance id); the manager's break is answered, then silence.
    assert report["formed_again_after_s"] is not None and report["new_instance"], report
    broke = report["after_manager_broke"]
    assert [active for _, active in broke].count(False) == 1 and broke[-1][1] is False, report
    assert all(t < 0.5 for t, _ in broke), report
    assert code == 0 and "Traceback" not in output, output
    assert output.count("bond formed with the lifecycle manager") == 2, output
    assert "the lifecycle manager broke the bond" in output


def test_a_destroyed_managed_node_leaves_no_lifecycle_service_behind(ros, street_model_file):
    """In a process that goes on (a component container, these tests), a client must not find the
    change_state of a node that is gone: it would wait for an answer that never comes."""
    tester = RosClient(topics=())
    with InProcessNode(street_model_file, {"backend": "onnxruntime"}, node_class="managed"):
        assert tester.wait_for(lambda: "/hydranet/perception_node/change_state" in _services(tester), 30)
    assert tester.wait_for(lambda: not any(name.startswith("/hydranet/perception_node/") and name.rsplit("/", 1)[1]
                                           in LIFECYCLE_SERVICES for name in _services(tester)), 10), _services(tester)
    tester.destroy()


LIFECYCLE_SERVICES = {"change_state", "get_state", "get_available_states", "get_available_transitions",
                      "get_transition_graph"}


def _services(tester) -> list[str]:
    return [name for name, _ in tester.node.get_service_names_and_types()]


def test_one_worker_even_when_a_deactivate_returns_with_a_frame_in_flight(ros, street_model_file, monkeypatch):
    """A frame that takes longer than a stop waits (as a TensorRT engine build would): deactivate returns,
    the frame ends unpublished, and the next activate waits for it: inference never runs twice at once."""
    import threading
    import time
    from hydranet_ros.ros import perception_node
    monkeypatch.setattr(perception_node, "WORKER_JOIN_S", 0.3)
    frame = np.random.default_rng(0).integers(0, 256, (96, 320, 3), dtype=np.uint8)
    with InProcessNode(street_model_file, {"backend": "onnxruntime"}, node_class="managed") as node:
        tester = RosClient(topics=("segmentation",))
        assert tester.wait_for(lambda: tester.node.count_publishers(f"{NODE}/transition_event"), 60)
        assert _lifecycle(tester, "configure") == (True, "inactive")
        perception = node.node.perception
        process, running, overlaps, first = perception.process_batch, [], [], threading.Event()

        def slow_process(*args, **kwargs):  # the backend's part of a round of frames
            running.append(1)
            overlaps.append(len(running))
            try:
                if not first.is_set():
                    first.set()
                    time.sleep(2.0)
                return process(*args, **kwargs)
            finally:
                running.pop()
        monkeypatch.setattr(perception, "process_batch", slow_process)
        assert _lifecycle(tester, "activate") == (True, "active")
        assert tester.wait_for(lambda: tester.image_pub.get_subscription_count() > 0, 30)
        tester.image_pub.publish(image_message(frame, 1))
        assert tester.wait_for(first.is_set, 30)
        assert _lifecycle(tester, "deactivate") == (True, "inactive")  # returns while the frame runs
        assert _lifecycle(tester, "activate") == (True, "active")  # waits for that frame first
        workers = [t for t in threading.enumerate() if t.name == "hydranet_worker"]
        for stamp in range(2, 40):
            tester.image_pub.publish(image_message(frame, stamp))
            if tester.wait_for(lambda: tester.received["segmentation"], 0.3):
                break
        node.stop()
        tester.destroy()
    assert len(workers) == 1 and max(overlaps) == 1, (workers, overlaps)
    assert tester.received["segmentation"] and 1 not in tester.stamps("segmentation")  # the held frame is dropped


def test_autostart_activates_and_cleanup_lets_restart_parameters_change(ros, street_model_file):
    """autostart: the managed node serves frames with no transition requested. While it is configured a
    restart-only parameter is refused with the reason; after cleanup it is accepted and the next
    configure loads with it (here: another backend)."""
    frame = np.random.default_rng(0).integers(0, 256, (96, 320, 3), dtype=np.uint8)
    params = {"backend": "onnxruntime", "autostart": "true"}
    with InProcessNode(street_model_file, params, node_class="managed") as node:
        tester = RosClient(topics=("segmentation",))
        for stamp in range(1, 200):
            tester.image_pub.publish(image_message(frame, stamp))
            if tester.wait_for(lambda: tester.received["segmentation"], 0.3):
                break
        served_without_a_transition = bool(tester.received["segmentation"])
        refused = _set_parameter(tester, "backend", "torch")
        assert _lifecycle(tester, "deactivate")[0] and _lifecycle(tester, "cleanup") == (True, "unconfigured")
        accepted = _set_parameter(tester, "backend", "torch")
        assert _lifecycle(tester, "configure") == (True, "inactive")
        backend = node.node.perception.backend.name
        node.stop()
        tester.destroy()
    assert served_without_a_transition
    assert not refused.successful and "set it while the node is unconfigured" in refused.reason
    assert accepted.successful and backend == "torch"
