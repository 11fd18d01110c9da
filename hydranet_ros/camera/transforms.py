"""Rigid transforms between sensor frames, as a recording's /tf and /tf_static give them (pure numpy).

tf2 is not on PyPI, and reading a bag needs only a small part of it: TransformBuffer keeps each
parent -> child transform over time, chains them through the frame tree and interpolates in time
(translation linearly, rotation by slerp). Static transforms hold at every time. A transform is the
child's pose in the parent's frame, as in geometry_msgs/TransformStamped: it maps child coordinates into
parent coordinates.
"""
from __future__ import annotations

import bisect
from collections import defaultdict, deque

import numpy as np


class TransformError(LookupError):
    """A transform that the buffer cannot give; the message names the frames and what is missing."""


class TransformTimeError(TransformError):
    """The frames are joined, but a moving transform on the way is not known at that time."""


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """3 x 3 rotation of a quaternion (normalised first)."""
    q = np.array([x, y, z, w], dtype=np.float64)
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def matrix_to_quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix (Shepperd's method: from the largest of the four terms)."""
    trace = np.trace(rotation)
    largest = int(np.argmax([trace, rotation[0, 0], rotation[1, 1], rotation[2, 2]]))
    if largest == 0:
        w = np.sqrt(1.0 + trace) / 2
        x, y, z = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0],
                            rotation[1, 0] - rotation[0, 1]]) / (4 * w)
    else:
        i = largest - 1
        j, k = (i + 1) % 3, (i + 2) % 3
        q = np.zeros(3)
        q[i] = np.sqrt(1.0 + rotation[i, i] - rotation[j, j] - rotation[k, k]) / 2
        q[j] = (rotation[j, i] + rotation[i, j]) / (4 * q[i])
        q[k] = (rotation[k, i] + rotation[i, k]) / (4 * q[i])
        w = (rotation[k, j] - rotation[j, k]) / (4 * q[i])
        x, y, z = q
    return float(x), float(y), float(z), float(w)


