"""Dataset readers on the real frames in ../shared, and the folder layout round trip."""
import numpy as np
import pytest

from conftest import shared_path
from hydranet_ros.data.dataset import (DatasetError, FolderDataset, IGNORE_LABEL, Sample, create_dataset_folder,
                                       write_sample)
from hydranet_ros.data.kitti import project_lidar, read_kitti6_labels, read_tracking_calibration, read_velodyne
from hydranet_ros.data.labels import decode_color_labels
from hydranet_ros.data.nyud import example_frame_names, read_example_frame
from hydranet_ros.camera.intrinsics import Intrinsics


def test_nyud_depth_is_metres_with_zero_as_missing_and_labels_keep_255_as_ignore():
    root = shared_path("data", "nyud")
    sample = read_example_frame(root, "000464")
    raw = __import__("cv2").imread(str(root / "depth_gt_000464.png"), -1)
    assert np.allclose(sample.depth, raw / 5000.0)
    assert 0.5 < np.median(sample.depth[sample.depth > 0]) < 10  # an indoor room, in metres
    assert (sample.depth == 0).any()
    ids = np.unique(sample.segmentation)
    assert IGNORE_LABEL in ids and ids[ids != IGNORE_LABEL].max() < 40


def test_nyud_palette_masks_decode_to_class_ids():
    root = shared_path("data", "nyud")
    assert {"000433", "000464", "000834", "000972"} <= set(example_frame_names(root))
    sample = read_example_frame(root, "000834")
    assert sample.depth is None  # this frame carries only segmentation: the depth label is absent
    ids = set(np.unique(sample.segmentation).tolist())
    assert ids <= set(range(40)) | {IGNORE_LABEL}
    assert 0 in ids or 1 in ids  # wall (palette row 1) or floor (row 2)


def test_kitti6_colour_labels_map_through_the_palette():
    labels = read_kitti6_labels(shared_path("data", "kitti", "segm_gt_000099.png"))
    assert set(np.unique(labels).tolist()) == {0, 1, 2, 3, 4, 5, IGNORE_LABEL}  # black = ignore


def test_decode_color_labels_by_hand():
    palette = [[10, 20, 30], [0, 0, 0], [255, 255, 255]]
    rgb = np.array([[[10, 20, 30], [255, 255, 255], [1, 2, 3]]], np.uint8)
    assert decode_color_labels(rgb, palette).tolist() == [[0, 2, 255]]


def test_lidar_projection_of_frame_0():
    root = shared_path("data", "kitti_tracking_0001")
    calibration = read_tracking_calibration(root / "calib" / "0001.txt")
    depth = project_lidar(read_velodyne(root / "velodyne" / "0001" / "000000.bin"), calibration, 1242, 375)
    values = depth[depth > 0]
    assert 16_000 < values.size < 17_500
    assert 4.0 < values.min() and values.max() < 80.0
    assert calibration.intrinsics(1242, 375).fx == 721.5377


def test_folder_dataset_round_trip_keeps_missing_labels_missing(tmp_path):
    root = create_dataset_folder(tmp_path / "set", "kitti6", 256.0)
    rgb = np.random.default_rng(0).integers(0, 255, (8, 10, 3), dtype=np.uint8)
    depth = np.linspace(0, 60, 80, dtype=np.float32).reshape(8, 10)
    write_sample(root, Sample("a", rgb, depth=depth, intrinsics=Intrinsics(5, 5, 4.5, 3.5, 10, 8)), 256.0)
    write_sample(root, Sample("b", rgb, segmentation=np.full((8, 10), 2, np.uint8)), 256.0)
    dataset = FolderDataset(root)
    a, b = dataset[0], dataset[1]
    assert a.segmentation is None and np.allclose(a.depth, depth, atol=1 / 256)
    assert a.intrinsics.fx == 5 and b.depth is None and (b.segmentation == 2).all()
    assert np.array_equal(a.image, rgb)


