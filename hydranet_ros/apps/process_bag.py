"""hydranet process-bag IN OUT --image-topic T: add HydraNet's outputs to a recorded rosbag2.

Reads SQLite3 or MCAP bags with rosbags (no ROS install needed) and writes a new bag holding
every original message plus, for each image, the outputs the node publishes with its default
parameters but the overlay (ros/output_topics.py) under <prefix>, stamped
with the image's header and written at its receive time. The model runs in a worker thread
while the main thread reads, decodes and writes, so it runs as fast as the backend allows.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from hydranet_ros.inference.pipeline import guess_intrinsics
from hydranet_ros.data.bags import (CAMERA_INFO_TYPE, IMAGE_TYPES, bag_topics, check_bag_path, deserialize, open_bag,
                                    require_topic)
from hydranet_ros.errors import CommandError
from hydranet_ros.camera.intrinsics import CalibrationError
from hydranet_ros.camera.pairing import CameraInfoBuffer
from hydranet_ros.ros.output_topics import DEFAULT_TOPICS, message_types
from hydranet_ros.ros.outputs import cloud_output_request, frame_messages
from hydranet_ros.ros.conversions import (CLOUD_FIELDS, ImageFormatError, camera_info_to_calibration, image_fields,
                                          input_image_to_array, pointcloud2_fields, stamp_ns)
from hydranet_ros.ros.parameters import BY_NAME as NODE_PARAMETERS

CAMERA_INFO_TOLERANCE_S = NODE_PARAMETERS["camera_info_tolerance"].default  # as the node pairs them
# What the node publishes with its default parameters, but the overlay: the bag keeps the camera image.
OUTPUT_TYPES = message_types(name for name in DEFAULT_TOPICS if name != "segmentation/overlay")


class BagMessages:
    """frame_messages' factory for rosbags messages stamped with one input header."""

    def __init__(self, typestore, header):
        self.typestore = typestore
        self.types = typestore.types
        self.header = header

    def image(self, array, encoding):
        return self.types["sensor_msgs/msg/Image"](header=self.header, **image_fields(array, encoding))

    def camera_info(self, fields):
        import numpy as np
        roi = self.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                             do_rectify=False)
        return self.types[CAMERA_INFO_TYPE](
            header=self.header, height=fields["height"], width=fields["width"],
            distortion_model=fields["distortion_model"], d=np.asarray(fields["d"], np.float64),
            k=np.asarray(fields["k"], np.float64), r=np.asarray(fields["r"], np.float64),
            p=np.asarray(fields["p"], np.float64), binning_x=0, binning_y=0, roi=roi)

    def cloud(self, cloud):
        point_field = self.types["sensor_msgs/msg/PointField"]
        fields = [point_field(name=n, offset=o, datatype=t, count=1) for n, o, t in CLOUD_FIELDS]
        return self.types["sensor_msgs/msg/PointCloud2"](header=self.header, fields=fields, **pointcloud2_fields(cloud))


def camera_names(image_topics: list[str]) -> list[str]:
    """Each camera's name for its outputs (<prefix>/<name>/...): "" for one camera, else the namespace
    segment of its image topic (/front/image_raw -> front), as a node's cameras parameter names them."""
    if len(image_topics) == 1:
        return [""]
    names = [topic.strip("/").split("/")[-2] if topic.strip("/").count("/") else "" for topic in image_topics]
    if "" in names or len(set(names)) != len(names):
        raise CommandError(f"the image topics {image_topics} do not name their cameras apart: each needs its own "
                           "namespace (/front/image_raw, /rear/image_raw), which names its outputs")
    return names


