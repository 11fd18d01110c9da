"""Procedural scenes with exact labels and metric depth: indoor rooms (NYUD-40 ids) and streets
(KITTI-6 ids), ray-cast in numpy.

Scenes are built from axis-aligned boxes, spheres and the room's inner faces. Every frame has an
exact z-depth, a label per pixel and its intrinsics. Appearance varies with textures, light
colour and direction, exposure, camera pose, blur and sensor noise. Everything derives from one
seed, so a (kind, seed) pair always renders the same frames.

World frame: x right, y up, z forward at yaw 0. The camera's optical frame is x right, y down,
z forward (REP 103).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from hydranet_ros.camera.intrinsics import Intrinsics, pixel_rays
from hydranet_ros.model.model_file import load_label_space

NO_HIT = np.float32(np.inf)
STREET_MAX_DEPTH_M = 80.0  # like KITTI's LiDAR range; farther points carry no depth


@dataclass
class Frame:
    rgb: np.ndarray          # H x W x 3 uint8
    depth: np.ndarray        # H x W float32 metres, 0 = no depth (sky, beyond range)
    labels: np.ndarray       # H x W uint8 class ids
    intrinsics: Intrinsics


@dataclass
class Material:
    color: np.ndarray        # linear RGB albedo, 0..1
    texture: str = "noise"   # noise | stripes | checker | bricks | plain
    scale: float = 1.0       # texture frequency per metre
    contrast: float = 0.25
    emissive: bool = False   # lit from behind (a window): its colour is not shaded


@dataclass
class Box:
    low: np.ndarray
    high: np.ndarray
    label: int
    material: Material


@dataclass
class Sphere:
    center: np.ndarray
    radius: float
    label: int
    material: Material


@dataclass
class Scene:
    kind: str
    boxes: list[Box] = field(default_factory=list)
    spheres: list[Sphere] = field(default_factory=list)
    room: Box | None = None          # indoor: the camera is inside; its faces are hit from within
    room_face_labels: dict = field(default_factory=dict)   # (axis, side) -> label
    room_face_materials: dict = field(default_factory=dict)
    ground_y: float | None = None    # street: ground plane
    road_half_width: float = 0.0
    sidewalk_width: float = 0.0
    ground_materials: dict = field(default_factory=dict)
    light: np.ndarray = field(default_factory=lambda: np.array([0.3, 1.0, 0.2]))
    light_color: np.ndarray = field(default_factory=lambda: np.ones(3))
    ambient: float = 0.35
    sky_color: np.ndarray = field(default_factory=lambda: np.array([0.55, 0.7, 0.9]))


class Texturer:
    """Value noise and patterns evaluated at hit points; the table makes it deterministic."""

    def __init__(self, rng: np.random.Generator):
        self.table = rng.random((256, 256)).astype(np.float32)

    def noise(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        u0, v0 = np.floor(u), np.floor(v)
        fu, fv = u - u0, v - v0
        i, j = u0.astype(np.int64) & 255, v0.astype(np.int64) & 255
        i1, j1 = (i + 1) & 255, (j + 1) & 255
        t = self.table
        top = t[i, j] * (1 - fu) + t[i1, j] * fu
        bottom = t[i, j1] * (1 - fu) + t[i1, j1] * fu
        return top * (1 - fv) + bottom * fv

    def fractal(self, u, v):
        return (0.5 * self.noise(u, v) + 0.3 * self.noise(2.1 * u + 17, 2.1 * v + 5)
                + 0.2 * self.noise(4.3 * u + 3, 4.3 * v + 31))

    def pattern(self, material: Material, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        s = material.scale
        grain = self.fractal(u * s * 4, v * s * 4)
        if material.texture == "stripes":
            value = 0.5 + 0.5 * np.sin(u * s * 20 + 3 * grain)
        elif material.texture == "checker":
            value = ((np.floor(u * s) + np.floor(v * s)) % 2).astype(np.float32) * 0.8 + 0.2 * grain
        elif material.texture == "bricks":
            row = np.floor(v * s * 4)
            mortar = (((v * s * 4) % 1) < 0.1) | ((((u * s * 2) + 0.5 * row) % 1) < 0.05)
            value = np.where(mortar, 1.6, 0.6 + 0.4 * grain)
        elif material.texture == "plain":
            value = 0.5 + 0.1 * grain
        else:
            value = grain
        return 1.0 + material.contrast * (value - 0.5) * 2


def _ray_box(origin, directions, low, high):
    """Entry and exit distances of rays against a box (inf where missed) and entry axis."""
    inv = 1.0 / directions
    t0 = (low - origin) * inv
    t1 = (high - origin) * inv
    near = np.minimum(t0, t1)
    far = np.maximum(t0, t1)
    t_entry = near.max(axis=1)
    t_exit = far.min(axis=1)
    return t_entry, t_exit, near.argmax(axis=1), far.argmin(axis=1)


def _ray_sphere(origin, directions, center, radius):
    oc = origin - center
    a = np.einsum("ij,ij->i", directions, directions)
    b = 2 * directions @ oc
    c = oc @ oc - radius * radius
    disc = b * b - 4 * a * c
    t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
    return np.where(t > 1e-3, t, np.inf).astype(np.float32)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera optical frame -> world (x right, y up, z forward). Positive pitch looks down."""
    flip = np.diag([1.0, -1.0, 1.0])  # optical y down -> world y up
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll @ flip


