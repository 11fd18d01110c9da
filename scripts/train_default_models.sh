#!/usr/bin/env bash
# Trains the two shipped models, copies them into models/ and measures them for the model card
# (models/README.md, models/metrics.json). The street model learns from real frames (CamVid, KITTI
# with LiDAR and a Cityscapes teacher) and generated streets; the indoor model from generated rooms.
# On 2 CPU cores the indoor model took about 8 1/4 hours, the street model the times in the card.
# Needs ../shared/weights (ImageNet initialisation, the teacher) and ../shared/data (real frames).
set -euo pipefail
cd "$(dirname "$0")/.."
hydranet=.venv/bin/hydranet
synth() {  # kind, name, count, seed; generation is deterministic, so an existing folder is reused
  [ -f "datasets/$2/dataset.yaml" ] || $hydranet synth "$1" --out "datasets/$2" --count "$3" --seed "$4"
}
synth indoor synth_indoor_train 3000 1
synth indoor synth_indoor_val 200 2
synth street synth_street_train 2000 1
synth street synth_street_val 200 2
synth indoor synth_indoor_test 200 3  # test frames: measured only, never used to choose an epoch
synth street synth_street_test 200 3
# Real street frames: CamVid (segmentation), KITTI tracking 0001 frames 0-19 with LiDAR depth and
# segmentation from the Cityscapes teacher; frames 20-30 stay out of training, for the model card.
shared=../shared
[ -f datasets/camvid_train/dataset.yaml ] || $hydranet convert camvid $shared/data/camvid/train --out datasets/camvid_train
[ -f datasets/camvid_val/dataset.yaml ] || $hydranet convert camvid $shared/data/camvid/val --out datasets/camvid_val
kitti=$shared/data/kitti_tracking_0001
if [ ! -f datasets/kitti_0001_train/provenance.yaml ]; then
  $hydranet convert kitti $kitti/image_2/0001 --velodyne $kitti/velodyne/0001 --calib $kitti/calib/0001.txt \
    --frames 0 20 --out datasets/kitti_0001_train
  $hydranet distill datasets/kitti_0001_train --labels segmentation \
    --teacher $shared/weights/coral_deeplab_mnv2_edgetpu_cityscapes_quant.tflite \
    --class-map hydranet_ros/training/teacher_maps/cityscapes19.yaml
fi
# KITTI semantics: 22 frames of many drives with human labels train; the 10 of three drives that
# scripts/real_frames.py holds back (KITTI_SEMANTICS_HELD_BACK: 2-6, 13-17) never do.
sem=$shared/data/kitti_semantics
[ -f datasets/kitti_semantics_train/dataset.yaml ] || $hydranet convert kitti $sem/image_2 \
  --trainid-labels $sem/semantic_trainid --frame-indices 0 1 7 8 9 10 11 12 18 19 20 21 22 23 24 25 26 27 28 29 30 31 \
  --out datasets/kitti_semantics_train
# The same 22 frames with depth on their road and sidewalk from the flat ground below KITTI's camera.
[ -f datasets/kitti_semantics_train_ground/dataset.yaml ] || $hydranet convert kitti $sem/image_2 \
  --trainid-labels $sem/semantic_trainid --frame-indices 0 1 7 8 9 10 11 12 18 19 20 21 22 23 24 25 26 27 28 29 30 31 \
  --ground-plane-depth 1.65 --out datasets/kitti_semantics_train_ground
# KITTI 0001 frames 0-19 again, labelled by the stronger Cityscapes teacher with scores (ESPNetv2).
if [ ! -f datasets/kitti_0001_espnet/provenance.yaml ]; then
  $hydranet convert kitti $kitti/image_2/0001 --velodyne $kitti/velodyne/0001 --calib $kitti/calib/0001.txt \
    --frames 0 20 --out datasets/kitti_0001_espnet
  $hydranet distill datasets/kitti_0001_espnet --labels segmentation \
    --teacher $shared/weights/espnetv2_s_2.0_city_1600x480.onnx \
    --class-map hydranet_ros/training/teacher_maps/cityscapes19.yaml
fi
# Round 3 of unseen streets: the 115 KITTI semantics frames outside the held-back drives (real_frames.py),
# human labels and depth on road and sidewalk from the flat ground.
held_back="2 3 4 5 6 13 14 15 16 17 90 91 92 93 94 95 96 97 98 99 100 101 102 103 155 156 157 158 159"
[ -f datasets/kitti_semantics144_train_ground/dataset.yaml ] || $hydranet convert kitti $sem/image_2 \
  --trainid-labels $sem/semantic_trainid --hold-back $held_back --ground-plane-depth 1.65 \
  --out datasets/kitti_semantics144_train_ground
# The same 115 frames with depth from labels and geometry: also cars and bicycles at their ground contact.
[ -f datasets/kitti_semantics144_train_geometric/dataset.yaml ] || $hydranet convert kitti $sem/image_2 \
  --trainid-labels $sem/semantic_trainid --hold-back $held_back --geometric-depth 1.65 \
  --out datasets/kitti_semantics144_train_geometric
