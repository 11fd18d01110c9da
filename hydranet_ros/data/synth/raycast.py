"""Ray casting: which surface each pixel's ray hits first, and where."""
from __future__ import annotations

import numpy as np

from hydranet_ros.data.synth.scene import NO_HIT, Material, Scene


def ray_box(origin, directions, low, high):
    """Entry and exit distances of rays against a box (inf where missed) and entry axis."""
    inv = 1.0 / directions
    t0 = (low - origin) * inv
    t1 = (high - origin) * inv
    near = np.minimum(t0, t1)
    far = np.maximum(t0, t1)
    t_entry = near.max(axis=1)
    t_exit = far.min(axis=1)
    return t_entry, t_exit, near.argmax(axis=1), far.argmin(axis=1)


def ray_sphere(origin, directions, center, radius):
    oc = origin - center
    a = np.einsum("ij,ij->i", directions, directions)
    b = 2 * directions @ oc
    c = oc @ oc - radius * radius
    disc = b * b - 4 * a * c
    t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
    return np.where(t > 1e-3, t, np.inf).astype(np.float32)


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera optical frame -> world (x right, y up, z forward). Positive pitch looks down."""
    flip = np.diag([1.0, -1.0, 1.0])  # optical y down -> world y up
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll @ flip


class Hits:
    """The nearest surface along each ray so far: distance, label, normal and material."""

    def __init__(self, count: int):
        self.t = np.full(count, NO_HIT, np.float32)
        self.label = np.zeros(count, np.uint8)
        self.normal = np.zeros((count, 3), np.float32)
        self.material_id = np.full(count, -1, np.int32)
        self.materials: list[Material] = []

    def take(self, index, t, label, normal, material):
        """Keeps the hits at rays[index] that are closer than what was hit before."""
        closer = t < self.t[index]
        rays = np.arange(len(self.t))[index][closer] if isinstance(index, slice) else index[closer]
        self.t[rays] = t[closer]
        self.label[rays] = label
        self.normal[rays] = normal if normal.ndim == 1 else normal[closer]
        self.materials.append(material)
        self.material_id[rays] = len(self.materials) - 1


def _on_screen(low, high, origin, rotation, intrinsics):
    """Indices of the rays inside the screen rectangle of a world box; None when off screen."""
    h, w = intrinsics.height, intrinsics.width
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1])
                        for z in (low[2], high[2])]) - origin
    cam = corners @ rotation  # world -> camera (rotation is orthonormal)
    if np.all(cam[:, 2] <= 0.05):
        return None
    if np.any(cam[:, 2] <= 0.05):
        return slice(None)
    u = cam[:, 0] / cam[:, 2] * intrinsics.fx + intrinsics.cx
    v = cam[:, 1] / cam[:, 2] * intrinsics.fy + intrinsics.cy
    u0, u1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())) + 1, w)
    v0, v1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())) + 1, h)
    if u0 >= u1 or v0 >= v1:
        return None
    return (np.arange(v0, v1)[:, None] * w + np.arange(u0, u1)[None, :]).ravel()


def cast_rays(scene: Scene, origin: np.ndarray, directions: np.ndarray, rotation: np.ndarray, intrinsics) -> Hits:
    """The first surface each ray hits: the room's faces, the ground, then every box and sphere."""
    hits = Hits(directions.shape[0])
    if scene.room is not None:
        _, t_exit, _, axis = ray_box(origin, directions, scene.room.low, scene.room.high)
        for (face_axis, side), face_label in scene.room_face_labels.items():
            on_face = (axis == face_axis) & ((directions[:, face_axis] > 0) == (side > 0))
            nrm = np.zeros(3, np.float32)
            nrm[face_axis] = -side
            hits.take(slice(None), np.where(on_face, t_exit, np.inf).astype(np.float32), face_label, nrm,
                      scene.room_face_materials[(face_axis, side)])
    if scene.ground_y is not None:
        t = (scene.ground_y - origin[1]) / directions[:, 1]
        t = np.where(t > 0, t, np.inf).astype(np.float32)
        x = origin[0] + t * directions[:, 0]
        on_road = np.abs(x) < scene.road_half_width
        on_sidewalk = ~on_road & (np.abs(x) < scene.road_half_width + scene.sidewalk_width)
        up = np.array([0, 1, 0], np.float32)
        for name, mask in (("road", on_road), ("sidewalk", on_sidewalk), ("verge", ~on_road & ~on_sidewalk)):
            label, material = scene.ground_materials[name]
            hits.take(slice(None), np.where(mask, t, np.inf).astype(np.float32), label, up, material)
    for box in scene.boxes:
        index = _on_screen(box.low, box.high, origin, rotation, intrinsics)
        if index is None:
            continue
        d = directions[index]
        t_entry, t_exit, axis, _ = ray_box(origin, d, box.low, box.high)
        hit = (t_exit >= t_entry) & (t_entry > 1e-3)
        rows = np.arange(len(d))
        nrm = np.zeros((len(d), 3), np.float32)
        nrm[rows, axis] = -np.sign(d[rows, axis])
        hits.take(index, np.where(hit, t_entry, np.inf).astype(np.float32), box.label, nrm, box.material)
    for sphere in scene.spheres:
        index = _on_screen(sphere.center - sphere.radius, sphere.center + sphere.radius, origin, rotation, intrinsics)
        if index is None:
            continue
        d = directions[index]
        t = ray_sphere(origin, d, sphere.center, sphere.radius)
        points = origin + d * np.where(np.isfinite(t), t, 0)[:, None]
        hits.take(index, t, sphere.label, ((points - sphere.center) / sphere.radius).astype(np.float32),
                  sphere.material)
    return hits
