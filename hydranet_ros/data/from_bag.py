"""hydranet dataset from-bag: a robot's recordings -> a dataset folder for its own camera.

For each image of the camera topic (every N-th, at most M):
  image        decoded as the node decodes it (raw in any encoding the node takes, or compressed) and
               rectified with the bag's CameraInfo through camera/calibration.py
  intrinsics   the rectified camera's, per frame (a camera_info that changes mid-bag is followed)
  depth        from the LiDAR scan nearest in stamp within a tolerance: its points moved into the
               camera's optical frame through the bag's /tf_static and /tf (camera/transforms.py), then
               projected with a z-buffer (the nearest return per pixel; hidden and behind-camera points
               dropped). A frame without a scan near it has no depth label (the losses skip it).
  segmentation from a teacher (an ONNX/TFLite Cityscapes model or one of our model files) on the
               rectified image, pixels it is unsure of set to ignore
A bag is read twice: first the small messages (camera_info, /tf, /tf_static, every message's stamp),
so that pairing does not depend on the order messages were recorded in, then the images and scans.
Header stamps that jump (a clock reset, a replayed simulation) split the recording into segments
paired separately. The later part of each recording (by receive time) is validation: frames close in
time are not independent. Output: OUT/train and OUT/val, two dataset folders, and OUT/from_bag.yaml.
"""
from __future__ import annotations

import bisect
import os
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from hydranet_ros.cache import file_sha256
from hydranet_ros.camera.calibration import CameraCalibration, Rectifier
from hydranet_ros.camera.intrinsics import CalibrationError, points_to_depth
from hydranet_ros.camera.transforms import TransformBuffer, TransformError, TransformTimeError
from hydranet_ros.data.bags import (CAMERA_INFO_TYPE, IMAGE_TYPES, POINTCLOUD_TYPE, TF_TOPICS, TF_TYPE, bag_topics,
                                    describe_topics, deserialize, message_header, open_bag, require_topic)
from hydranet_ros.data.dataset import Sample, write_sample, writing_dataset
from hydranet_ros.data.kitti import KITTI_DEPTH_SCALE
from hydranet_ros.errors import CommandError
from hydranet_ros.ros.conversions import (ImageFormatError, PointCloudFormatError, camera_info_to_calibration,
                                          input_image_to_array, pointcloud2_xyz, stamp_ns, to_rgb)

DEPTH_SCALE = KITTI_DEPTH_SCALE  # uint16 / 256 = metres, up to 256 m
VAL_FRACTION = 0.2   # without --split-at: the last fifth of each recording's time is validation
CLOCK_JUMP_S = 1.0   # header stamps that go back, or forward by more than this and 10 frame periods
TEACHER_MAP = "cityscapes19.yaml"  # the teachers in ../shared, like most street teachers, are Cityscapes'
MAX_NOTES = 10
RUN_LOCK = ".from_bag.lock"  # OUT is being written by a run


@dataclass(frozen=True)
class FromBagOptions:
    image_topic: str
    camera_info_topic: str | None = None  # default: camera_info beside the image topic
    lidar_topic: str | None = None
    label_space: str = "kitti6"
    teacher: Path | None = None
    class_map: Path | None = None
    min_confidence: float = 0.5
    every: int = 1
    max_frames: int | None = None
    split_at_s: float | None = None
    lidar_tolerance_s: float = 0.05
    camera_info_tolerance_s: float = 0.01

    def info_topic(self) -> str:
        if self.camera_info_topic:
            return self.camera_info_topic
        parent = self.image_topic.rstrip("/").removesuffix("/compressed").rsplit("/", 1)[0]
        return f"{parent}/camera_info"


@dataclass
class BagReport:
    """What one bag gave; from_bag.yaml lists one per bag."""

    bag: str
    images: int = 0
    train: int = 0
    val: int = 0
    with_depth: int = 0
    unreadable_images: int = 0
    without_camera_info: int = 0
    without_transform: int = 0
    clock_jumps: int = 0
    calibrations: int = 0
    split_at_s: float = 0.0
    duration_s: float = 0.0
    lidar_points_per_frame: float = 0.0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)


def create_bag_teacher(options: FromBagOptions):
    if options.teacher is None:
        return None
    from hydranet_ros.training.distill import create_teacher
    return create_teacher(Path(options.teacher), "segmentation", options.label_space, options.class_map,
                          options.min_confidence, default_map=TEACHER_MAP)