def render(scene: Scene, intrinsics: Intrinsics, position: np.ndarray, yaw: float, pitch: float,
           roll: float, rng: np.random.Generator, texturer: Texturer) -> Frame:
    """Ray-casts one frame of the scene from a camera pose."""
    h, w = intrinsics.height, intrinsics.width
    x_over_z, y_over_z = pixel_rays(intrinsics)
    rays_cam = np.stack(np.broadcast_arrays(x_over_z[None, :], y_over_z[:, None],
                                            np.ones((1, 1), np.float32)), -1).reshape(-1, 3)
    directions = (rays_cam @ _rotation(yaw, pitch, roll).T).astype(np.float32)  # not normalised: z_cam = 1
    directions[np.abs(directions) < 1e-6] = 1e-6
    origin = position.astype(np.float32)
    n = directions.shape[0]

    rotation = _rotation(yaw, pitch, roll)
    best_t = np.full(n, NO_HIT, np.float32)
    label = np.zeros(n, np.uint8)
    normal = np.zeros((n, 3), np.float32)
    material_id = np.full(n, -1, np.int32)
    materials: list[Material] = []

    def take(index, t, lab, nrm, material):
        """Keeps the hits at rays[index] that are closer than what was hit before."""
        closer = t < best_t[index]
        rays = np.arange(n)[index][closer] if isinstance(index, slice) else index[closer]
        best_t[rays] = t[closer]
        label[rays] = lab
        normal[rays] = nrm if nrm.ndim == 1 else nrm[closer]
        materials.append(material)
        material_id[rays] = len(materials) - 1

    def on_screen(low, high):
        """Indices of the rays inside the screen rectangle of a world box; None when off screen."""
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

    if scene.room is not None:
        _, t_exit, _, axis = _ray_box(origin, directions, scene.room.low, scene.room.high)
        for (face_axis, side), face_label in scene.room_face_labels.items():
            on_face = (axis == face_axis) & ((directions[:, face_axis] > 0) == (side > 0))
            nrm = np.zeros(3, np.float32)
            nrm[face_axis] = -side
            take(slice(None), np.where(on_face, t_exit, np.inf).astype(np.float32), face_label, nrm,
                 scene.room_face_materials[(face_axis, side)])
    if scene.ground_y is not None:
        t = (scene.ground_y - origin[1]) / directions[:, 1]
        t = np.where(t > 0, t, np.inf).astype(np.float32)
        x = origin[0] + t * directions[:, 0]
        on_road = np.abs(x) < scene.road_half_width
        on_sidewalk = ~on_road & (np.abs(x) < scene.road_half_width + scene.sidewalk_width)
        up = np.array([0, 1, 0], np.float32)
        for name, mask in (("road", on_road), ("sidewalk", on_sidewalk), ("verge", ~on_road & ~on_sidewalk)):
            lab, material = scene.ground_materials[name]
            take(slice(None), np.where(mask, t, np.inf).astype(np.float32), lab, up, material)
    for box in scene.boxes:
        index = on_screen(box.low, box.high)
        if index is None:
            continue
        d = directions[index]
        t_entry, t_exit, axis, _ = _ray_box(origin, d, box.low, box.high)
        hit = (t_exit >= t_entry) & (t_entry > 1e-3)
        rows = np.arange(len(d))
        nrm = np.zeros((len(d), 3), np.float32)
        nrm[rows, axis] = -np.sign(d[rows, axis])
        take(index, np.where(hit, t_entry, np.inf).astype(np.float32), box.label, nrm, box.material)
    for sphere in scene.spheres:
        index = on_screen(sphere.center - sphere.radius, sphere.center + sphere.radius)
        if index is None:
            continue
        d = directions[index]
        t = _ray_sphere(origin, d, sphere.center, sphere.radius)
        points = origin + d * np.where(np.isfinite(t), t, 0)[:, None]
        take(index, t, sphere.label, ((points - sphere.center) / sphere.radius).astype(np.float32),
             sphere.material)

    hit = np.isfinite(best_t)
    points = origin + directions * np.where(hit, best_t, 0)[:, None]
    albedo = np.empty((n, 3), np.float32)
    albedo[:] = scene.sky_color
    emissive = np.zeros(n, bool)
    for index, material in enumerate(materials):
        mask = material_id == index
        if not mask.any():
            continue
        if material.emissive:
            emissive |= mask
        p, nrm = points[mask], np.abs(normal[mask])
        # Texture coordinates: the two world axes spanning the surface.
        u = np.where(nrm[:, 0] > 0.5, p[:, 2], p[:, 0])
        v = np.where(nrm[:, 1] > 0.5, p[:, 2], p[:, 1])
        albedo[mask] = material.color * texturer.pattern(material, u, v)[:, None]

    light = scene.light / np.linalg.norm(scene.light)
    diffuse = np.clip(normal @ light, 0, 1)
    if scene.kind == "indoor":  # a ceiling light: falloff with distance
        to_light = scene.light[None, :] - points
        distance = np.linalg.norm(to_light, axis=1) + 1e-3
        diffuse = np.clip(np.einsum("ij,ij->i", normal, to_light) / distance, 0, 1) * (6.0 / (2.0 + distance ** 2))
    shade = scene.ambient + (1 - scene.ambient) * diffuse
    color = albedo * (shade[:, None] * scene.light_color)
    color[emissive] = albedo[emissive]
    sky = ~hit
    if sky.any():  # brighter towards the horizon, with soft clouds
        elevation = np.clip(directions[sky, 1] / np.linalg.norm(directions[sky], axis=1), 0, 1)
        clouds = texturer.fractal(directions[sky, 0] / (directions[sky, 1] + 0.2) * 2,
                                  directions[sky, 2] / (directions[sky, 1] + 0.2) * 2)
        base = scene.sky_color * (1.15 - 0.5 * elevation)[:, None]
        color[sky] = base + np.clip(clouds - 0.55, 0, 1)[:, None] * 1.2

    depth = (best_t * rays_cam[:, 2]).reshape(h, w)  # rays have z = 1 in the camera frame
    depth = np.where(np.isfinite(depth), depth, 0).astype(np.float32)
    if scene.kind == "street":
        depth[depth > STREET_MAX_DEPTH_M] = 0

    exposure = rng.uniform(0.8, 1.25)
    image = np.clip(color.reshape(h, w, 3) * exposure, 0, 1)
    image = image ** (1 / 2.2)  # sRGB-like gamma
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vignette = 1 - rng.uniform(0.1, 0.3) * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2) * 2
    image = cv2.GaussianBlur(image * vignette[..., None], (0, 0), rng.uniform(0.4, 0.9))
    image = image + rng.normal(0, rng.uniform(0.005, 0.025), image.shape)
    rgb = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Frame(rgb, depth, label.reshape(h, w), intrinsics)