def test_convert_kitti_sequence_with_lidar_and_the_nyud_examples(tmp_path):
    from hydranet_ros.cli.main import main as hydranet
    root = shared_path("data", "kitti_tracking_0001")
    images = tmp_path / "images"
    images.mkdir()
    for path in sorted((root / "image_2" / "0001").glob("*.png"))[:2]:
        (images / path.name).write_bytes(path.read_bytes())
    assert hydranet(["convert", "kitti", str(images), "--out", str(tmp_path / "kitti"), "--velodyne",
                     str(root / "velodyne" / "0001"), "--calib", str(root / "calib" / "0001.txt")]) == 0
    sample = FolderDataset(tmp_path / "kitti")[0]
    assert sample.segmentation is None and 16_000 < (sample.depth > 0).sum() < 17_500
    assert np.isclose(sample.intrinsics.fx, 721.5377)
    assert hydranet(["convert", "nyud-examples", str(shared_path("data", "nyud")), "--out",
                     str(tmp_path / "nyud")]) == 0
    assert len(FolderDataset(tmp_path / "nyud")) == 4


def test_nyud_labelled_mat_conversion_maps_raw_classes(tmp_path):
    import h5py
    from hydranet_ros.data.nyud import convert_labelled_mat
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "nyu.mat", "w") as mat:  # the official file's layout: N x C x W x H
        mat["images"] = rng.integers(0, 255, (2, 3, 8, 6), dtype=np.uint8)
        mat["depths"] = rng.uniform(0.5, 9.0, (2, 8, 6)).astype(np.float32)
        mat["labels"] = rng.integers(0, 895, (2, 8, 6)).astype(np.uint16)
    mapping = np.full(895, 255, np.uint8)
    mapping[1:] = np.arange(894) % 40
    np.save(tmp_path / "map.npy", mapping)
    convert_labelled_mat(tmp_path / "nyu.mat", tmp_path / "map.npy", tmp_path / "out", indices=[1])
    sample = FolderDataset(tmp_path / "out")[0]
    with h5py.File(tmp_path / "nyu.mat") as mat:
        raw, depth, image = mat["labels"][1].T, mat["depths"][1].T, mat["images"][1].transpose(2, 1, 0)
    assert sample.name == "000002" and sample.image.shape == (6, 8, 3) and np.array_equal(sample.image, image)
    assert np.array_equal(sample.segmentation, mapping[raw])
    assert np.allclose(sample.depth, depth, atol=1 / 5000)


def test_kitti_semantics_frames_convert_with_their_train_ids_on_kitti6(tmp_path):
    """The 19 Cityscapes train ids map as ../shared/README.md says (road 0, sidewalk 1, building 2,
    vegetation 8, sky 10, car 13; everything else ignored), and --frame-indices picks frames."""
    from hydranet_ros.cli.main import main as hydranet
    from hydranet_ros.data.kitti import read_trainid_labels_as_kitti6
    from hydranet_ros.data.dataset import read_png_unchanged
    root = shared_path("data", "kitti_semantics")
    train_ids = read_png_unchanged(root / "semantic_trainid" / "000007_10.png")
    labels = read_trainid_labels_as_kitti6(root / "semantic_trainid" / "000007_10.png")
    for train_id, kitti6_id in ((10, 0), (2, 1), (0, 2), (1, 3), (8, 4), (13, 5)):
        assert (labels[train_ids == train_id] == kitti6_id).all()
    assert (labels[~np.isin(train_ids, [0, 1, 2, 8, 10, 13])] == IGNORE_LABEL).all()
    assert {2, 4} <= set(np.unique(labels).tolist())  # road and vegetation in this street
    assert hydranet(["convert", "kitti", str(root / "image_2"), "--trainid-labels", str(root / "semantic_trainid"),
                     "--frame-indices", "7", "30", "--out", str(tmp_path / "sem")]) == 0
    dataset = FolderDataset(tmp_path / "sem")
    assert dataset.names == ["000007_10", "000030_10"]
    assert np.array_equal(dataset[0].segmentation, labels) and dataset[0].depth is None


