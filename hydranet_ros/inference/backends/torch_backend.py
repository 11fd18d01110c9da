"""PyTorch backend: the inference graph in torch on the CPU or a CUDA GPU (fp16, channels_last and CUDA
graphs there); its outputs stay on the device for inference/device_post.py."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from hydranet_ros.inference.backends.base import BackendError, DeviceFrame, stacked
from hydranet_ros.inference.backends.device import DeviceBackend, PinnedStaging
from hydranet_ros.inference.graph import InferenceGraph, fold_batchnorm, half_network
from hydranet_ros.model.model_file import ModelSpec

CUDA_GRAPHS_KEPT = 4  # input shapes whose CUDA graph the torch backend keeps (a node sees one or two)
MAX_BATCH = 8  # the most images of one size in one run (a node's cameras of that size)


class TorchBackend(DeviceBackend):
    name = "torch"

    def __init__(self, model, spec: ModelSpec, device: str = "cpu", precision: str = "fp32",
                 output: str = "input", channels_last: bool | None = None, cuda_graphs: bool | None = None):
        import torch
        if precision not in ("fp32", "fp16"):
            raise BackendError(f"the torch backend runs fp32 or fp16, not {precision}")
        self.torch = torch
        self.device = device
        cuda = device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise BackendError("PyTorch sees no CUDA device")
        if precision == "fp16" and not cuda:
            raise BackendError("fp16 needs a CUDA device; use fp32 on CPU")
        self.channels_last = cuda if channels_last is None else channels_last
        self.cuda_graphs = cuda if cuda_graphs is None else cuda_graphs
        if self.cuda_graphs and not cuda:
            raise BackendError("CUDA graphs need a CUDA device")
        if cuda:
            torch.backends.cudnn.benchmark = True  # one camera size: the tuned kernels are reused every frame
        try:
            graph = InferenceGraph(fold_batchnorm(model), spec, output).eval().to(device)
            if precision == "fp16":
                half_network(graph.model)
            if self.channels_last:
                graph.model.to(memory_format=torch.channels_last)
        except torch.cuda.OutOfMemoryError as error:
            raise BackendError(f"out of GPU memory loading the model on {device}: {error}") from None
        self.graph = graph
        self.precision = precision
        self._captured = OrderedDict()  # input shape -> (static input, static outputs, CUDA graph)
        self.staging = PinnedStaging(CUDA_GRAPHS_KEPT)

    def describe(self) -> str:
        extras = [self.precision, "BatchNorm folded"] + (["channels_last"] if self.channels_last else []) + \
            (["CUDA graphs"] if self.cuda_graphs else [])
        return f"torch on {self.device} ({', '.join(extras)})"

    def _captured_for(self, shape: tuple[int, ...]):
        """The CUDA graph for one input shape, captured on first use; the CUDA_GRAPHS_KEPT most recent
        are kept (each holds its own memory pool)."""
        torch = self.torch
        if shape in self._captured:
            self._captured.move_to_end(shape)
            return self._captured[shape]
        static_input = torch.zeros(shape, dtype=torch.uint8, device=self.device)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up outside the capture, as CUDA graphs require
            for _ in range(3):
                self.graph(static_input)
        torch.cuda.current_stream().wait_stream(stream)
        cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(cuda_graph):
            static_outputs = self.graph(static_input)
        self._captured[shape] = (static_input, static_outputs, cuda_graph)
        if len(self._captured) > CUDA_GRAPHS_KEPT:
            self._captured.popitem(last=False)
        return self._captured[shape]

    def infer_on_device(self, rgb: np.ndarray) -> DeviceFrame:
        return self.infer_batch_on_device([rgb])[0]

    def device_batch_limit(self, size: tuple[int, int]) -> int:
        return MAX_BATCH

    def infer_batch_on_device(self, rgbs: list[np.ndarray]) -> list[DeviceFrame]:
        """Images of one size through the graph at once (a CUDA graph is captured per batch shape)."""
        torch = self.torch
        shape = (len(rgbs),) + rgbs[0].shape
        with torch.inference_mode():
            if self.device == "cpu":
                image = torch.from_numpy(stacked(rgbs))
                outputs = self.graph(image)
            elif not self.cuda_graphs:
                image = torch.empty(shape, dtype=torch.uint8, device=self.device)
                for index, rgb in enumerate(rgbs):
                    self.staging.upload(rgb, image[index])
                outputs = self.graph(image)
            else:  # straight from pinned host memory into the captured graph's input
                image, outputs, cuda_graph = self._captured_for(shape)
                for index, rgb in enumerate(rgbs):
                    self.staging.upload(rgb, image[index])
                cuda_graph.replay()
        return [DeviceFrame(image[index], tuple(output[index] for output in outputs)) for index in range(len(rgbs))]
