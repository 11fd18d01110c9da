"""The network is HydraNet layer for layer: sizes, counts, cost and the official layouts."""
import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import shared_path
from hydranet_ros.model.authors_checkpoint import import_authors_checkpoint
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.model.model_file import ModelFileError, load_model, ModelSpec, load_label_space, save_model

LAYOUTS = ["ExpNYUD_joint", "ExpKITTI_joint", "ExpNYUDKITTI_joint", "ExpNYUD_three"]


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_paper_configurations():
    assert count_parameters(HydraNet(6)) == 2_991_687
    assert count_parameters(HydraNet(40)) == 3_070_057


@pytest.mark.parametrize("height,width", [(375, 1242), (350, 1200), (480, 640)])
def test_outputs_are_at_a_quarter_of_the_input_for_any_size(height, width):
    model = HydraNet(6, ("segmentation", "depth", "normals")).eval()
    with torch.no_grad():
        segmentation, depth, normals = model(torch.randn(1, 3, height, width))
    quarter = (-(-height // 4), -(-width // 4))
    assert segmentation.shape == (1, 6, *quarter)
    assert depth.shape == (1, 1, *quarter)
    assert normals.shape == (1, 3, *quarter)


def test_multiply_adds_at_1200x352():
    model = HydraNet(6).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, 352, 1200))
    multiply_adds = counter.get_total_flops() / 2  # the counter counts one multiply-add as 2 FLOPs
    assert 6.0e9 < multiply_adds < 6.2e9, multiply_adds


@pytest.mark.parametrize("name", LAYOUTS)
def test_state_dict_equals_the_official_checkpoint_layout(name):
    reference = json.loads(shared_path("reference", "authors_checkpoint_layout.json").read_text())[name]
    tasks = ("segmentation", "depth") + (("normals",) if reference["num_tasks"] == 3 else ())
    model = HydraNet(reference["num_classes"], tasks)
    ours = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()}
    theirs = {k: (shape, dtype) for k, (shape, dtype) in reference["state_dict"].items()}
    assert ours == theirs
    assert count_parameters(model) == reference["num_parameters"]


def _fake_official_file(tmp_path, form, num_classes=40, three=False):
    """A file in one of the forms the authors' checkpoints come in, with random weights."""
    model = HydraNet(num_classes, ("segmentation", "depth", "normals") if three else ("segmentation", "depth"))
    state = model.state_dict()
    if "no_counters" in form:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if "module" in form:
        state = {f"module.{k}": v for k, v in state.items()}
    payload = {"state_dict": state} if "wrapped" in form else state
    path = tmp_path / f"{form}.ckpt"
    torch.save(payload, path)
    return path, model


@pytest.mark.parametrize("form", ["bare", "wrapped", "module_wrapped", "module_no_counters", "no_counters"])
def test_official_checkpoint_forms_load_strictly(tmp_path, form):
    path, original = _fake_official_file(tmp_path, form)
    model, spec = import_authors_checkpoint(path)
    assert spec.label_space.name == "nyud40"
    for key, value in original.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(model.state_dict()[key], value), key


def test_imported_checkpoint_round_trips_through_our_model_file(tmp_path):
    path, original = _fake_official_file(tmp_path, "wrapped", num_classes=40, three=True)
    model, spec = import_authors_checkpoint(path)
    saved = save_model(tmp_path / "model.pt", model, spec)
    loaded, loaded_spec = load_model(saved)
    assert loaded_spec.tasks == ["segmentation", "depth", "normals"]
    assert loaded_spec.label_space.class_names[:2] == ["wall", "floor"]
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(original.eval()(x), loaded(x)):
            assert torch.equal(a, b)


def test_half_precision_model_file_is_half_the_size(tmp_path):
    model = HydraNet(6)
    spec = ModelSpec(["segmentation", "depth"], load_label_space("kitti6"), (352, 1216))
    full = save_model(tmp_path / "full.pt", model, spec).stat().st_size
    half = save_model(tmp_path / "half.pt", model, spec, half=True).stat().st_size
    assert half < 0.55 * full
    loaded, _ = load_model(tmp_path / "half.pt")
    assert next(loaded.parameters()).dtype == torch.float32


def test_shipped_label_spaces_match_the_reference_names_and_palettes():
    import numpy as np
    nyud = load_label_space("nyud40")
    assert nyud.class_names == shared_path("reference", "nyud40_classes.txt").read_text().splitlines()
    palette = np.load(shared_path("data", "nyud", "palette.npy"))
    assert np.array_equal(np.asarray(nyud.palette), palette[1:41])  # class c is row c + 1
    kitti = load_label_space("kitti6")
    assert kitti.class_names == shared_path("reference", "kitti6_classes.txt").read_text().splitlines()
    assert np.array_equal(np.asarray(kitti.palette), np.load(shared_path("data", "kitti", "palette.npy"))[:6])
    assert load_label_space("nyud40+kitti6").num_classes == 46


@pytest.mark.parametrize("name, frame", [("ExpKITTI_joint", ("kitti", "000099.png")),
                                         ("ExpNYUD_joint", ("nyud", "000464.png"))])
