"""A ROS graph of the process's own, for the apps that start a node and talk to it (demo, soak, the
node benchmark) and for the tests. No rclpy: it only sets environment variables, before rclpy.init.

Discovery is kept on this machine with the variable each distribution's rcl reads: Humble's reads
ROS_LOCALHOST_ONLY (rcl humble, src/rcl/localhost.c); Iron and later read ROS_AUTOMATIC_DISCOVERY_RANGE
(rcl 9.2, src/rcl/discovery_options.c) and log that ROS_LOCALHOST_ONLY is deprecated when it is set
(src/rcl/init.c). The distribution is the one ROS_DISTRO names (set by its setup.bash); PyPI's ROS
wheels set none and are newer than Humble.

Fast DDS reads its XML profile from one variable, by major version: 2.x (Humble's 2.6, Jazzy's 2.14)
FASTRTPS_DEFAULT_PROFILES_FILE only, 3.x (Kilted and later) FASTDDS_DEFAULT_PROFILES_FILE only
(src/cpp/*xmlparser/XMLParserCommon.cpp on the 2.6.x, 2.14.x and 3.2.x branches); Kilted's
rmw_fastrtps still reads the old one and warns that it is deprecated.
"""
from __future__ import annotations

import fcntl
import os
import random
import tempfile
from pathlib import Path

DISTROS_WITH_LOCALHOST_ONLY = ("foxy", "galactic", "humble")
DISTROS_WITH_FAST_DDS_2 = ("foxy", "galactic", "humble", "iron", "jazzy")
PRIVATE_DOMAINS = range(100, 233)  # Fast DDS's ports allow domains up to 232 on Linux
LARGE_DATA_PROFILE = "fastdds_large_data.xml"
_claimed: list = []  # (domain id, its lock file, held open until the process exits)


def localhost_discovery_variable(environ=os.environ) -> tuple[str, str]:
    """(name, value) of the variable that keeps this distribution's discovery on localhost."""
    if environ.get("ROS_DISTRO", "").strip().lower() in DISTROS_WITH_LOCALHOST_ONLY:
        return "ROS_LOCALHOST_ONLY", "1"
    return "ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"


def fastdds_profile_variable(environ=os.environ) -> str:
    """The variable this distribution's Fast DDS reads its XML profile file from."""
    if environ.get("ROS_DISTRO", "").strip().lower() in DISTROS_WITH_FAST_DDS_2:
        return "FASTRTPS_DEFAULT_PROFILES_FILE"
    return "FASTDDS_DEFAULT_PROFILES_FILE"


def use_large_data_transport(environ=os.environ) -> str:
    """The shipped large-data Fast DDS profile for this process and the processes it starts (as the
    launch file's large_data_transport does), unless the user chose a profile; the profile in use.
    With Fast DDS's defaults a multi-megabyte output overflows the 512 KiB shared-memory segment and
    goes out as UDP fragments that the socket buffer drops; reliable readers get them back a heartbeat
    later, and every small sample queued behind them waits as long (measured by `hydranet demo`:
    depth/camera_info 458 ms median, 37 of 40 received; with the profile 74 ms, 40 of 40)."""
    from hydranet_ros.shipped import shipped_file
    variable = fastdds_profile_variable(environ)
    environ.setdefault(variable, str(shipped_file("config", LARGE_DATA_PROFILE)))
    return environ[variable]


def claim_free_domain() -> int:
    """A ROS domain no other process on this machine has claimed here: its lock file in the temporary
    folder stays locked until this process exits, so runs at the same time (two test suites, a demo
    beside a benchmark) never share one. The same domain for every call of one process."""
    if _claimed:
        return _claimed[0][0]
    folder = Path(tempfile.gettempdir()) / "hydranet_ros_domains"
    folder.mkdir(exist_ok=True)
    for domain in random.sample(PRIVATE_DOMAINS, len(PRIVATE_DOMAINS)):
        lock = open(folder / f"{domain}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _claimed.append((domain, lock))
        return domain
    raise RuntimeError(f"every ROS domain from {PRIVATE_DOMAINS.start} to {PRIVATE_DOMAINS.stop - 1} is claimed "
                       f"by a running process (lock files in {folder})")


def keep_graph_private(environ=os.environ, domain_id: int | None = None) -> None:
    """A ROS domain of our own (domain_id, else ROS_DOMAIN_ID if the user set it, else one claimed
    for this process) with discovery on localhost, unless the user set that already."""
    if domain_id is not None:
        environ["ROS_DOMAIN_ID"] = str(domain_id)
    if "ROS_DOMAIN_ID" not in environ:
        environ["ROS_DOMAIN_ID"] = str(claim_free_domain())
    name, value = localhost_discovery_variable(environ)
    environ.setdefault(name, value)