def _material(rng, base, texture=None, spread=0.15, scale=None):
    color = np.clip(np.asarray(base) + rng.normal(0, spread, 3), 0.03, 1).astype(np.float32)
    return Material(color, texture or rng.choice(["noise", "stripes", "checker", "plain"]),
                    scale if scale is not None else float(rng.uniform(0.5, 3)), float(rng.uniform(0.1, 0.4)))


WOOD = ([0.55, 0.38, 0.22], [0.40, 0.26, 0.15], [0.70, 0.55, 0.38], [0.30, 0.20, 0.12], [0.80, 0.78, 0.74])
FABRIC = ([0.50, 0.15, 0.12], [0.20, 0.30, 0.55], [0.30, 0.45, 0.30], [0.60, 0.55, 0.45], [0.35, 0.35, 0.38],
          [0.70, 0.60, 0.30], [0.45, 0.30, 0.45])
PAINT = ([0.85, 0.20, 0.15], [0.15, 0.35, 0.75], [0.90, 0.75, 0.15], [0.20, 0.55, 0.30], [0.95, 0.95, 0.92],
         [0.10, 0.10, 0.12], [0.55, 0.25, 0.55])


def _wood(rng, shade=1.0):
    return _material(rng, np.asarray(WOOD[rng.integers(len(WOOD))]) * shade, "stripes", 0.04, float(rng.uniform(2, 4)))


def _fabric(rng):
    return _material(rng, FABRIC[rng.integers(len(FABRIC))], "noise", 0.06, float(rng.uniform(6, 10)))


def _plain(rng, color, spread=0.03):
    return _material(rng, color, "plain", spread)


def _shadowed(material: Material, factor: float) -> Material:
    """The plain, darker inside of a piece of furniture: it shows in the gaps between fronts."""
    return Material(material.color * factor, "plain", 1, 0.05)


def _frame_bars(w, bottom, top, bar, depth, material):
    """Left, right, bottom and top bars of a frame around a wall-hung panel."""
    return [(0, bar, bottom, top, 0, depth, material), (w - bar, w, bottom, top, 0, depth, material),
            (0, w, bottom, bottom + bar, 0, depth, material), (0, w, top - bar, top, 0, depth, material)]


