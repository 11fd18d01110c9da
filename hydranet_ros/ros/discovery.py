"""A ROS graph of the process's own, for the apps that start a node and talk to it (demo, soak, the
node benchmark) and for the tests. No rclpy: it only sets environment variables, before rclpy.init.

Discovery is kept on this machine with the variable each distribution's rcl reads: Humble's reads
ROS_LOCALHOST_ONLY (rcl humble, src/rcl/localhost.c); Iron and later read ROS_AUTOMATIC_DISCOVERY_RANGE
(rcl 9.2, src/rcl/discovery_options.c) and log that ROS_LOCALHOST_ONLY is deprecated when it is set
(src/rcl/init.c). The distribution is the one ROS_DISTRO names (set by its setup.bash); PyPI's ROS
wheels set none and are newer than Humble.
"""
from __future__ import annotations

import os
import random

DISTROS_WITH_LOCALHOST_ONLY = ("foxy", "galactic", "humble")


def localhost_discovery_variable(environ=os.environ) -> tuple[str, str]:
    """(name, value) of the variable that keeps this distribution's discovery on localhost."""
    if environ.get("ROS_DISTRO", "").strip().lower() in DISTROS_WITH_LOCALHOST_ONLY:
        return "ROS_LOCALHOST_ONLY", "1"
    return "ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"


def keep_graph_private(environ=os.environ, domain_id: int | None = None) -> None:
    """A ROS domain of our own (a random one from 100 to 200 unless ROS_DOMAIN_ID is set, or domain_id)
    with discovery on localhost, unless the user set these already."""
    if domain_id is not None:
        environ["ROS_DOMAIN_ID"] = str(domain_id)
    environ.setdefault("ROS_DOMAIN_ID", str(random.randint(100, 200)))
    name, value = localhost_discovery_variable(environ)
    environ.setdefault(name, value)
