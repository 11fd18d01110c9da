"""The managed node's side of a bond: the heartbeat Nav2's lifecycle manager waits for after activate.

Nav2's manager (nav2_lifecycle_manager, createBondConnection) starts a bond on topic `bond` with the
managed node's name as id right after activate succeeds, and aborts bring-up unless a bond/msg/Status
from another instance with that id, `active` true, arrives within half its `bond_timeout`; later,
missing heartbeats for `bond_timeout` make it reset the whole system. Nav2's own servers create their
bond on activate and break it on deactivate (nav2_util LifecycleNode::createBond / destroyBond); this
class does the same, speaking bond's message contract as bondcpp does. It is ours rather than bondpy
because bondpy has no PyPI release, and the tests must run it.
"""
from __future__ import annotations

import uuid

from rclpy.qos import QoSProfile
from std_msgs.msg import Header

TOPIC = "bond"
HEARTBEAT_TIMEOUT_S = 4.0  # what we announce, as Nav2's servers do; the manager applies its own bond_timeout


def bond_status_type():
    """bond/msg/Status, or the reason there is none (one line for the log)."""
    try:
        from bond.msg import Status
    except ImportError:
        return ("the bond messages are not installed (ros-$ROS_DISTRO-bond): Nav2's lifecycle manager will "
                "not see a bond; install them, or set the manager's bond_timeout to 0.0")
    return Status


class Bond:
    """Heartbeats of `active` Status messages every heartbeat_period until broken; answers the other
    side's break (its `active` false) at once, as bondcpp does."""

    def __init__(self, node, status_type, heartbeat_period: float):
        self.node = node
        self.status_type = status_type
        self.id = node.get_name()
        self.instance_id = str(uuid.uuid4())
        self.heartbeat_period = heartbeat_period
        self.peer: str | None = None  # the manager's instance id, once its first Status arrived
        # bondcpp: publisher keep last 5, subscription depth 100, both reliable and volatile.
        self._publisher = node.create_publisher(status_type, TOPIC, QoSProfile(depth=5))
        self._subscription = node.create_subscription(status_type, TOPIC, self._on_status, QoSProfile(depth=100))
        self._timer = node.create_timer(heartbeat_period, lambda: self._publish(True))
        self._publish(True)

    @property
    def alive(self) -> bool:
        return self._timer is not None

    def _publish(self, active: bool) -> None:
        self._publisher.publish(self.status_type(
            header=Header(stamp=self.node.get_clock().now().to_msg()), id=self.id, instance_id=self.instance_id,
            active=active, heartbeat_timeout=HEARTBEAT_TIMEOUT_S, heartbeat_period=float(self.heartbeat_period)))

    def _on_status(self, message) -> None:
        if message.id != self.id or message.instance_id == self.instance_id:
            return  # another node's bond, or our own heartbeat
        if self.peer is None:
            self.peer = message.instance_id
            self.node.get_logger().info("bond formed with the lifecycle manager")
        if not message.active and message.instance_id == self.peer and self.alive:
            self.node.get_logger().info("the lifecycle manager broke the bond")
            self._stop_heartbeat()
            self._publish(False)

    def _stop_heartbeat(self) -> None:
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
            self._timer = None

    def close(self) -> None:
        """Breaks the bond (one `active` false, which the manager takes as the end) and releases it."""
        if self.alive:
            self._stop_heartbeat()
            self._publish(False)
        self.node.destroy_subscription(self._subscription)
        self.node.destroy_publisher(self._publisher)