class IndoorSceneBuilder:
    """Furnished rooms in NYUD-40 ids. Furniture is built from parts at standard sizes (a desk has its
    knee space, a dresser its drawers, a bookshelf its books), so that classes differ the way they do
    in real rooms and sizes carry metric scale. Books are labelled with their bookshelf."""

    def __init__(self):
        space = load_label_space("nyud40")
        self.ids = {name: i for i, name in enumerate(space.class_names)}

    def build(self, rng: np.random.Generator) -> Scene:
        ids = self.ids
        width, length, height = rng.uniform(3.5, 7), rng.uniform(4, 8), rng.uniform(2.5, 2.9)
        room = Box(np.array([-width / 2, 0, -1.0]), np.array([width / 2, height, length - 1.0]), ids["wall"], None)
        wall = _material(rng, rng.choice([[0.8, 0.78, 0.72], [0.7, 0.72, 0.75], [0.75, 0.65, 0.55], [0.6, 0.68, 0.6]]),
                         "noise", 0.08, 0.5)
        floor = _material(rng, rng.choice([[0.55, 0.38, 0.22], [0.5, 0.5, 0.48], [0.35, 0.3, 0.28], [0.3, 0.32, 0.4]]),
                          rng.choice(["stripes", "checker", "noise"]), 0.08, rng.uniform(1, 3))
        scene = Scene("indoor", room=room)
        for axis in (0, 2):
            for side in (-1, 1):
                scene.room_face_labels[(axis, side)] = ids["wall"]
                scene.room_face_materials[(axis, side)] = wall
        scene.room_face_labels[(1, -1)] = ids["floor"]
        scene.room_face_materials[(1, -1)] = floor
        scene.room_face_labels[(1, 1)] = ids["ceiling"]
        scene.room_face_materials[(1, 1)] = _plain(rng, [0.9, 0.9, 0.88])
        layout = _RoomLayout(room, rng)

        makers = [("bed", self._bed), ("sofa", self._sofa), ("cabinet", self._cabinet), ("dresser", self._dresser),
                  ("desk", self._desk), ("bookshelf", self._bookshelf), ("door", self._door)]
        for index in rng.permutation(len(makers))[: rng.integers(3, 6)]:
            name, make = makers[index]
            layout.add_to_wall(scene, ids[name], *make(rng))
        for name, make in (("window", self._window), ("picture", self._picture), ("picture", self._picture),
                           ("whiteboard", self._whiteboard)):
            if rng.random() < 0.6:
                layout.add_to_wall(scene, ids[name], *make(rng))
        for _ in range(rng.integers(1, 3)):
            layout.add_table_with_chairs(scene, ids["table"], ids["chair"], self._chair)
        scene.light = np.array([rng.uniform(room.low[0] + 1, room.high[0] - 1), height - 0.05,
                                rng.uniform(1, room.high[2] - 1)])
        scene.light_color = np.clip(np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.75, 1.0)]) * rng.uniform(0.9, 1.2), 0, 1.3)
        scene.ambient = float(rng.uniform(0.3, 0.5))
        return scene

    # Each maker returns (width along the wall, bottom height, top height, parts). A part is
    # (a0, a1, y0, y1, d0, d1, material) with a along the wall, y up and d out from the wall.
    @staticmethod
    def _bed(rng):
        w, length = rng.choice([0.9, 1.4, 1.6, 1.8]) + rng.uniform(0, 0.05), rng.uniform(1.95, 2.1)
        head = rng.uniform(0.85, 1.1)
        return w, 0.0, head, [(0, w, 0, 0.3, 0, length, _wood(rng)),
                              (0.02, w - 0.02, 0.3, 0.52, 0.05, length - 0.02, _plain(rng, [0.9, 0.9, 0.88])),
                              (-0.01, w + 0.01, 0.3, 0.56, 0.6, length + 0.01, _fabric(rng)),
                              (-0.03, w + 0.03, 0, head, 0, 0.06, _wood(rng))]

    @staticmethod
    def _sofa(rng):
        w, d, cloth = rng.uniform(1.6, 2.4), rng.uniform(0.85, 0.95), _fabric(rng)
        return w, 0.0, 0.85, [(0.05, w - 0.05, 0, 0.1, 0.05, d - 0.05, _plain(rng, [0.12, 0.1, 0.08])),
                              (0.18, w - 0.18, 0.1, 0.44, 0.2, d, cloth), (0, w, 0.1, 0.85, 0, 0.22, cloth),
                              (0, 0.18, 0.1, 0.62, 0, d, cloth), (w - 0.18, w, 0.1, 0.62, 0, d, cloth)]

    @staticmethod
    def _cabinet(rng):
        w, h, d = rng.uniform(0.8, 1.2), rng.uniform(1.8, 2.1), rng.uniform(0.55, 0.6)
        body = _wood(rng)
        front = replace(body, color=body.color * 1.1)
        metal = _plain(rng, [0.6, 0.6, 0.62])
        return w, 0.0, h, [(0, w, 0.06, h, 0, d - 0.02, _shadowed(body, 0.5)),
                           (0.02, w - 0.02, 0, 0.06, 0, d - 0.06, _plain(rng, [0.1, 0.1, 0.1])),
                           (0.01, w / 2 - 0.01, 0.08, h - 0.02, d - 0.02, d, front),
                           (w / 2 + 0.01, w - 0.01, 0.08, h - 0.02, d - 0.02, d, front),
                           (w / 2 - 0.07, w / 2 - 0.05, 0.45 * h, 0.6 * h, d, d + 0.025, metal),
                           (w / 2 + 0.05, w / 2 + 0.07, 0.45 * h, 0.6 * h, d, d + 0.025, metal)]

    @staticmethod
    def _dresser(rng):
        w, h, d = rng.uniform(0.9, 1.4), rng.uniform(0.75, 1.0), rng.uniform(0.45, 0.5)
        body = _wood(rng)
        parts = [(0, w, 0.06, h, 0, d - 0.02, _shadowed(body, 0.5)),
                 (-0.02, w + 0.02, h, h + 0.03, 0, d + 0.01, body),
                 (0.02, w - 0.02, 0, 0.06, 0, d - 0.05, _plain(rng, [0.1, 0.1, 0.1]))]
        rows = rng.integers(3, 5)
        edges = np.linspace(0.07, h - 0.01, rows + 1)
        handle = _plain(rng, [0.15, 0.15, 0.15])
        for y0, y1 in zip(edges[:-1], edges[1:]):
            parts.append((0.02, w - 0.02, y0 + 0.012, y1 - 0.012, d - 0.02, d, body))
            middle = (y0 + y1) / 2
            parts.append((w / 2 - 0.08, w / 2 + 0.08, middle - 0.012, middle + 0.012, d, d + 0.025, handle))
        return w, 0.0, h + 0.03, parts

    @staticmethod
    def _desk(rng):
        w, h, d = rng.uniform(1.1, 1.6), rng.uniform(0.72, 0.76), rng.uniform(0.6, 0.75)
        top = _wood(rng) if rng.random() < 0.5 else _plain(rng, [0.85, 0.85, 0.82])
        body = _plain(rng, top.color * 0.8)
        handle = _plain(rng, [0.6, 0.6, 0.62])
        parts = [(0, w, h - 0.03, h, 0, d, top), (0.02, 0.05, 0, h - 0.03, 0.02, d - 0.02, body),
                 (w - 0.45, w - 0.02, 0, h - 0.03, 0.02, d - 0.02, body),
                 (0.05, w - 0.45, 0.3, h - 0.03, 0.0, 0.02, body)]
        for y in (0.15, 0.38, 0.58):
            parts.append((w - 0.3, w - 0.17, y, y + 0.02, d - 0.02, d + 0.005, handle))
        return w, 0.0, h, parts

    @staticmethod
    def _bookshelf(rng):
        w, h, d = rng.uniform(0.8, 1.2), rng.uniform(1.7, 2.1), rng.uniform(0.3, 0.35)
        wood = _wood(rng)
        parts = [(0, 0.02, 0, h, 0, d, wood), (w - 0.02, w, 0, h, 0, d, wood), (0, w, h - 0.02, h, 0, d, wood),
                 (0, w, 0, h, 0, 0.01, _shadowed(wood, 0.6)), (0, w, 0, 0.08, 0, d, wood)]
        shelves = np.arange(0.08, h - 0.25, rng.uniform(0.32, 0.38))
        for y in shelves:
            parts.append((0, w, y, y + 0.02, 0, d, wood))
            a = 0.02 + rng.uniform(0, 0.1)
            while a < w - 0.1:
                thickness = rng.uniform(0.025, 0.07)
                if rng.random() < 0.85:
                    parts.append((a, a + thickness, y + 0.02, y + 0.02 + rng.uniform(0.17, 0.28), 0.01,
                                  rng.uniform(0.17, d - 0.02), _plain(rng, PAINT[rng.integers(len(PAINT))], 0.1)))
                a += thickness + (rng.uniform(0.05, 0.2) if rng.random() < 0.1 else 0.003)
        return w, 0.0, h, parts

    @staticmethod
    def _door(rng):
        w, h = rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.1)
        leaf = _wood(rng) if rng.random() < 0.6 else _plain(rng, [0.9, 0.9, 0.88])
        casing = _plain(rng, [0.92, 0.92, 0.9]) if rng.random() < 0.6 else leaf
        metal = _plain(rng, [0.65, 0.63, 0.55])
        return w + 0.14, 0.0, h + 0.07, [(0.07, w + 0.07, 0, h, 0, 0.04, leaf), (0, 0.07, 0, h + 0.07, 0, 0.02, casing),
                                         (w + 0.07, w + 0.14, 0, h + 0.07, 0, 0.02, casing),
                                         (0.07, w + 0.07, h, h + 0.07, 0, 0.02, casing),
                                         (w - 0.05, w + 0.01, 0.98, 1.01, 0.04, 0.1, metal)]

    @staticmethod
    def _window(rng):
        w, h, bottom = rng.uniform(0.8, 1.6), rng.uniform(1.0, 1.4), rng.uniform(0.8, 1.0)
        frame = _plain(rng, [0.93, 0.93, 0.92])
        glass = Material(np.clip(np.array([0.8, 0.88, 1.0]) * rng.uniform(0.8, 1.1), 0, 1).astype(np.float32),
                         "noise", 1.5, 0.15, emissive=True)  # daylight from outside
        t = 0.06
        return w, bottom - 0.03, bottom + h, [
            (0, w, bottom, bottom + h, 0, 0.01, glass), *_frame_bars(w, bottom, bottom + h, t, 0.05, frame),
            (w / 2 - t / 2, w / 2 + t / 2, bottom, bottom + h, 0, 0.04, frame),
            (-0.05, w + 0.05, bottom - 0.03, bottom, 0, 0.15, frame)]

    @staticmethod
    def _picture(rng):
        w, h = rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.7)
        bottom = rng.uniform(1.45, 1.65) - h / 2
        frame = _plain(rng, rng.choice([[0.1, 0.1, 0.1], [0.65, 0.5, 0.2], [0.4, 0.26, 0.15], [0.9, 0.9, 0.9]]))
        canvas = Material(np.clip(np.asarray(PAINT[rng.integers(len(PAINT))]) * 0.8 + rng.uniform(0, 0.2, 3), 0, 1).astype(np.float32),
                          "noise", float(rng.uniform(3, 6)), float(rng.uniform(0.6, 0.9)))
        return w, bottom, bottom + h, [(0, w, bottom, bottom + h, 0, 0.02, canvas),
                                       *_frame_bars(w, bottom, bottom + h, 0.04, 0.03, frame)]

    @staticmethod
    def _whiteboard(rng):
        w, h, bottom = rng.uniform(1.2, 2.0), rng.uniform(0.9, 1.2), rng.uniform(0.85, 0.95)
        board = _plain(rng, [0.94, 0.95, 0.96], 0.01)
        metal = _plain(rng, [0.7, 0.7, 0.72], 0.02)
        left, right, _, top = _frame_bars(w, bottom, bottom + h, 0.025, 0.025, metal)  # the tray is below
        return w, bottom - 0.04, bottom + h, [(0, w, bottom, bottom + h, 0, 0.015, board), left, right, top,
                                              (0.1 * w, 0.9 * w, bottom - 0.04, bottom, 0, 0.07, metal)]

    @staticmethod
    def _chair(rng, x, z, facing):
        """Seat, legs and back of a chair at (x, z) whose sitter faces `facing` (dx, dz)."""
        wood = _wood(rng) if rng.random() < 0.6 else _plain(rng, PAINT[rng.integers(len(PAINT))], 0.05)
        seat_y, half = rng.uniform(0.44, 0.47), 0.21
        parts = [((x - half, seat_y - 0.04, z - half), (x + half, seat_y, z + half))]
        for dx in (-half, half - 0.03):
            for dz in (-half, half - 0.03):
                parts.append(((x + dx, 0, z + dz), (x + dx + 0.03, seat_y - 0.04, z + dz + 0.03)))
        bx, bz = -facing[0] * (half - 0.02), -facing[1] * (half - 0.02)  # the back is opposite the facing side
        ex, ez = (0.02 if facing[0] else half), (0.02 if facing[1] else half)
        parts.append(((x + bx - ex, seat_y, z + bz - ez), (x + bx + ex, seat_y + rng.uniform(0.4, 0.5), z + bz + ez)))
        return [(np.array(lo), np.array(hi), wood) for lo, hi in parts]

    def camera_pose(self, rng: np.random.Generator, scene: Scene):
        room = scene.room
        position = np.array([rng.uniform(room.low[0] + 0.5, room.high[0] - 0.5) * 0.5, rng.uniform(1.0, 1.5),
                             rng.uniform(-0.8, 0.3)])
        return position, rng.uniform(-0.35, 0.35), rng.uniform(0.0, 0.35), rng.uniform(-0.05, 0.05)