def slerp(q0: np.ndarray, q1: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions (x, y, z, w), the short way round."""
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear, then normalised
        q = q0 + fraction * (q1 - q0)
        return q / np.linalg.norm(q)
    angle = np.arccos(dot)
    return (np.sin((1 - fraction) * angle) * q0 + np.sin(fraction * angle) * q1) / np.sin(angle)


def rigid(translation, quaternion) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = quaternion_to_matrix(*quaternion)
    matrix[:3, 3] = translation
    return matrix


# tf2 normalises what it is given; a quaternion this far from unit length is a writer's error, not rounding.
QUATERNION_NORM_TOLERANCE = 0.01


class TransformBuffer:
    def __init__(self, max_gap_s: float = 1.0):
        """max_gap_s: how far a dynamic transform may be interpolated between two samples, and how far
        beyond the first or last one it is still taken as is."""
        self.max_gap_ns = int(max_gap_s * 1e9)
        self._static: dict[tuple[str, str], np.ndarray] = {}
        # (parent, child) -> (sorted stamps, their (translation, unit quaternion) samples)
        self._dynamic: dict[tuple[str, str], tuple[list[int], list[tuple[np.ndarray, np.ndarray]]]] = {}
        self._neighbours: dict[str, set[str]] = defaultdict(set)
        self._parents: dict[str, set[str]] = {}

    def add(self, parent: str, child: str, stamp_ns: int, translation, quaternion, static: bool = False) -> None:
        """A transform sample; a TransformError for one that cannot be a rigid motion (a NaN or infinite
        value, a quaternion far from unit length) or that gives a frame a second parent (as tf2, one
        parent a frame: both velodyne -> camera and camera -> velodyne would make either one wrong)."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        values = np.asarray(list(translation) + list(quaternion), np.float64)
        if not np.isfinite(values).all():
            raise TransformError(f"the transform {parent} -> {child} holds a NaN or infinite value "
                                 f"(translation {list(translation)}, rotation {list(quaternion)})")
        if abs(np.linalg.norm(values[3:]) - 1.0) > QUATERNION_NORM_TOLERANCE:
            raise TransformError(f"the transform {parent} -> {child} has a rotation quaternion of length "
                                 f"{np.linalg.norm(values[3:]):.3g}, not 1 ({list(quaternion)})")
        other_parents = self._parents.get(child, {parent}) - {parent}
        if other_parents:
            raise TransformError(f"{child} is the child of both {parent} and {sorted(other_parents)[0]}: a frame has "
                                 "one parent, so one of these transforms is wrong")
        ancestor = parent
        while ancestor in self._parents:  # child above parent already: the transforms would make a loop
            ancestor = next(iter(self._parents[ancestor]))
            if ancestor == child:
                raise TransformError(f"the transforms give both {parent} -> {child} and {child} -> {parent} "
                                     "(directly or through other frames): one of them is wrong")
        self._parents[child] = {parent}
        self._neighbours[parent].add(child)
        self._neighbours[child].add(parent)
        if static:
            self._static[parent, child] = rigid(translation, quaternion)
            return
        stamps, samples = self._dynamic.setdefault((parent, child), ([], []))
        q = np.asarray(quaternion, np.float64)
        stamp, sample = int(stamp_ns), (np.asarray(translation, np.float64), q / np.linalg.norm(q))
        index = bisect.bisect_left(stamps, stamp)
        if index < len(stamps) and stamps[index] == stamp:
            samples[index] = sample
        else:
            stamps.insert(index, stamp)
            samples.insert(index, sample)

    def frames(self) -> list[str]:
        return sorted(self._neighbours)

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """4 x 4: coordinates in `source` -> coordinates in `target` at stamp_ns."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        path = self._path(source, target)
        matrix = np.eye(4)
        for near, far in zip(path, path[1:]):  # each step: coordinates in `near` -> in `far`
            if (far, near) in self._static or (far, near) in self._dynamic:
                step = self._edge(far, near, stamp_ns)
            else:
                step = np.linalg.inv(self._edge(near, far, stamp_ns))
            matrix = step @ matrix
        return matrix

    def _path(self, source: str, target: str) -> list[str]:
        missing = [frame for frame in (source, target) if frame not in self._neighbours]
        if missing:
            raise TransformError(f"no transform from {source} to {target}: {' and '.join(missing)} "
                                 f"{'is' if len(missing) == 1 else 'are'} in no transform "
                                 f"(frames known: {', '.join(self.frames()) or 'none'})")
        previous = {source: None}
        queue = deque([source])
        while queue:
            frame = queue.popleft()
            if frame == target:
                path = [frame]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1]
            for neighbour in sorted(self._neighbours[frame]):
                if neighbour not in previous:
                    previous[neighbour] = frame
                    queue.append(neighbour)
        raise TransformError(f"no transform from {source} to {target}: no chain of transforms joins them "
                             f"(frames known: {', '.join(self.frames())})")

    def _edge(self, parent: str, child: str, stamp_ns: int) -> np.ndarray:
        """child coordinates -> parent coordinates at stamp_ns."""
        if (parent, child) in self._static:
            return self._static[parent, child]
        stamps, samples = self._dynamic[parent, child]
        index = bisect.bisect_left(stamps, stamp_ns)
        if index < len(stamps) and stamps[index] == stamp_ns:
            return rigid(*samples[index])
        if index == 0 or index == len(stamps):
            nearest = 0 if index == 0 else -1
            if abs(stamps[nearest] - stamp_ns) <= self.max_gap_ns:
                return rigid(*samples[nearest])
            raise TransformTimeError(f"no transform {parent} -> {child} at {stamp_ns / 1e9:.3f} s: it is known "
                                     f"from {stamps[0] / 1e9:.3f} to {stamps[-1] / 1e9:.3f} s")
        (t0, t1), ((p0, q0), (p1, q1)) = stamps[index - 1:index + 1], samples[index - 1:index + 1]
        if t1 - t0 > self.max_gap_ns:
            raise TransformTimeError(f"no transform {parent} -> {child} at {stamp_ns / 1e9:.3f} s: no sample "
                                     f"between {t0 / 1e9:.3f} and {t1 / 1e9:.3f} s")
        fraction = (stamp_ns - t0) / (t1 - t0)
        return rigid(p0 + fraction * (p1 - p0), slerp(q0, q1, fraction))