def process_bag(source: Path, destination: Path, image_topic: str | list[str], camera_info_topic, perception,
                prefix: str = "/hydranet", storage: str = "mcap", cloud_parameters: dict | None = None,
                progress: bool = True) -> dict:
    """image_topic: one topic, or several (cameras, each paired with the camera_info_topic at its place
    in that list; outputs under <prefix>/<camera>/, camera_names). cloud_parameters: the node's cloud
    parameters (points_stride, points_max_depth, ...); those not
    given take the node's defaults, so the clouds are the node's for the same parameters. Returns counts:
    images processed, images skipped as unreadable, messages copied, and whether Ctrl-C interrupted it
    (the bag is then closed properly and holds the frames processed so far)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    check_paths(source, destination)
    image_topics = [image_topic] if isinstance(image_topic, str) else list(image_topic)
    info_topics = camera_info_topic if isinstance(camera_info_topic, (list, tuple)) else \
        [camera_info_topic] * len(image_topics)
    if len(info_topics) != len(image_topics):
        raise CommandError(f"{len(image_topics)} image topics and {len(info_topics)} camera_info topics: give one "
                           "camera_info topic per image topic, in the same order, or none")
    names = camera_names(image_topics)
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    cloud_parameters = cloud_parameters or {}
    cloud_output_request(cloud_parameters, perception.spec.label_space, frozenset())  # unknown classes: at once
    counts = {"images": 0, "unreadable_images": 0, "copied": 0, "interrupted": False}
    reader = open_bag(source, typestore)
    try:
        for image, info in zip(image_topics, info_topics):
            check_topics(reader, source, image, info)
        total = sum(c.msgcount for c in reader.connections if c.topic in image_topics)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        with Writer(destination, version=9, storage_plugin=plugin) as writer:
            copies = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=reader.typestore,
                                                  msgdef=c.msgdef.data if c.msgdef else None,
                                                  rihs01=getattr(c.msgdef, "rihs01", None))
                      for c in reader.connections}
            outputs = {(camera, name): writer.add_connection(
                "/".join(part for part in (prefix.rstrip("/"), camera, name) if part), msgtype, typestore=typestore)
                for camera in names for name, msgtype in OUTPUT_TYPES.items()}
            worker = InferenceWorker(lambda frame: _output_messages(perception, typestore, cloud_parameters, frame))
            bar = tqdm(total=total, desc="process-bag", unit="frame", disable=not progress)

            def write_results(block: bool) -> None:
                for timestamp, camera, messages in worker.results(block):
                    for name, data in messages.items():
                        writer.write(outputs[(camera, name)], timestamp, data)
                    counts["images"] += 1
                    bar.update(1)

            inputs = [InputFrames(image, info, camera) for image, info, camera in zip(image_topics, info_topics, names)]
            try:
                for connection, timestamp, raw in reader.messages():
                    writer.write(copies[connection.id], timestamp, raw)
                    counts["copied"] += 1
                    frame = next((frame for camera in inputs
                                  if (frame := camera.read(reader, connection, timestamp, raw)) is not None), None)
                    if frame is InputFrames.UNREADABLE:
                        counts["unreadable_images"] += 1
                    elif frame is not None:
                        worker.submit(frame)
                    write_results(block=False)
            except KeyboardInterrupt:
                counts["interrupted"] = True
                worker.drop_pending()  # frames not started are dropped; the one in flight finishes
            finally:
                worker.stop()  # no inference thread may outlive the bag (or the interpreter)
            write_results(block=True)
            bar.close()
    finally:
        reader.close()
    return counts


def check_topics(reader, source: Path, image_topic: str, camera_info_topic: str | None) -> None:
    topics = bag_topics(reader)
    require_topic(topics, source, image_topic, IMAGE_TYPES, "image")
    if camera_info_topic:
        require_topic(topics, source, camera_info_topic, (CAMERA_INFO_TYPE,), "CameraInfo")


@dataclass
class Frame:
    camera: str
    timestamp: int
    header: object
    array: object
    encoding: str
    calibration: object


class InputFrames:
    """Turns the bag's image messages into frames, each paired by stamp with its camera_info as the
    node pairs them."""

    UNREADABLE = object()

    def __init__(self, image_topic: str, camera_info_topic: str | None, camera: str = ""):
        self.camera = camera
        self.image_topic = image_topic
        self.camera_info_topic = camera_info_topic
        self.camera_infos = CameraInfoBuffer(CAMERA_INFO_TOLERANCE_S)

    def read(self, reader, connection, timestamp: int, raw: bytes):
        """A Frame for an image, UNREADABLE for an image that cannot be decoded, None for other topics."""
        if connection.topic == self.camera_info_topic:
            msg = deserialize(reader, connection, timestamp, raw)
            try:
                self.camera_infos.add(stamp_ns(msg.header), msg.header.frame_id, camera_info_to_calibration(msg))
            except CalibrationError as error:
                raise CommandError(f"the bag's camera_info at {timestamp} ns cannot be used ({error}); "
                                   "fix it or leave out --camera-info-topic to guess the intrinsics") from None
            return None
        if connection.topic != self.image_topic:
            return None
        msg = deserialize(reader, connection, timestamp, raw)
        try:
            array, encoding = input_image_to_array(msg)
        except ImageFormatError:
            return self.UNREADABLE
        return Frame(self.camera, timestamp, msg.header, array, encoding,
                     self.camera_infos.match(stamp_ns(msg.header)).calibration)


class InferenceWorker:
    """Runs the model and builds the messages in a thread while the main thread reads and writes the
    bag (SQLite handles must stay in the thread that opened them)."""

    def __init__(self, build):
        self.build = build
        self.frames: queue.Queue = queue.Queue(maxsize=8)
        self.finished: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="hydranet_bag_worker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (frame := self.frames.get()) is not None:
                self.finished.put((frame.timestamp, frame.camera, self.build(frame)))
        except BaseException as error:  # handed to the main thread, which raises it
            self.finished.put(error)
        self.finished.put(None)

    def submit(self, frame: Frame) -> None:
        while True:
            try:
                self.frames.put(frame, timeout=0.5)
                return
            except queue.Full:
                if not self.thread.is_alive():  # a worker that died no longer takes frames: raise its error
                    list(self.results(block=False))
                    return

    def results(self, block: bool):
        """The (timestamp, camera, messages) finished so far; with block, all of them until the worker ends."""
        while True:
            try:
                item = self.finished.get(block=block)
            except queue.Empty:
                return
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def drop_pending(self) -> None:
        while not self.frames.empty():
            self.frames.get_nowait()

    def stop(self) -> None:
        while self.thread.is_alive():  # the frames queued before the end marker are still processed
            try:
                self.frames.put(None, timeout=0.5)
                break
            except queue.Full:
                continue
        self.thread.join()


def check_paths(source: Path, destination: Path) -> None:
    """The input bag must exist and the output bag's folder must be new; an existing empty folder is
    taken (and removed, since the bag writer creates its folder itself)."""
    check_bag_path(source)
    if destination.is_dir() and not any(destination.iterdir()):
        destination.rmdir()
    elif destination.exists():
        raise CommandError(f"{destination} exists and is not an empty folder; choose a new output path")


def _output_messages(perception, typestore, cloud_parameters: dict, frame: Frame) -> dict[str, bytes]:
    """The serialized output messages for one image, keyed by output name."""
    height, width = frame.array.shape[:2]
    calibration = frame.calibration
    camera = calibration if calibration is not None else guess_intrinsics(perception.spec, width, height)
    column = calibration.projection_column() if calibration is not None else (0.0, 0.0, 0.0)
    request = cloud_output_request(cloud_parameters, perception.spec.label_space, frozenset(OUTPUT_TYPES), column)
    try:
        result = perception.process(frame.array, frame.encoding, camera=camera, clouds=request.clouds(perception))
    except CalibrationError as error:
        raise CommandError(f"the bag's camera_info does not fit its images ({error}); fix it or leave out "
                           "--camera-info-topic to guess the intrinsics") from None
    messages = frame_messages(result, request, BagMessages(typestore, frame.header))
    return {name: typestore.serialize_cdr(msg, OUTPUT_TYPES[name]) for name, msg in messages.items()}