class _RoomLayout:
    """Puts objects against the left, right and far walls and on the floor without overlaps."""

    WALLS = ("left", "right", "far")

    def __init__(self, room: Box, rng: np.random.Generator):
        self.low, self.high, self.rng = room.low, room.high, rng
        self.on_wall = {wall: [] for wall in self.WALLS}   # (a0, a1, y0, y1) rectangles in the wall plane
        self.footprints = []                                # (x0, x1, z0, z1) on the floor

    def _span(self, wall):
        """Usable range along a wall: side walls skip the 2 m beside the camera."""
        if wall == "far":
            return self.low[0], self.high[0]
        return self.low[2] + 2.0, self.high[2]

    def _to_world(self, wall, a0, a1, y0, y1, d0, d1):
        if wall == "left":
            return np.array([self.low[0] + d0, y0, a0]), np.array([self.low[0] + d1, y1, a1])
        if wall == "right":
            return np.array([self.high[0] - d1, y0, a0]), np.array([self.high[0] - d0, y1, a1])
        return np.array([a0, y0, self.high[2] - d1]), np.array([a1, y1, self.high[2] - d0])

    def _free(self, footprint):
        x0, x1, z0, z1 = footprint
        return all(x1 <= f[0] or f[1] <= x0 or z1 <= f[2] or f[3] <= z0 for f in self.footprints)

    def add_to_wall(self, scene, label, width, bottom, top, parts, tries=10):
        stands = bottom == 0.0
        for _ in range(tries):
            wall = self.WALLS[self.rng.integers(3)]
            lo, hi = self._span(wall)
            if hi - lo < width + 0.1:
                continue
            a = self.rng.uniform(lo + 0.05, hi - width - 0.05)
            if any(a + width > r[0] - 0.05 and r[1] + 0.05 > a and top > r[2] and r[3] > bottom for r in self.on_wall[wall]):
                continue
            boxes = [(*self._to_world(wall, a + a0, a + a1, y0, y1, d0, d1), m) for a0, a1, y0, y1, d0, d1, m in parts]
            footprint = None
            if stands:
                low = np.min([b[0] for b in boxes], axis=0)
                high = np.max([b[1] for b in boxes], axis=0)
                footprint = (low[0], high[0], low[2], high[2])
                if not self._free(footprint):
                    continue
                self.footprints.append(footprint)
            self.on_wall[wall].append((a, a + width, bottom, top))
            scene.boxes.extend(Box(lo_, hi_, label, m) for lo_, hi_, m in boxes)
            return

    def add_table_with_chairs(self, scene, table_label, chair_label, make_chair, tries=10):
        rng = self.rng
        w, d, h = rng.uniform(0.8, 1.4), rng.uniform(0.7, 0.9), rng.uniform(0.72, 0.76)
        for _ in range(tries):
            x = rng.uniform(self.low[0] + 0.9 + w / 2, max(self.low[0] + 0.9 + w / 2, self.high[0] - 0.9 - w / 2))
            z = rng.uniform(1.5 + d / 2, max(1.5 + d / 2, self.high[2] - 0.9 - d / 2))
            footprint = (x - w / 2 - 0.5, x + w / 2 + 0.5, z - d / 2 - 0.5, z + d / 2 + 0.5)  # room for the chairs
            if not self._free(footprint):
                continue
            self.footprints.append(footprint)
            top = _wood(rng) if rng.random() < 0.7 else _plain(rng, [0.85, 0.85, 0.82])
            legs = _plain(rng, top.color * 0.7)
            scene.boxes.append(Box(np.array([x - w / 2, h - 0.035, z - d / 2]), np.array([x + w / 2, h, z + d / 2]), table_label, top))
            for dx in (-w / 2 + 0.03, w / 2 - 0.08):
                for dz in (-d / 2 + 0.03, d / 2 - 0.08):
                    scene.boxes.append(Box(np.array([x + dx, 0, z + dz]), np.array([x + dx + 0.05, h - 0.035, z + dz + 0.05]),
                                           table_label, legs))
            sides = [((-w / 2 - 0.3, 0), (1, 0)), ((w / 2 + 0.3, 0), (-1, 0)), ((0, -d / 2 - 0.3), (0, 1)), ((0, d / 2 + 0.3), (0, -1))]
            for index in rng.permutation(4)[: rng.integers(0, 4)]:
                (ox, oz), facing = sides[index]
                for lo, hi, m in make_chair(rng, x + ox, z + oz, facing):
                    scene.boxes.append(Box(lo, hi, chair_label, m))
            return