def check_bag(source: Path, options: FromBagOptions) -> None:
    """One line naming the topic if the bag lacks a topic it needs or has it with another type."""
    reader = open_bag(source)
    try:
        topics = bag_topics(reader)
        require_topic(topics, source, options.image_topic, IMAGE_TYPES, "image")
        if options.info_topic() not in topics:
            raise CommandError(f"{source}: the images on {options.image_topic} have no camera_info: no topic "
                               f"{options.info_topic()} (name it with --camera-info-topic); its topics: "
                               f"{describe_topics(topics)}")
        require_topic(topics, source, options.info_topic(), (CAMERA_INFO_TYPE,), "CameraInfo")
        if options.lidar_topic:
            require_topic(topics, source, options.lidar_topic, (POINTCLOUD_TYPE,), "LiDAR (PointCloud2)")
    finally:
        reader.close()


def _nearest(stamps: list[int], stamp: int, tolerance_ns: int) -> int | None:
    """Position of the stamp nearest `stamp` in a sorted list, if within the tolerance."""
    index = bisect.bisect_left(stamps, stamp)
    best = min((i for i in (index - 1, index) if 0 <= i < len(stamps)), key=lambda i: abs(stamps[i] - stamp),
               default=None)
    return best if best is not None and abs(stamps[best] - stamp) <= tolerance_ns else None


def _segment_starts(images: list[tuple[int, int]]) -> list[int]:
    """Receive times where the image stamps jump: [(receive ns, stamp ns)] in receive order."""
    steps = np.diff([stamp for _, stamp in images])
    typical = float(np.median(steps[steps > 0])) if np.any(steps > 0) else 0.0
    limit = max(CLOCK_JUMP_S * 1e9, 10 * typical)
    return [images[i + 1][0] for i, step in enumerate(steps) if step <= 0 or step > limit]


class Segment:
    """What pairs the frames of one stretch of continuous stamps: camera_infos, transforms, scan stamps."""

    def __init__(self, static_transforms: list):
        self.infos: list[tuple[int, CameraCalibration]] = []
        self.transforms = TransformBuffer()
        for transform in static_transforms:
            self.transforms.add(*transform, static=True)
        self.scan_stamps: list[int] = []
        self._info_stamps: list[int] = []
        self._only_calibration: CameraCalibration | None = None

    def sort(self) -> None:
        """Called once everything is added: the camera_infos and scans in stamp order."""
        self.infos.sort(key=lambda item: item[0])
        self.scan_stamps.sort()
        self._info_stamps = [stamp for stamp, _ in self.infos]
        calibrations = {calibration for _, calibration in self.infos}
        self._only_calibration = calibrations.pop() if len(calibrations) == 1 else None

    def calibration(self, stamp: int, tolerance_ns: int) -> CameraCalibration | None:
        """The camera_info within the tolerance, else the one calibration the segment holds, if one."""
        near = _nearest(self._info_stamps, stamp, tolerance_ns)
        return self.infos[near][1] if near is not None else self._only_calibration


@dataclass
class PlannedFrame:
    position: int          # among the bag's images, in receive order
    stamp: int
    segment: Segment
    calibration: CameraCalibration | None
    scan_stamp: int | None
    split: str


def _transform_entries(msg) -> list:
    return [(t.header.frame_id, t.child_frame_id, stamp_ns(t.header),
             (t.transform.translation.x, t.transform.translation.y, t.transform.translation.z),
             (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w))
            for t in msg.transforms]


