"""Throughput of `hydranet dataset from-bag`: frames per second with and without LiDAR, 1 and 2 workers.

Writes bags of the real KITTI tracking sequence in ../shared (its 31 frames: 1242x375 images, ~120k LiDAR
points a scan) and turns them into datasets side by side in one run, so the ratios hold on a noisy machine.
No teacher: its cost is the teacher network's (`hydranet benchmark` measures networks). Prints JSON.

    .venv/bin/python scripts/from_bag_benchmark.py --bags 4
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from hydranet_ros.data.from_bag import FromBagOptions, dataset_from_bags
from hydranet_ros.data.kitti import read_tracking_calibration
from hydranet_ros.data.kitti_bag import IMAGE_TOPIC, LIDAR_TOPIC, write_kitti_bag

KITTI = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti_tracking_0001"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", type=int, default=4, help="bags, each the whole sequence (default 4)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="from_bag_benchmark_"))
    try:
        calibration = read_tracking_calibration(KITTI / "calib" / "0001.txt")
        bags = [work / f"bag{index}" for index in range(args.bags)]
        for bag in bags:
            write_kitti_bag(KITTI / "image_2" / "0001", KITTI / "velodyne" / "0001", calibration, bag)
        results = {}
        for lidar in (False, True):
            for workers in (1, 2):
                options = FromBagOptions(IMAGE_TOPIC, lidar_topic=LIDAR_TOPIC if lidar else None)
                out = work / f"out_{lidar}_{workers}"
                start = time.perf_counter()
                summary = dataset_from_bags(bags, out, options, workers=workers, progress=False)
                seconds = time.perf_counter() - start
                frames = summary["train"] + summary["val"]
                results[f"{'lidar' if lidar else 'camera_only'}_workers{workers}"] = {
                    "frames": frames, "seconds": round(seconds, 2), "frames_per_s": round(frames / seconds, 2)}
                shutil.rmtree(out)
        for kind in ("camera_only", "lidar"):
            results[f"{kind}_2_over_1_workers"] = round(results[f"{kind}_workers2"]["frames_per_s"]
                                                        / results[f"{kind}_workers1"]["frames_per_s"], 2)
        results["lidar_over_camera_only_1_worker"] = round(results["lidar_workers1"]["frames_per_s"]
                                                           / results["camera_only_workers1"]["frames_per_s"], 2)
        print(json.dumps({"bags": args.bags, "image": "1242x375 bgr8",
                          **results}, indent=1))
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
