"""hydranet infer and hydranet demo from the command line, and training under torchrun."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from conftest import shared_path
from hydranet_ros.cli.main import main as hydranet
from hydranet_ros.ros.output_topics import DEFAULT_TOPICS


def _read_ply(path):
    data = path.read_bytes()
    header, body = data.split(b"end_header\n", 1)
    count = int(next(line for line in header.decode().splitlines() if line.startswith("element vertex")).split()[-1])
    vertex = np.frombuffer(body, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"),
                                        ("blue", "u1"), ("label", "u1")])
    assert len(vertex) == count
    return vertex


def test_infer_writes_every_file_for_an_image_a_folder_and_a_video(tmp_path, street_model_file):
    image = shared_path("data", "kitti", "000099.png")
    assert hydranet(["infer", str(image), "--out", str(tmp_path / "one"), "--model", str(street_model_file),
                     "--backend", "onnxruntime", "--intrinsics", "721.5", "721.5", "609.6", "172.9"]) == 0
    out = tmp_path / "one"
    labels = cv2.imread(str(out / "000099_labels.png"), cv2.IMREAD_UNCHANGED)
    depth_mm = cv2.imread(str(out / "000099_depth_mm.png"), cv2.IMREAD_UNCHANGED)
    depth = np.load(out / "000099_depth.npy")
    assert labels.shape == (370, 1226) and labels.max() < 6
    assert depth_mm.dtype == np.uint16 and depth.dtype == np.float32 and depth.shape == (370, 1226)
    valid = np.isfinite(depth) & (depth < 60)
    assert np.allclose(depth_mm[valid], np.round(depth[valid] * 1000), atol=1)
    vertex = _read_ply(out / "000099_points.ply")
    assert len(vertex) > 1000 and np.all(vertex["label"] < 6)
    assert cv2.imread(str(out / "000099_overview.png")).shape[1] == 1280

    frames = [cv2.imread(str(p)) for p in sorted(shared_path("data", "kitti_tracking_0001", "image_2",
                                                             "0001").glob("*.png"))[:3]]
    folder = tmp_path / "frames"
    folder.mkdir()
    video = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (1242, 375))
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:03d}.png"), frame)
        video.write(frame)
    video.release()
    for source, expected in ((folder, ["000", "001", "002"]),
                             (tmp_path / "clip.avi", ["clip_000000", "clip_000001", "clip_000002"])):
        out = tmp_path / f"out_{source.stem}"
        assert hydranet(["infer", str(source), "--out", str(out), "--model", str(street_model_file), "--backend",
                         "onnxruntime"]) == 0
        assert sorted(p.name[:-len("_labels.png")] for p in out.glob("*_labels.png")) == expected


def test_demo_records_a_bag_and_writes_pictures_and_a_video(tmp_path, street_model_file, monkeypatch):
    pytest.importorskip("rclpy")
    monkeypatch.delenv("ROS_DOMAIN_ID", raising=False)  # the demo claims a free domain
    process = subprocess.run([sys.executable, "-m", "hydranet_ros.cli.main", "demo", "--out", str(tmp_path / "demo"),
                              "--model", str(street_model_file), "--frames", "12", "--backend", "onnxruntime"],
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    out = tmp_path / "demo"
    summary = json.loads((out / "latency.json").read_text())
    assert summary["frames_sent"] == 12
    # Reliable subscribers get every output of every frame the node processed, the small camera_info as
    # well as the clouds: with Fast DDS's defaults, lost fragments of large samples were resent a heartbeat
    # later and samples queued behind them came hundreds of ms late or were replaced.
    assert Path(summary["fastdds_profile"]).name == "fastdds_large_data.xml"
    assert summary["node"]["frames_processed"] > 0
    assert all(summary[name]["received"] == summary["node"]["frames_processed"] for name in DEFAULT_TOPICS), summary
    # Delivery beside the node's own per-stage medians (from its /diagnostics), both printed.
    assert {"pre", "inference", "post", "total"} <= set(summary["node_latency_ms"])
    assert "delivery: from publishing an image" in process.stdout
    assert "the node's own median per stage" in process.stdout
    from rosbags.highlevel import AnyReader
    with AnyReader([out / "bag"]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts["/camera/image_raw"] == 12 and counts["/camera/camera_info"] == 12
    assert counts["/hydranet/points"] == summary["points"]["received"]
    assert counts["/diagnostics"] > 0  # every topic of the run, the node's health included
    assert list(out.glob("bag/*.mcap"))
    pictures = sorted((out / "frames").glob("*.png"))
    assert len(pictures) >= 3 and (out / "demo.mp4").stat().st_size > 0
    assert "Foxglove" in process.stdout and str(out / "bag") in process.stdout


def _strict_json(path):
    """JSON as the standard has it: NaN and Infinity are not numbers there."""
    def refuse(value):
        raise ValueError(f"{path} holds {value}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_training_under_torchrun_shards_batches_and_validation_over_two_processes(tmp_path):
    """DistributedDataParallel over gloo on CPU, as torchrun starts it on a multi-GPU machine. 8 images
    on 2 processes with batch 8: each process has 4 images, which still make a batch."""
    assert hydranet(["synth", "street", "--out", str(tmp_path / "data"), "--count", "8", "--size", "64", "128",
                     "--workers", "1"]) == 0
    config = {"model": {"label_space": "kitti6", "input_size": [64, 128]},
              "data": {"train": ["data"], "val": ["data"], "crop": [64, 128]},
              "train": {"epochs": 1, "batch_size": 8, "out": "run", "max_depth_eval": 80.0}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    process = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                              "-m", "hydranet_ros.cli.main", "train", str(tmp_path / "config.yaml")],
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    history = _strict_json(tmp_path / "run" / "history.json")
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])
    assert (tmp_path / "run" / "best.pt").is_file()
    # Validation was split over the two processes and summed: it covers all 8 frames, and matches
    # one process scoring the same model alone.
    from hydranet_ros.data.dataset import FolderDataset
    from hydranet_ros.model.model_file import load_model
    from hydranet_ros.training.evaluate import evaluate_model
    import torch
    model, spec = load_model(tmp_path / "run" / "last.pt")
    alone = evaluate_model(model, spec, [FolderDataset(tmp_path / "data")], 80.0, torch.device("cpu"))
    assert history[0]["val"]["depth"]["pixels"] == alone["depth"]["pixels"]
    assert np.isclose(history[0]["val"]["depth"]["rmse"], alone["depth"]["rmse"], rtol=1e-2)
    assert np.isclose(history[0]["val"]["segmentation"]["miou"], alone["segmentation"]["miou"], atol=1e-2)


@pytest.mark.parametrize("kind", ["folder", "bag"])
def test_demo_takes_a_folder_of_images_or_a_bag_as_input(tmp_path, street_model_file, monkeypatch, kind):
    pytest.importorskip("rclpy")
    from bag_helpers import kitti_bag
    monkeypatch.delenv("ROS_DOMAIN_ID", raising=False)  # the demo claims a free domain
    root = shared_path("data", "kitti_tracking_0001")
    if kind == "folder":
        source = tmp_path / "images"
        source.mkdir()
        for path in sorted((root / "image_2" / "0001").glob("*.png"))[:5]:
            (source / path.name).write_bytes(path.read_bytes())
    else:
        source = tmp_path / "kitti_bag"
        kitti_bag(root, source, count=5)
    process = subprocess.run([sys.executable, "-m", "hydranet_ros.cli.main", "demo", "--out", str(tmp_path / "demo"),
                              "--model", str(street_model_file), "--input", str(source), "--backend", "onnxruntime",
                              "--rate", "5"], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    summary = json.loads((tmp_path / "demo" / "latency.json").read_text())
    node = summary["node"]  # a loaded machine may drop frames: the demo says how many, and succeeds
    assert summary["frames_sent"] == 5 and 1 <= node["frames_processed"] <= node["frames_received"] <= 5
    assert node["frames_processed"] + node["frames_dropped"] == node["frames_received"], node
    assert 1 <= summary["depth/image"]["received"] <= node["frames_processed"]
    assert f"processed {node['frames_processed']} and dropped {node['frames_dropped']}" in process.stdout
    picture = cv2.imread(str(sorted((tmp_path / "demo" / "frames").glob("*.png"))[0]))
    assert picture.shape[1] == 1280


def test_import_info_and_export_commands(tmp_path, capsys):
    import onnx
    import torch
    from hydranet_ros.model.hydranet import HydraNet
    torch.save({"state_dict": {f"module.{k}": v for k, v in HydraNet(6).state_dict().items()}},
               tmp_path / "ExpKITTI_joint.ckpt")
    assert hydranet(["import-checkpoint", str(tmp_path / "ExpKITTI_joint.ckpt"), "--out",
                     str(tmp_path / "kitti.pt")]) == 0
    assert hydranet(["info", str(tmp_path / "kitti.pt")]) == 0
    text = capsys.readouterr().out
    assert "2,991,687 parameters" in text and "kitti6" in text and "each image's own size" in text
    assert "721.54 px" in text and "bicubic" in text
    assert hydranet(["export", str(tmp_path / "kitti.pt"), "--out", str(tmp_path / "kitti.onnx"), "--image-size", "96",
                     "320"]) == 0
    assert "label_agreement" in capsys.readouterr().out
    graph = onnx.load(str(tmp_path / "kitti.onnx"))
    assert [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim] == [1, 96, 320, 3]