def plan_bag(reader, source: Path, options: FromBagOptions, report: BagReport) -> list[PlannedFrame]:
    """Pass 1: which images become frames, each with its calibration, scan and split."""
    info_topic = options.info_topic()
    wanted = {options.image_topic, info_topic, *TF_TOPICS} | ({options.lidar_topic} if options.lidar_topic else set())
    connections = [c for c in reader.connections if c.topic in wanted and
                   (c.topic not in TF_TOPICS or c.msgtype == TF_TYPE)]
    images, infos, transforms, scans = [], [], [], []
    frame_ids = {}  # topic -> the frame_id of its first message
    for connection, receive_ns, raw in reader.messages(connections=connections):
        if connection.topic in (options.image_topic, options.lidar_topic):  # only their stamps, not their data
            stamp, frame_id = message_header(connection, receive_ns, raw)
            frame_ids.setdefault(connection.topic, frame_id)
            (images if connection.topic == options.image_topic else scans).append((receive_ns, stamp))
            continue
        msg = deserialize(reader, connection, receive_ns, raw)
        if connection.topic == info_topic:
            try:
                infos.append((receive_ns, stamp_ns(msg.header), camera_info_to_calibration(msg)))
            except CalibrationError as error:
                report.note(f"camera_info at {stamp_ns(msg.header) / 1e9:.3f} s skipped: {error}")
        else:
            transforms.extend((receive_ns, connection.topic == "/tf_static", entry)
                              for entry in _transform_entries(msg))
    if not images:
        return []
    if options.lidar_topic and scans and len({stamp for _, stamp in images}) == 1 < len(images):
        raise CommandError(f"{source}: every image on {options.image_topic} carries the header stamp "
                           f"{images[0][1] / 1e9:.3f} s (a driver that does not stamp?): images cannot be paired "
                           "with LiDAR scans")
    starts = _segment_starts(images)
    report.clock_jumps = len(starts)
    try:
        segments = [Segment([entry for _, static, entry in transforms if static]) for _ in range(len(starts) + 1)]
    except TransformError as error:
        raise CommandError(f"{source}: /tf_static: {error}") from None

    def segment_of(receive_ns: int) -> Segment:
        return segments[bisect.bisect_right(starts, receive_ns)]

    for receive_ns, stamp, calibration in infos:
        segment_of(receive_ns).infos.append((stamp, calibration))
    for receive_ns, static, entry in transforms:
        if not static:
            try:
                segment_of(receive_ns).transforms.add(*entry)
            except TransformError as error:
                raise CommandError(f"{source}: /tf at {entry[2] / 1e9:.3f} s: {error}") from None
    for receive_ns, stamp in scans:
        segment_of(receive_ns).scan_stamps.append(stamp)
    for segment in segments:
        segment.sort()
    if scans:  # a missing transform stops the run before any frame is written
        try:
            check_transform(segments[0], source, frame_ids[options.lidar_topic], frame_ids[options.image_topic],
                            scans[0][1])
        except TransformTimeError:  # joined, but not yet at the first scan: those frames go without depth
            pass
    report.calibrations = len({c for _, _, c in infos})
    first, last = images[0][0], images[-1][0]
    report.duration_s = (last - first) / 1e9
    report.split_at_s = options.split_at_s if options.split_at_s is not None else \
        round((1 - VAL_FRACTION) * report.duration_s, 3)
    chosen = list(range(0, len(images), max(1, options.every)))
    if options.max_frames and len(chosen) > options.max_frames:  # spread over the whole recording
        chosen = [chosen[i] for i in np.linspace(0, len(chosen) - 1, options.max_frames).round().astype(int)]
    planned = []
    for position in chosen:
        receive_ns, stamp = images[position]
        segment = segment_of(receive_ns)
        calibration = segment.calibration(stamp, int(options.camera_info_tolerance_s * 1e9))
        scan = _nearest(segment.scan_stamps, stamp, int(options.lidar_tolerance_s * 1e9)) \
            if options.lidar_topic else None
        later = report.duration_s > 0 and (receive_ns - first) / 1e9 >= report.split_at_s
        split = "val" if later else "train"
        planned.append(PlannedFrame(position, stamp, segment, calibration,
                                    segment.scan_stamps[scan] if scan is not None else None, split))
    return planned


def check_transform(segment: Segment, source: Path, lidar_frame: str, camera_frame: str, stamp: int) -> np.ndarray:
    """camera <- LiDAR at `stamp`; one line naming the frames if the bag's transforms do not join them."""
    try:
        return segment.transforms.lookup(camera_frame, lidar_frame, stamp)
    except TransformTimeError:
        raise
    except TransformError as error:
        raise CommandError(f"{source}: the LiDAR's frame {lidar_frame} has no transform to the camera's "
                           f"{camera_frame or '(empty frame_id)'} ({error})") from None