# The shipped indoor run was eight jobs, each continuing the last one's checkpoint with a longer
# schedule (models/README.md); these replay it. One plain job would be: train CONFIG.
$hydranet train config/train_indoor_synth.yaml --epochs 10 --stop-after 5
$hydranet train config/train_indoor_synth.yaml --epochs 12 --resume
$hydranet train config/train_indoor_synth.yaml --epochs 24 --resume
$hydranet train config/train_indoor_synth.yaml --epochs 28 --resume
$hydranet train config/train_indoor_synth.yaml --epochs 40 --resume
$hydranet train config/train_indoor_synth.yaml --epochs 46 --resume
$hydranet train config/train_indoor_synth.yaml --epochs 60 --resume
$hydranet train config/train_indoor_synth.yaml --resume
cp runs/indoor/best.pt models/hydranet_indoor.pt
$hydranet train config/train_street.yaml --stop-after 6
$hydranet train config/train_street.yaml --resume
$hydranet train config/train_street.yaml --epochs 30 --stop-after 28 --resume  # epoch 27 kept
# Second stage: fine-tuned with median-frequency class weights (rare classes weigh more).
$hydranet train config/train_street_balanced.yaml  # was two jobs (epoch 1; 2-12): --resume is exact
# Third stage: the real KITTI frames twice as often, a third of the learning rate.
$hydranet train config/train_street_kitti.yaml
# Unseen streets (models/README.md): fine-tunes of stage 3, measured on held-back KITTI drives.
# Not shipped: a stage with the KITTI semantics frames and the ESPNetv2 labels, and that stage at the
# GPU operating point (1216x352).
$hydranet train config/train_street_kitti_semantics.yaml --stop-after 4
$hydranet train config/train_street_kitti_semantics.yaml --resume
$hydranet train config/train_street_gpu_input.yaml --stop-after 2
$hydranet train config/train_street_gpu_input.yaml --stop-after 3 --resume  # stopped after epoch 3
# Ground-plane depth on the 22 KITTI semantics frames, that with the tracking 0001 LiDAR frames twice
# as often, that gentler, with less of the plane (the lighter run), the plane on a third of the passes,
# the lighter run with stage 2's class weights, and without the plane.
$hydranet train config/train_street_ground_plane.yaml
$hydranet train config/train_street_ground_plane_lidar.yaml
$hydranet train config/train_street_ground_plane_gentle.yaml  # CamVid x2, half the learning rate
$hydranet train config/train_street_ground_plane_light.yaml  # the plane frames x4, segmentation weighted 0.6
$hydranet train config/train_street_ground_plane_third.yaml --stop-after 5  # stopped after epoch 5
$hydranet train config/train_street_ground_plane_shipped_weights.yaml
$hydranet train config/train_street_light_no_plane.yaml
# Round 2's shipped model: the mean of the weights of stage 3 and the lighter ground-plane run.
$hydranet average runs/street_kitti/best.pt runs/street_ground_plane_light/best.pt --out runs/street_round2_shipped.pt
# Round 3 (144 labelled frames): A, stopped after epoch 5 of 8, and B, depth from labels and geometry.
$hydranet train config/train_street_semantics144.yaml --stop-after 4
$hydranet train config/train_street_semantics144.yaml --stop-after 5 --resume  # stopped after epoch 5
$hydranet train config/train_street_semantics144_geometric.yaml
# The first round-3 model: round 2, A's epoch 5 and B, a third each.
$hydranet average runs/street_round2_shipped.pt runs/street_semantics144/last.pt \
  runs/street_semantics144_geometric/best.pt --out runs/street_round3_shipped.pt
# C: that model with the KITTI frames half of every epoch; shipped before: 0.6 x the first round-3 model + 0.4 x C.
$hydranet train config/train_street_semantics144_kitti_heavy.yaml
$hydranet average runs/street_round3_shipped.pt runs/street_semantics144_kitti_heavy/best.pt \
  --weights 0.6 0.4 --out runs/street_round3_60_C_40.pt
# D: C without the teacher's labels on tracking 0001 (its LiDAR only); E: KITTI alone; F: E at three times
# the learning rate for 8 epochs; H: F for 12 epochs, for the first round-3 model's camera.
[ -f datasets/kitti_0001_lidar/dataset.yaml ] || $hydranet convert kitti $kitti/image_2/0001 \
  --velodyne $kitti/velodyne/0001 --calib $kitti/calib/0001.txt --frames 0 20 --out datasets/kitti_0001_lidar
$hydranet train config/train_street_semantics144_no_teacher.yaml
$hydranet train config/train_street_semantics144_kitti_only.yaml
$hydranet train config/train_street_semantics144_kitti_fit.yaml
$hydranet train config/train_street_semantics144_kitti_long.yaml
# I: H carried to epoch 20 on a 20-epoch schedule, in its own folder; K: I with CamVid back in the mix,
# 6 epochs at 1e-4; L: K with wider training crops (176 x 480); M: K with encoder stages 7-8 from ImageNet
# (they had died under Adam's L2 decay) and AdamW.
rm -rf runs/street_semantics144_kitti_long20
cp -r runs/street_semantics144_kitti_long runs/street_semantics144_kitti_long20
$hydranet train config/train_street_semantics144_kitti_long.yaml --epochs 20 --resume \
  --out runs/street_semantics144_kitti_long20
$hydranet train config/train_street_semantics144_kitti_camvid.yaml
$hydranet train config/train_street_semantics144_kitti_camvid_wide.yaml
$hydranet train config/train_street_semantics144_kitti_camvid_revived.yaml
# Shipped: M's last epoch.
cp runs/street_semantics144_kitti_camvid_revived/last.pt models/hydranet_street.pt
.venv/bin/python scripts/model_card_metrics.py
