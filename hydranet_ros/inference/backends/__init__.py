"""Inference backends behind one small interface: an RGB uint8 image in, host arrays out.

    backend, skipped = create_backend(model_path, BackendOptions(backend="auto", precision="fp16"))
    backend.infer(rgb HxWx3 uint8) -> Prediction(labels, color, confidence, depth)

Every backend runs the same InferenceGraph (inference/graph.py), so resizing, normalisation,
argmax, colouring and depth upsampling run on the backend's device and only the finished
outputs come back to the host. All backends start from the same model file: ONNX Runtime,
OpenVINO and TensorRT use an ONNX export of it for each camera resolution, cached by the model
file's hash.

    base.py                 the interface, its results and its error
    choose.py               BackendOptions, create_backend (and the order `auto` tries)
    torch_backend.py        PyTorch on CPU or CUDA
    onnxruntime_backend.py  ONNX Runtime
    openvino_backend.py     OpenVINO (CPU)
    tensorrt_backend.py     TensorRT engines: build, cache, run
    device.py               what the torch and TensorRT backends share (outputs stay on the GPU)
"""
from hydranet_ros.inference.backends.base import Backend, BackendError, DeviceFrame, PerResolution, Prediction
from hydranet_ros.inference.backends.choose import BackendOptions, auto_order, create_backend

__all__ = ["Backend", "BackendError", "BackendOptions", "DeviceFrame", "PerResolution", "Prediction",
           "auto_order", "create_backend"]
