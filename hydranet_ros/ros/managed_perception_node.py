"""managed_perception_node: perception_node as a lifecycle (managed) node, for Nav2's lifecycle manager.

    configure   loads the model and builds the backend (TensorRT engines, OpenVINO models, int8 graphs)
    activate    subscribes to the camera; frames are processed and /diagnostics reports
                and bonds with Nav2's lifecycle manager (heartbeats on `bond`, ros/bond.py)
    deactivate  unsubscribes and breaks the bond; the frame in progress finishes
    cleanup     releases the backend and the publishers
    shutdown    from any state: deactivate and cleanup as needed

Topics and parameters are perception_node's (docs/perception_node.md, docs/nav2.md); the outputs are lifecycle
publishers, which
publish only while the node is active. A configure that fails (a missing model, a backend that cannot
start, an unknown class in a parameter) logs why, releases what it loaded and returns FAILURE, leaving
the node unconfigured; every later transition still works.
"""
from __future__ import annotations


from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from hydranet_ros.ros.bond import Bond, bond_status_type
from hydranet_ros.ros.perception_node import (OUTPUT_QOS_OVERRIDES, PerceptionCore, StartupError, exit_process,
                                              spin_until_shutdown, stop_with_parent)


class ManagedPerceptionNode(PerceptionCore, LifecycleNode):
    """Every transition logs what it could not do and returns a result, whatever failed before it:
    a failed configure keeps nothing loaded, and cleanup and shutdown work from any state."""

    RESTART_PARAMETERS_SETTABLE = True

    def __init__(self, **kwargs):
        super().__init__("perception_node", **kwargs)
        self._setup()
        self._bond: Bond | None = None
        self._autostart_timer = self.create_timer(0.0, self._autostart) if self._value("autostart") else None

    def _autostart(self) -> None:
        """autostart: configure, then activate, once spinning (what a lifecycle manager would ask)."""
        self.destroy_timer(self._autostart_timer)
        self._autostart_timer = None
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def _start_bond(self) -> None:
        period = self._value("bond_heartbeat_period")
        if period <= 0:
            return
        status_type = bond_status_type()
        if isinstance(status_type, str):
            self.get_logger().warning(status_type)
            return
        self._bond = Bond(self, status_type, period)

    def _close_bond(self) -> None:
        if self._bond is not None:
            self._bond.close()
            self._bond = None

    def stop(self):
        if self.context.ok():
            self._close_bond()  # on exit too: the manager learns at once, not after its bond_timeout
        super().stop()

    def destroy_node(self):
        """rclpy's LifecycleNode leaves its lifecycle services (change_state, get_state, ...) behind when it
        is destroyed (rclpy 9.1): in a process that goes on, as a component container's, a client would
        find a change_state that nobody answers and wait for it (a lifecycle manager started later did)."""
        super().destroy_node()
        state_machine = getattr(self, "_state_machine", None)  # rclpy's, holding those services
        if state_machine is not None:
            state_machine.destroy_when_not_in_use()

    # Outputs are lifecycle publishers: they publish only while the node is active.
    def _output_publisher(self, message_type, topic: str, qos):
        return self.create_lifecycle_publisher(message_type, topic, qos, qos_overriding_options=OUTPUT_QOS_OVERRIDES,
                                               event_callbacks=self._matched_events())

    def _destroy_output_publisher(self, publisher) -> None:
        self.destroy_lifecycle_publisher(publisher)

    def _transition(self, name: str, step) -> TransitionCallbackReturn:
        try:
            step()
        except Exception as error:  # noqa: BLE001 - rclpy would turn it into an ERROR it does not log
            reason = str(error) if isinstance(error, StartupError) else f"{error.__class__.__name__}: {error}"
            self.get_logger().error(f"cannot {name}: {reason}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _configure(self):
        try:
            self._load()
        except Exception:
            self._unload()  # nothing half-loaded stays: the backend and any publisher go
            raise

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("configure", self._configure)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        super().on_activate(state)  # publishers first, so that the first frame is published
        return self._transition("activate", lambda: (self._start(), self._start_bond()))

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._transition("deactivate", lambda: (self._close_bond(), self._stop()))
        super().on_deactivate(state)
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("clean up", self._unload)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("shut down", lambda: (self._close_bond(), self._stop(), self._unload()))

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """After a transition raised: release everything and go back to unconfigured."""
        return self._transition("recover", lambda: (self._close_bond(), self._stop(), self._unload()))


def main(args=None):
    stop_with_parent()
    exit_process(spin_until_shutdown(ManagedPerceptionNode, args))


if __name__ == "__main__":
    main()