def test_kitti_semantics_frames_get_ground_plane_depth_on_road_and_sidewalk(tmp_path):
    """--ground-plane-depth: each frame's KITTI camera by its size, depth only on road (1.65 m below
    the camera) and sidewalk (a kerb higher) below the horizon and within 40 m."""
    from hydranet_ros.cli.main import main as hydranet
    from hydranet_ros.data.kitti import KERB_HEIGHT, kitti_camera
    root = shared_path("data", "kitti_semantics")
    assert hydranet(["convert", "kitti", str(root / "image_2"), "--trainid-labels", str(root / "semantic_trainid"),
                     "--frame-indices", "0", "141", "--ground-plane-depth", "1.65",
                     "--out", str(tmp_path / "sem")]) == 0
    dataset = FolderDataset(tmp_path / "sem")  # the 142nd image is 000157_10.png, of 2011_09_29
    for index, size in ((0, (1242, 375)), (1, (1238, 374))):
        sample = dataset[index]
        assert sample.intrinsics == kitti_camera(*size)
        rows = np.arange(size[1])[:, None] - sample.intrinsics.cy
        with np.errstate(divide="ignore"):
            road = np.broadcast_to(sample.intrinsics.fy * 1.65 / rows, sample.depth.shape)
            sidewalk = np.broadcast_to(sample.intrinsics.fy * (1.65 - KERB_HEIGHT) / rows, sample.depth.shape)
        labelled = sample.depth > 0
        assert labelled.mean() > 0.1 and np.isin(sample.segmentation[labelled], [2, 3]).all()
        assert sample.depth.max() <= 40.0 + 1 / 256
        for class_id, expected in ((2, road), (3, sidewalk)):
            on = labelled & (sample.segmentation == class_id)
            assert on.any() and np.allclose(sample.depth[on], expected[on], atol=1 / 256)
        assert not labelled[: int(sample.intrinsics.cy) + 1].any()
    with pytest.raises(DatasetError, match="640x480 image is not one of KITTI's sizes"):
        kitti_camera(640, 480)


def test_the_kitti_semantics_frames_held_back_are_never_converted_for_training(tmp_path):
    """The frames the model card scores as unseen (real_frames.KITTI_SEMANTICS_HELD_BACK) are never among
    those the training script converts: the round-3 dataset holds back exactly those (--hold-back), the
    older ones pick frames of 0-31 (positions there equal the file numbers) outside them."""
    import re
    from conftest import REPO
    from real_frames import KITTI_SEMANTICS_HELD_BACK, kitti_semantics_trained_on
    from hydranet_ros.cli.main import main as hydranet
    script = (REPO / "scripts" / "train_default_models.sh").read_text().replace("\\\n", " ")
    held_back = {int(n) for n in re.search(r'held_back="([\d ]+)"', script).group(1).split()}
    assert held_back == set(KITTI_SEMANTICS_HELD_BACK)
    lines = [line for line in script.splitlines() if "--trainid-labels" in line]
    assert len(lines) == 4 and sum("--hold-back $held_back" in line for line in lines) == 2
    for line in lines:
        if "--frame-indices" in line:
            trained = {int(n) for n in re.search(r"--frame-indices ([\d ]+)", line).group(1).split()}
            assert trained.isdisjoint(KITTI_SEMANTICS_HELD_BACK) and trained | held_back >= set(range(32))
    root = shared_path("data", "kitti_semantics")
    assert hydranet(["convert", "kitti", str(root / "image_2"), "--trainid-labels", str(root / "semantic_trainid"),
                     "--hold-back", *map(str, KITTI_SEMANTICS_HELD_BACK), "--out", str(tmp_path / "train")]) == 0
    written = {int(p.name[:6]) for p in (tmp_path / "train" / "rgb").glob("*.png")}
    everything = {int(p.name[:6]) for p in (root / "image_2").glob("*.png")}
    assert written == everything - set(KITTI_SEMANTICS_HELD_BACK) and len(written) == 115
    assert kitti_semantics_trained_on(shared_path("data")) == tuple(sorted(written))  # what --unseen scores as fit
