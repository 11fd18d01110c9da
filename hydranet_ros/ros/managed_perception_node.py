"""managed_perception_node: perception_node as a lifecycle (managed) node, for Nav2's lifecycle manager.

    configure   loads the model and builds the backend (TensorRT engines, OpenVINO models, int8 graphs)
    activate    subscribes to the camera; frames are processed and /diagnostics reports
    deactivate  unsubscribes; the frame in progress finishes
    cleanup     releases the backend and the publishers
    shutdown    from any state: deactivate and cleanup as needed

Topics and parameters are perception_node's (README). A configure that fails (a missing model, a
backend that cannot start) logs why and returns FAILURE, leaving the node unconfigured.
"""
from __future__ import annotations

import sys

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from hydranet_ros.ros.perception_node import PerceptionCore, StartupError, run


class ManagedPerceptionNode(PerceptionCore, LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("perception_node", **kwargs)
        self._setup()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._load()
        except StartupError as error:
            self.get_logger().error(f"cannot configure: {error}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unload()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        if self.perception is not None:
            self._unload()
        return TransitionCallbackReturn.SUCCESS


def main(args=None):
    return run(ManagedPerceptionNode, args)


if __name__ == "__main__":
    sys.exit(main())