class FrameLabeller:
    """One planned frame's image message (and its scan's points) -> a Sample."""

    def __init__(self, teacher, report: BagReport, source: Path):
        self.teacher = teacher
        self.report = report
        self.source = source
        self.rectifier = Rectifier()

    def sample(self, name: str, frame: PlannedFrame, image_msg, scan) -> Sample | None:
        try:
            array, encoding = input_image_to_array(image_msg)
        except ImageFormatError as error:
            self.report.unreadable_images += 1
            self.report.note(f"image at {frame.stamp / 1e9:.3f} s unreadable: {error}")
            return None
        rgb = np.ascontiguousarray(to_rgb(array, encoding))
        calibration = frame.calibration
        try:
            calibration.check_image(rgb.shape[1], rgb.shape[0])
            if calibration.needs_rectification("auto"):
                rgb = self.rectifier(rgb, calibration)
        except CalibrationError as error:
            raise CommandError(f"{self.source}: the camera_info does not fit the image at "
                               f"{frame.stamp / 1e9:.3f} s ({error})") from None
        intrinsics = calibration.pinhole()
        sample = Sample(name, rgb, intrinsics=intrinsics)
        if scan is not None:
            frame_id, points = scan
            camera_frame = image_msg.header.frame_id
            try:
                camera_from_lidar = check_transform(frame.segment, self.source, frame_id, camera_frame,
                                                    frame.scan_stamp)
            except TransformTimeError:  # e.g. a moving transform that starts after the first scan
                self.report.without_transform += 1
            else:
                in_camera = points @ camera_from_lidar[:3, :3].T + camera_from_lidar[:3, 3]
                rectified = in_camera @ np.asarray(calibration.r).reshape(3, 3).T  # into the rectified frame
                sample.depth = points_to_depth(rectified, intrinsics, calibration.projection_column())
                self.report.with_depth += 1
        if self.teacher is not None:
            labels = self.teacher(rgb, intrinsics)
            if labels.shape != rgb.shape[:2]:
                labels = cv2.resize(labels, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST)
            sample.segmentation = labels
        return sample


def bag_name(index: int, source: Path) -> str:
    stem = source.name.removesuffix(".mcap").removesuffix(".db3")
    return f"{index:02d}_{stem}"


def write_bag_frames(index: int, source: Path, out: Path, options: FromBagOptions, progress: bool = False) -> dict:
    """Reads one bag and writes its frames into OUT/train and OUT/val; returns its BagReport as a dict.
    Runs in a worker process or a Ray task as well: everything it needs is in its arguments (it builds
    its own teacher: an ONNX Runtime session does not travel between processes)."""
    return write_bag_frames_with(create_bag_teacher(options), index, source, out, options, progress)