class StreetSceneBuilder:
    """Roads with sidewalks, buildings, trees and cars, in KITTI-6 ids."""

    def __init__(self):
        space = load_label_space("kitti6")
        self.ids = {name: i for i, name in enumerate(space.class_names)}

    def build(self, rng: np.random.Generator, length: float = 200.0) -> Scene:
        ids = self.ids
        scene = Scene("street", ground_y=0.0, road_half_width=float(rng.uniform(3.5, 6)),
                      sidewalk_width=float(rng.uniform(1.5, 4)))
        scene.ground_materials = {
            "road": (ids["road"], _material(rng, [0.32, 0.32, 0.33], "noise", 0.05, 1.5)),
            "sidewalk": (ids["sidewalk"], _material(rng, [0.55, 0.52, 0.5], "checker", 0.08, 1.5)),
            "verge": (ids["vegetation"], _material(rng, [0.25, 0.4, 0.15], "noise", 0.08, 2)),
        }
        edge = scene.road_half_width + scene.sidewalk_width
        for side in (-1, 1):
            z = -20.0
            while z < length:
                span = rng.uniform(8, 25)
                if rng.random() < 0.75:
                    setback = rng.uniform(0.5, 6)
                    depth, height = rng.uniform(8, 15), rng.uniform(5, 22)
                    x_near = side * (edge + setback)
                    x_far = x_near + side * depth
                    material = _material(rng, rng.choice([[0.7, 0.6, 0.5], [0.6, 0.4, 0.3], [0.75, 0.75, 0.72]]),
                                         rng.choice(["bricks", "noise", "stripes"]), 0.1, rng.uniform(0.5, 1.5))
                    scene.boxes.append(Box(np.array([min(x_near, x_far), 0, z]), np.array([max(x_near, x_far), height, z + span]),
                                           ids["building"], material))
                else:  # trees and hedges in the gap
                    for _ in range(rng.integers(1, 4)):
                        x = side * (edge + rng.uniform(1, 6))
                        zz = z + rng.uniform(0, span)
                        r = rng.uniform(1.5, 3.5)
                        scene.spheres.append(Sphere(np.array([x, rng.uniform(2.5, 5), zz]), r, ids["vegetation"],
                                                    _material(rng, [0.2, 0.38, 0.12], "noise", 0.08, 3)))
                z += span + rng.uniform(0, 4)
            for _ in range(rng.integers(3, 9)):  # trees on the sidewalk edge
                x = side * (scene.road_half_width + scene.sidewalk_width * rng.uniform(0.5, 0.9))
                zz = rng.uniform(0, length)
                scene.boxes.append(Box(np.array([x - 0.15, 0, zz - 0.15]), np.array([x + 0.15, 3, zz + 0.15]), ids["vegetation"],
                                       _material(rng, [0.3, 0.22, 0.15], "stripes", 0.05, 4)))
                scene.spheres.append(Sphere(np.array([x, rng.uniform(3.5, 5), zz]), rng.uniform(1.2, 2.5), ids["vegetation"],
                                            _material(rng, [0.2, 0.36, 0.12], "noise", 0.08, 3)))
        for _ in range(rng.integers(4, 14)):  # parked and driving cars
            lane = rng.choice([-1, 1]) * rng.uniform(scene.road_half_width - 1.2, scene.road_half_width - 1.0) \
                if rng.random() < 0.6 else rng.uniform(-1.5, 1.5) + rng.choice([-1, 1]) * 2.0
            z = rng.uniform(4, length * 0.6)
            lengthwise, width, height = rng.uniform(3.8, 4.8), rng.uniform(1.6, 1.9), rng.uniform(1.3, 1.6)
            body = _material(rng, rng.choice([[0.7, 0.1, 0.1], [0.1, 0.1, 0.12], [0.8, 0.8, 0.82], [0.2, 0.3, 0.6]]), "plain", 0.1)
            scene.boxes.append(Box(np.array([lane - width / 2, 0.25, z]), np.array([lane + width / 2, height * 0.6, z + lengthwise]),
                                   ids["car"], body))
            scene.boxes.append(Box(np.array([lane - width / 2 + 0.1, height * 0.6, z + 0.8]),
                                   np.array([lane + width / 2 - 0.1, height, z + lengthwise - 1.0]),
                                   ids["car"], _material(rng, [0.1, 0.12, 0.15], "plain", 0.05)))
            for wz in (z + 0.7, z + lengthwise - 0.7):  # wheels
                scene.boxes.append(Box(np.array([lane - width / 2, 0, wz - 0.33]), np.array([lane + width / 2, 0.3, wz + 0.33]),
                                       ids["car"], _material(rng, [0.05, 0.05, 0.05], "plain", 0.02)))
        sun_height = rng.uniform(0.3, 1.0)
        scene.light = np.array([rng.uniform(-1, 1), sun_height, rng.uniform(-1, 1)])
        scene.light_color = np.array([1.0, rng.uniform(0.92, 1.0), rng.uniform(0.8, 1.0)]) * rng.uniform(1.0, 1.3)
        scene.ambient = float(rng.uniform(0.35, 0.55))
        scene.sky_color = np.clip(np.array([0.5, 0.65, 0.9]) + rng.normal(0, 0.07, 3), 0.3, 1.0)
        return scene

    def camera_pose(self, rng: np.random.Generator, scene: Scene):
        position = np.array([rng.uniform(-1.5, 1.5), rng.uniform(1.55, 1.75), rng.uniform(-5, 60)])
        return position, rng.uniform(-0.15, 0.15), rng.uniform(-0.03, 0.05), rng.uniform(-0.02, 0.02)


