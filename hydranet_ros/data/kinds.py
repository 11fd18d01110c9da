"""Names the command line offers as choices, torch- and OpenCV-free so that `--help` stays fast."""

SCENE_KINDS = ("indoor", "street")          # what the scene generator renders (data/synth)
LABEL_KINDS = ("segmentation", "depth")     # the labels a dataset sample may have, and a teacher may fill in
KINDS_OF_DATASET = ("nyud-mat", "nyud-examples", "kitti", "camvid")  # what `hydranet convert` reads
