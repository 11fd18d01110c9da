"""`hydranet average`: the weighted mean of model files, through the command line that wrote the shipped
street model, against the stored tensors combined here; and its one-line refusals."""
import hashlib

import pytest
import torch

from hydranet_ros.cli.main import main
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.model.model_file import ModelSpec, load_label_space, load_model, save_model


def _model_file(path, seed, provenance, label_space="kitti6", focal_length_px=300.0):
    torch.manual_seed(seed)
    model = HydraNet(load_label_space(label_space).num_classes)
    spec = ModelSpec(["segmentation", "depth"], load_label_space(label_space), (96, 320),
                     provenance=provenance, focal_length_px=focal_length_px)
    return save_model(path, model, spec, half=True)


def _stored_state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_average_is_the_weighted_mean_of_every_stored_weight(tmp_path, capsys):
    first = _model_file(tmp_path / "start.pt", 0, {"trained_on": ["camvid_train"]})
    second = _model_file(tmp_path / "tuned.pt", 1, {"trained_on": ["kitti"]})
    out = tmp_path / "average.pt"
    assert main(["average", str(first), str(second), "--weights", "0.25", "0.75", "--out", str(out),
                 "--float32"]) == 0
    assert "wrote" in capsys.readouterr().out
    a, b, averaged = _stored_state(first), _stored_state(second), _stored_state(out)
    assert averaged.keys() == a.keys()
    for name, tensor in averaged.items():
        if tensor.is_floating_point():
            expected = 0.25 * a[name].double() + 0.75 * b[name].double()
            assert tensor.dtype == torch.float32
            torch.testing.assert_close(tensor.double(), expected, rtol=0, atol=1e-6)
        else:
            assert torch.equal(tensor, a[name])
    assert any(not torch.equal(a[n], b[n]) for n in a if a[n].is_floating_point())  # the two really differ
    _, spec = load_model(out)
    sources = spec.provenance["weight_average"]
    assert [(s["model"], s["weight"]) for s in sources] == [(str(first), 0.25), (str(second), 0.75)]
    assert sources[0]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert sources[1]["provenance"] == {"trained_on": ["kitti"]}
    assert spec.focal_length_px == 300.0 and spec.label_space.name == "kitti6"


def test_equal_weights_by_default_stored_in_float16(tmp_path):
    first = _model_file(tmp_path / "a.pt", 0, {})
    second = _model_file(tmp_path / "b.pt", 1, {}, focal_length_px=300.0002)  # one camera, written rounded
    out = tmp_path / "mean.pt"
    assert main(["average", str(first), str(second), "--out", str(out)]) == 0
    a, b, averaged = _stored_state(first), _stored_state(second), _stored_state(out)
    name = "depth.weight"
    assert averaged[name].dtype == torch.float16
    expected = ((a[name].double() + b[name].double()) / 2).half()
    assert torch.equal(averaged[name], expected)


@pytest.mark.parametrize("case, message", [
    ("one model", "average needs at least two model files"),
    ("weights", "must be non-negative and add up to 1"),
    ("count", "3 weights for 2 model files"),
    ("label space", "differs from"),
    ("camera", "in focal_length_px"),
])
def test_average_refusals_are_one_line(tmp_path, capsys, case, message):
    first = _model_file(tmp_path / "a.pt", 0, {})
    differing = {"label space": {"label_space": "nyud40"}, "camera": {"focal_length_px": 500.0}}.get(case, {})
    second = _model_file(tmp_path / "b.pt", 1, {}, **differing)
    args = {"one model": [str(first)],
            "weights": [str(first), str(second), "--weights", "0.6", "0.6"],
            "count": [str(first), str(second), "--weights", "0.2", "0.3", "0.5"]}.get(case, [str(first), str(second)])
    code = main(["average", *args, "--out", str(tmp_path / "out.pt")])
    output = capsys.readouterr().err
    assert code == 2 and message in output, output
    assert len(output.strip().splitlines()) == 1, output
    assert not (tmp_path / "out.pt").exists()