BUILDERS = {"indoor": IndoorSceneBuilder, "street": StreetSceneBuilder}
# Focal length as a fraction of image width: NYUDv2's Kinect (518.8/640), KITTI's camera (721.5/1242).
FOCAL_PER_WIDTH = {"indoor": 0.8106, "street": 0.5809}
LABEL_SPACES = {"indoor": "nyud40", "street": "kitti6"}


def default_intrinsics(kind: str, width: int, height: int) -> Intrinsics:
    f = FOCAL_PER_WIDTH[kind] * width
    return Intrinsics(f, f, width / 2 - 0.5, height / 2 - 0.5, width, height)


def render_frame(kind: str, seed: int, width: int, height: int, intrinsics: Intrinsics | None = None) -> Frame:
    """One frame of a new random scene; the same (kind, seed, size, camera) gives the same frame.
    intrinsics: another camera (default: the dataset's, default_intrinsics)."""
    rng = np.random.default_rng(seed)
    builder = BUILDERS[kind]()
    scene = builder.build(rng)
    intrinsics = intrinsics or default_intrinsics(kind, width, height)
    position, yaw, pitch, roll = builder.camera_pose(rng, scene)
    return render(scene, intrinsics, position, yaw, pitch, roll, rng, Texturer(rng))


def render_sequence(kind: str, seed: int, width: int, height: int, count: int, rate_hz: float = 10.0):
    """A camera moving smoothly through one scene: driving at ~10 m/s, or walking and turning indoors."""
    rng = np.random.default_rng(seed)
    builder = BUILDERS[kind]()
    scene = builder.build(rng)
    texturer = Texturer(rng)
    intrinsics = default_intrinsics(kind, width, height)
    position, yaw, pitch, roll = builder.camera_pose(rng, scene)
    if kind == "street":
        position = np.array([rng.uniform(-1.0, 1.0), 1.65, 0.0])
        yaw, pitch, roll = 0.0, 0.02, 0.0
    for index in range(count):
        time = index / rate_hz
        if kind == "street":
            pose = (position + np.array([0, 0, 10.0 * time]), yaw + 0.03 * np.sin(time), pitch, roll)
        else:
            pose = (position + np.array([0.2 * np.sin(0.5 * time), 0, 0.15 * time]), yaw + 0.25 * np.sin(0.4 * time), pitch, roll)
        yield render(scene, intrinsics, *pose, rng, texturer)