def write_bag_frames_with(teacher, index: int, source: Path, out: Path, options: FromBagOptions,
                          progress: bool = False) -> dict:
    """write_bag_frames with a teacher already built (or None)."""
    from tqdm import tqdm
    report = BagReport(str(source))
    roots = {split: out / split for split in ("train", "val")}
    reader = open_bag(source)
    with ExitStack() as stack:
        stack.callback(reader.close)
        planned = plan_bag(reader, source, options, report)
        report.without_camera_info = sum(frame.calibration is None for frame in planned)
        planned = [frame for frame in planned if frame.calibration is not None]
        by_position = {frame.position: frame for frame in planned}
        waiting: dict[int, list] = {}   # scan stamp -> image messages whose scan has not come yet
        wanted_scans: dict[int, int] = {}  # scan stamp -> frames still to use it
        for frame in planned:
            if frame.scan_stamp is not None:
                wanted_scans[frame.scan_stamp] = wanted_scans.get(frame.scan_stamp, 0) + 1
        scans: dict[int, tuple[str, np.ndarray]] = {}
        labeller = FrameLabeller(teacher, report, source)
        connections = [c for c in reader.connections if c.topic in (options.image_topic, options.lidar_topic)]
        bar = stack.enter_context(tqdm(total=len(planned), desc=f"from-bag {source.name}", unit="frame",
                                       disable=not progress))  # closed before an error is printed
        points_seen = []
        prefix = bag_name(index, source)

        def finish(frame: PlannedFrame, msg) -> None:
            scan = scans.get(frame.scan_stamp) if frame.scan_stamp is not None else None
            sample = labeller.sample(f"{prefix}_{frame.position:06d}", frame, msg, scan)
            if frame.scan_stamp is not None:
                wanted_scans[frame.scan_stamp] -= 1
                if wanted_scans[frame.scan_stamp] == 0:
                    scans.pop(frame.scan_stamp, None)
            if sample is not None:
                write_sample(roots[frame.split], sample, DEPTH_SCALE)
                setattr(report, frame.split, getattr(report, frame.split) + 1)
            bar.update(1)

        position = -1
        for connection, receive_ns, raw in reader.messages(connections=connections):
            if connection.topic == options.image_topic:
                position += 1
                frame = by_position.get(position)
                if frame is None:
                    continue
                msg = deserialize(reader, connection, receive_ns, raw)
                if frame.scan_stamp is None or frame.scan_stamp in scans:
                    finish(frame, msg)
                else:
                    waiting.setdefault(frame.scan_stamp, []).append((frame, msg))
            else:
                stamp, _ = message_header(connection, receive_ns, raw)  # a scan no frame wants is not deserialized
                if wanted_scans.get(stamp, 0) <= 0 or stamp in scans:
                    continue
                msg = deserialize(reader, connection, receive_ns, raw)
                try:
                    points = pointcloud2_xyz(msg)
                except PointCloudFormatError as error:
                    raise CommandError(f"{source}: {options.lidar_topic} at {stamp / 1e9:.3f} s: {error}") from None
                scans[stamp] = (msg.header.frame_id, points)
                points_seen.append(len(points))
                for frame, image_msg in waiting.pop(stamp, []):
                    finish(frame, image_msg)
        for frame, image_msg in [item for items in waiting.values() for item in items]:
            frame.scan_stamp = None  # its scan never came: no depth label
            finish(frame, image_msg)
        report.images = position + 1
        report.lidar_points_per_frame = float(np.mean(points_seen)) if points_seen else 0.0
    return asdict(report)


def dataset_from_bags(bags: list[Path], out: Path, options: FromBagOptions, workers: int = 1,
                      ray_address: str | None = None, progress: bool = True) -> dict:
    """Every bag's frames into OUT/train and OUT/val; returns the summary written to OUT/from_bag.yaml."""
    for source in bags:  # every bag is checked before any work starts
        check_bag(source, options)
    teacher = create_bag_teacher(options)  # a teacher that cannot be used fails before any bag is read
    with claimed_output(out), ExitStack() as splits:
        for split in ("train", "val"):
            splits.enter_context(writing_dataset(out / split, options.label_space, DEPTH_SCALE))
        return _write_bags(bags, out, options, teacher, workers, ray_address, progress)


def claimed_output(out: Path):
    """OUT for this run alone: created here, or empty and claimed with a lock file that a second run
    cannot create (two runs into one folder would mix their cameras)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = os.open(out / RUN_LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        raise CommandError(f"another `dataset from-bag` is writing to {out}; choose a new output folder") from None
    except OSError as error:
        raise CommandError(f"cannot write to {out} ({error.strerror})") from None
    os.close(lock)
    if any(p.name != RUN_LOCK for p in out.iterdir()):
        (out / RUN_LOCK).unlink()
        raise CommandError(f"{out} exists and is not empty; choose a new output folder")
    return _released(out / RUN_LOCK)


@contextmanager
def _released(lock: Path):
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _write_bags(bags, out, options, teacher, workers, ray_address, progress) -> dict:
    jobs = [(index, source, out, options) for index, source in enumerate(bags)]
    if ray_address:
        from hydranet_ros.data.parallel import run_on_ray
        reports = run_on_ray(write_bag_frames, jobs, ray_address, workers)
    elif workers > 1 and len(bags) > 1:
        from hydranet_ros.data.parallel import run_in_processes
        reports = run_in_processes(write_bag_frames, jobs, workers, progress)
    else:
        reports = [write_bag_frames_with(teacher, *job, progress=progress) for job in jobs]
    summary = {"options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
               "camera_info_topic": options.info_topic(), "bags": reports,
               "train": sum(r["train"] for r in reports), "val": sum(r["val"] for r in reports)}
    if options.teacher:
        summary["teacher_sha256"] = file_sha256(Path(options.teacher))
    (out / "from_bag.yaml").write_text(yaml.safe_dump(summary, sort_keys=False))
    return summary  # the splits are marked complete after this, last
