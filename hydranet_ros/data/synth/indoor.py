"""Indoor rooms with furniture along the walls, labelled with NYUD-40 ids."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from hydranet_ros.data.synth.materials import (PAINT, fabric_material, make_material, plain_material, shadowed_material,
                                               wood_material)
from hydranet_ros.data.synth.scene import Box, Material, Scene
from hydranet_ros.model.model_file import load_label_space


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
        wall = make_material(rng, rng.choice([[0.8, 0.78, 0.72], [0.7, 0.72, 0.75], [0.75, 0.65, 0.55],
                                              [0.6, 0.68, 0.6]]),
                             "noise", 0.08, 0.5)
        floor = make_material(rng, rng.choice([[0.55, 0.38, 0.22], [0.5, 0.5, 0.48], [0.35, 0.3, 0.28],
                                               [0.3, 0.32, 0.4]]),
                              rng.choice(["stripes", "checker", "noise"]), 0.08, rng.uniform(1, 3))
        scene = Scene("indoor", room=room)
        for axis in (0, 2):
            for side in (-1, 1):
                scene.room_face_labels[(axis, side)] = ids["wall"]
                scene.room_face_materials[(axis, side)] = wall
        scene.room_face_labels[(1, -1)] = ids["floor"]
        scene.room_face_materials[(1, -1)] = floor
        scene.room_face_labels[(1, 1)] = ids["ceiling"]
        scene.room_face_materials[(1, 1)] = plain_material(rng, [0.9, 0.9, 0.88])
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
        scene.light_color = np.clip(np.array([1.0, rng.uniform(0.9, 1.0),
                                              rng.uniform(0.75, 1.0)]) * rng.uniform(0.9, 1.2), 0, 1.3)
        scene.ambient = float(rng.uniform(0.3, 0.5))
        return scene

    # Each maker returns (width along the wall, bottom height, top height, parts). A part is
    # (a0, a1, y0, y1, d0, d1, material) with a along the wall, y up and d out from the wall.
    @staticmethod
    def _bed(rng):
        w, length = rng.choice([0.9, 1.4, 1.6, 1.8]) + rng.uniform(0, 0.05), rng.uniform(1.95, 2.1)
        head = rng.uniform(0.85, 1.1)
        return w, 0.0, head, [(0, w, 0, 0.3, 0, length, wood_material(rng)),
                              (0.02, w - 0.02, 0.3, 0.52, 0.05, length - 0.02, plain_material(rng, [0.9, 0.9, 0.88])),
                              (-0.01, w + 0.01, 0.3, 0.56, 0.6, length + 0.01, fabric_material(rng)),
                              (-0.03, w + 0.03, 0, head, 0, 0.06, wood_material(rng))]

    @staticmethod
    def _sofa(rng):
        w, d, cloth = rng.uniform(1.6, 2.4), rng.uniform(0.85, 0.95), fabric_material(rng)
        return w, 0.0, 0.85, [(0.05, w - 0.05, 0, 0.1, 0.05, d - 0.05, plain_material(rng, [0.12, 0.1, 0.08])),
                              (0.18, w - 0.18, 0.1, 0.44, 0.2, d, cloth), (0, w, 0.1, 0.85, 0, 0.22, cloth),
                              (0, 0.18, 0.1, 0.62, 0, d, cloth), (w - 0.18, w, 0.1, 0.62, 0, d, cloth)]

    @staticmethod
    def _cabinet(rng):
        w, h, d = rng.uniform(0.8, 1.2), rng.uniform(1.8, 2.1), rng.uniform(0.55, 0.6)
        body = wood_material(rng)
        front = replace(body, color=body.color * 1.1)
        metal = plain_material(rng, [0.6, 0.6, 0.62])
        return w, 0.0, h, [(0, w, 0.06, h, 0, d - 0.02, shadowed_material(body, 0.5)),
                           (0.02, w - 0.02, 0, 0.06, 0, d - 0.06, plain_material(rng, [0.1, 0.1, 0.1])),
                           (0.01, w / 2 - 0.01, 0.08, h - 0.02, d - 0.02, d, front),
                           (w / 2 + 0.01, w - 0.01, 0.08, h - 0.02, d - 0.02, d, front),
                           (w / 2 - 0.07, w / 2 - 0.05, 0.45 * h, 0.6 * h, d, d + 0.025, metal),
                           (w / 2 + 0.05, w / 2 + 0.07, 0.45 * h, 0.6 * h, d, d + 0.025, metal)]

    @staticmethod
    def _dresser(rng):
        w, h, d = rng.uniform(0.9, 1.4), rng.uniform(0.75, 1.0), rng.uniform(0.45, 0.5)
        body = wood_material(rng)
        parts = [(0, w, 0.06, h, 0, d - 0.02, shadowed_material(body, 0.5)),
                 (-0.02, w + 0.02, h, h + 0.03, 0, d + 0.01, body),
                 (0.02, w - 0.02, 0, 0.06, 0, d - 0.05, plain_material(rng, [0.1, 0.1, 0.1]))]
        rows = rng.integers(3, 5)
        edges = np.linspace(0.07, h - 0.01, rows + 1)
        handle = plain_material(rng, [0.15, 0.15, 0.15])
        for y0, y1 in zip(edges[:-1], edges[1:]):
            parts.append((0.02, w - 0.02, y0 + 0.012, y1 - 0.012, d - 0.02, d, body))
            middle = (y0 + y1) / 2
            parts.append((w / 2 - 0.08, w / 2 + 0.08, middle - 0.012, middle + 0.012, d, d + 0.025, handle))
        return w, 0.0, h + 0.03, parts

    @staticmethod
    def _desk(rng):
        w, h, d = rng.uniform(1.1, 1.6), rng.uniform(0.72, 0.76), rng.uniform(0.6, 0.75)
        top = wood_material(rng) if rng.random() < 0.5 else plain_material(rng, [0.85, 0.85, 0.82])
        body = plain_material(rng, top.color * 0.8)
        handle = plain_material(rng, [0.6, 0.6, 0.62])
        parts = [(0, w, h - 0.03, h, 0, d, top), (0.02, 0.05, 0, h - 0.03, 0.02, d - 0.02, body),
                 (w - 0.45, w - 0.02, 0, h - 0.03, 0.02, d - 0.02, body),
                 (0.05, w - 0.45, 0.3, h - 0.03, 0.0, 0.02, body)]
        for y in (0.15, 0.38, 0.58):
            parts.append((w - 0.3, w - 0.17, y, y + 0.02, d - 0.02, d + 0.005, handle))
        return w, 0.0, h, parts

    @staticmethod
    def _bookshelf(rng):
        w, h, d = rng.uniform(0.8, 1.2), rng.uniform(1.7, 2.1), rng.uniform(0.3, 0.35)
        wood = wood_material(rng)
        parts = [(0, 0.02, 0, h, 0, d, wood), (w - 0.02, w, 0, h, 0, d, wood), (0, w, h - 0.02, h, 0, d, wood),
                 (0, w, 0, h, 0, 0.01, shadowed_material(wood, 0.6)), (0, w, 0, 0.08, 0, d, wood)]
        shelves = np.arange(0.08, h - 0.25, rng.uniform(0.32, 0.38))
        for y in shelves:
            parts.append((0, w, y, y + 0.02, 0, d, wood))
            a = 0.02 + rng.uniform(0, 0.1)
            while a < w - 0.1:
                thickness = rng.uniform(0.025, 0.07)
                if rng.random() < 0.85:
                    parts.append((a, a + thickness, y + 0.02, y + 0.02 + rng.uniform(0.17, 0.28), 0.01,
                                  rng.uniform(0.17, d - 0.02), plain_material(rng, PAINT[rng.integers(len(PAINT))],
                                                                              0.1)))
                a += thickness + (rng.uniform(0.05, 0.2) if rng.random() < 0.1 else 0.003)
        return w, 0.0, h, parts

    @staticmethod
    def _door(rng):
        w, h = rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.1)
        leaf = wood_material(rng) if rng.random() < 0.6 else plain_material(rng, [0.9, 0.9, 0.88])
        casing = plain_material(rng, [0.92, 0.92, 0.9]) if rng.random() < 0.6 else leaf
        metal = plain_material(rng, [0.65, 0.63, 0.55])
        return w + 0.14, 0.0, h + 0.07, [(0.07, w + 0.07, 0, h, 0, 0.04, leaf), (0, 0.07, 0, h + 0.07, 0, 0.02, casing),
                                         (w + 0.07, w + 0.14, 0, h + 0.07, 0, 0.02, casing),
                                         (0.07, w + 0.07, h, h + 0.07, 0, 0.02, casing),
                                         (w - 0.05, w + 0.01, 0.98, 1.01, 0.04, 0.1, metal)]

    @staticmethod
    def _window(rng):
        w, h, bottom = rng.uniform(0.8, 1.6), rng.uniform(1.0, 1.4), rng.uniform(0.8, 1.0)
        frame = plain_material(rng, [0.93, 0.93, 0.92])
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
        frame = plain_material(rng, rng.choice([[0.1, 0.1, 0.1], [0.65, 0.5, 0.2], [0.4, 0.26, 0.15], [0.9, 0.9, 0.9]]))
        canvas = Material(np.clip(np.asarray(PAINT[rng.integers(len(PAINT))]) * 0.8 + rng.uniform(0, 0.2, 3), 0,
                                  1).astype(np.float32),
                          "noise", float(rng.uniform(3, 6)), float(rng.uniform(0.6, 0.9)))
        return w, bottom, bottom + h, [(0, w, bottom, bottom + h, 0, 0.02, canvas),
                                       *_frame_bars(w, bottom, bottom + h, 0.04, 0.03, frame)]

    @staticmethod
    def _whiteboard(rng):
        w, h, bottom = rng.uniform(1.2, 2.0), rng.uniform(0.9, 1.2), rng.uniform(0.85, 0.95)
        board = plain_material(rng, [0.94, 0.95, 0.96], 0.01)
        metal = plain_material(rng, [0.7, 0.7, 0.72], 0.02)
        left, right, _, top = _frame_bars(w, bottom, bottom + h, 0.025, 0.025, metal)  # the tray is below
        return w, bottom - 0.04, bottom + h, [(0, w, bottom, bottom + h, 0, 0.015, board), left, right, top,
                                              (0.1 * w, 0.9 * w, bottom - 0.04, bottom, 0, 0.07, metal)]

    @staticmethod
    def _chair(rng, x, z, facing):
        """Seat, legs and back of a chair at (x, z) whose sitter faces `facing` (dx, dz)."""
        wood = wood_material(rng) if rng.random() < 0.6 else plain_material(rng, PAINT[rng.integers(len(PAINT))], 0.05)
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
            if any(a + width > r[0] - 0.05 and r[1] + 0.05 > a and top > r[2] and r[3] > bottom
                   for r in self.on_wall[wall]):
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
            top = wood_material(rng) if rng.random() < 0.7 else plain_material(rng, [0.85, 0.85, 0.82])
            legs = plain_material(rng, top.color * 0.7)
            scene.boxes.append(Box(np.array([x - w / 2, h - 0.035, z - d / 2]), np.array([x + w / 2, h, z + d / 2]),
                                   table_label, top))
            for dx in (-w / 2 + 0.03, w / 2 - 0.08):
                for dz in (-d / 2 + 0.03, d / 2 - 0.08):
                    scene.boxes.append(Box(np.array([x + dx, 0, z + dz]),
                                           np.array([x + dx + 0.05, h - 0.035, z + dz + 0.05]),
                                           table_label, legs))
            sides = [((-w / 2 - 0.3, 0), (1, 0)), ((w / 2 + 0.3, 0), (-1, 0)), ((0, -d / 2 - 0.3), (0, 1)),
                     ((0, d / 2 + 0.3), (0, -1))]
            for index in rng.permutation(4)[: rng.integers(0, 4)]:
                (ox, oz), facing = sides[index]
                for lo, hi, m in make_chair(rng, x + ox, z + oz, facing):
                    scene.boxes.append(Box(lo, hi, chair_label, m))
            return
