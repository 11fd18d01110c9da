"""Names the command line offers as choices, torch- and OpenCV-free so that `--help` stays fast."""

SCENE_OF_LABEL_SPACE = {"nyud40": "indoor", "kitti6": "street"}  # the generated scenes each label space is for
SCENE_KINDS = tuple(SCENE_OF_LABEL_SPACE.values())  # what the scene generator renders (data/synth)
LABEL_KINDS = ("segmentation", "depth")     # the labels a dataset sample may have, and a teacher may fill in
KINDS_OF_DATASET = ("nyud-mat", "nyud-examples", "kitti", "camvid", "kitti-bag")  # what `hydranet convert` makes
