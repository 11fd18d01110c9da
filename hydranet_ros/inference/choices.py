"""The inference choices a user names (backend, device, precision, output resolution, int8 target),
in one torch-free module: the node's parameters, the command line and the backends all read them."""

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime", "openvino")
DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
OUTPUT_RESOLUTIONS = ("network", "input")
ENGINE_PRECISIONS = ("fp16", "fp32", "int8")   # what a TensorRT engine is built in
INT8_TARGETS = ("cpu", "tensorrt")             # hydranet quantize --for: the two int8 recipes
CALIBRATION_LIMIT = 300                        # calibration images used at most, evenly spaced