def test_imported_official_checkpoints_match_the_authors_recipe_at_native_size(tmp_path, name, frame):
    """A checkpoint in the authors' exact layout, run through our import and per-frame path, gives what
    their own code gives on the same real frame (test/authors_reference.py says how that was made)."""
    from authors_reference import STRIDE, seeded_state_dict
    from conftest import REPO, shared_path
    from hydranet_ros.cli.main import main as hydranet
    from hydranet_ros.data.dataset import read_rgb
    from hydranet_ros.inference.backends.torch_backend import TorchBackend
    from hydranet_ros.inference.pipeline import Perception
    layout = shared_path("reference", "authors_checkpoint_layout.json")
    torch.save({"state_dict": seeded_state_dict(layout, name)}, tmp_path / f"{name}.ckpt")
    assert hydranet(["import-checkpoint", str(tmp_path / f"{name}.ckpt"), "--out", str(tmp_path / "model.pt")]) == 0
    model, spec = load_model(tmp_path / "model.pt")
    assert spec.native_resolution and spec.upsampling == "bicubic"
    image = read_rgb(shared_path("data", *frame))
    result = Perception(TorchBackend(model, spec), spec).process(image)  # no camera: depth as the network gives it
    reference = np.load(REPO / "test" / "data" / f"authors_reference_{name}.npz")
    labels, depth = result.labels[::STRIDE, ::STRIDE], result.depth[::STRIDE, ::STRIDE]
    assert labels.shape == reference["labels"].shape
    assert (labels == reference["labels"]).mean() > 0.999
    # Sky (KITTI class 0) has no depth in our outputs (REP 118); OpenCV and PyTorch also treat the
    # outermost pixels differently in bicubic resampling, so compare the interior.
    interior = np.zeros(labels.shape, bool)
    interior[1:-1, 1:-1] = True
    valid = interior & np.isfinite(depth)
    assert valid.mean() > 0.9
    assert np.abs(depth[valid] - reference["depth"][valid]).max() < 1e-3


@pytest.mark.parametrize("change, problem", [
    ({"input_size": [-96, 320]}, "input_size must be [height, width]"),
    ({"input_size": [1, 1]}, "input_size must be [height, width]"),
    ({"input_size": [100000, 100000]}, "input_size must be [height, width]"),
    ({"upsampling": "lanczos"}, "upsampling 'lanczos'"),
    ({"std": [0.0, 0.2, 0.2]}, "std [0.0, 0.2, 0.2]"),
    ({"mean": [float("nan"), 0.4, 0.4]}, "mean [nan, 0.4, 0.4]"),
    ({"focal_length_px": float("nan")}, "focal_length_px nan"),
    ({"focal_length_px": float("inf")}, "focal_length_px inf"),
    ({"focal_length_px": -350.0}, "focal_length_px -350.0"),
    ({"label_space": {"palette": [[300, 0, 0]] * 6}}, "a palette of (6, 3) (one RGB colour of 0..255"),
    ({"label_space": {"depth_range_m": [0.0, float("nan")]}}, "depth range [0.0, nan]"),
    ({"label_space": {"sky_classes": ["heaven"]}}, "ground or sky classes ['heaven']"),
    ({"label_space": {"class_names": ["sky"] * 6}}, "class names ['sky', 'sky'"),
])
def test_every_spec_value_is_checked_at_load(street_model_file, tmp_path, change, problem):
    """Crafted or damaged specs used to load as valid and then fail every frame, or run with 0 % finite
    depth; now load_model (the node, info, every tool) refuses them in one line naming the value."""
    data = torch.load(street_model_file, weights_only=True)
    for key, value in change.items():
        if key == "label_space":
            data["spec"]["label_space"].update(value)
        else:
            data["spec"][key] = value
    path = tmp_path / "crafted.pt"
    torch.save(data, path)
    with pytest.raises(ModelFileError, match="has an unusable spec") as refused:
        load_model(path)
    assert problem in str(refused.value) and "\n" not in str(refused.value)


def test_a_model_file_claiming_gigabytes_is_refused_from_its_headers(street_model_file, tmp_path):
    """A few MB of compressed zeros can claim gigabytes: refused before torch.load allocates them (a 2 GiB
    one reached 2.36 GB of memory before). Here 256 MiB, written in chunks."""
    import shutil
    import zipfile
    path = tmp_path / "bomb.pt"
    shutil.copyfile(street_model_file, path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        prefix = archive.namelist()[0].split("/")[0]
        with archive.open(f"{prefix}/data/9999", "w", force_zip64=True) as entry:
            chunk = bytes(1 << 20)
            for _ in range(256):
                entry.write(chunk)
    assert path.stat().st_size - street_model_file.stat().st_size < 2 << 20  # under 2 MB more on disk
    with pytest.raises(ModelFileError, match=r"holds \d+ MiB of data, more than any HydraNet \(64 MiB at most\)"):
        load_model(path)
    assert load_model(street_model_file)[1].num_classes == 6  # a real file is far below the limit
