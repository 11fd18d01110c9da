"""berHu and the joint loss, including samples that carry only one label."""
import torch

from hydranet_ros.training.losses import berhu_loss, joint_loss, segmentation_loss


def test_berhu_is_l1_below_c_and_scaled_l2_above():
    target = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]])  # last pixel has no depth
    prediction = torch.tensor([[[1.1, 2.0, 0.0, 100.0]]])[:, None]  # 1 x 1 x 1 x 4
    # residuals 0.1, 1, 1 -> c = 0.2; 0.1 <= c -> 0.1; 1 > c -> (1 + 0.04) / 0.4 = 2.6
    expected = (0.1 + 2.6 + 2.6) / 3
    assert torch.isclose(berhu_loss(prediction, target), torch.tensor(expected))


def test_missing_labels_contribute_nothing_and_report_no_loss():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    depth = torch.rand(2, 1, 4, 4, requires_grad=True)
    batch = {"segmentation": torch.full((2, 4, 4), 255, dtype=torch.long), "depth": torch.zeros(2, 4, 4)}
    total, parts = joint_loss({"segmentation": logits, "depth": depth}, batch)
    assert parts == {}  # nothing to report: no batch loss of 0.000 for labels it does not have
    total.backward()
    assert logits.grad.abs().sum() == 0 and depth.grad.abs().sum() == 0


def test_a_sample_without_segmentation_does_not_change_the_segmentation_loss():
    logits = torch.randn(1, 3, 4, 4)
    labelled = torch.randint(0, 3, (1, 4, 4))
    both = segmentation_loss(torch.cat([logits, torch.randn(1, 3, 4, 4)]),
                             torch.cat([labelled, torch.full((1, 4, 4), 255)]))
    assert torch.isclose(both, segmentation_loss(logits, labelled))
