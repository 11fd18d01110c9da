"""`hydranet <verb>`: one command line for every offline tool.

Each verb's arguments and its run function live in a cli/ module by group; the work itself is in
the library (model/, data/, training/, inference/, apps/), imported only when the verb runs, so
`hydranet --help` and `hydranet VERB --help` load no torch, onnx, OpenVINO or rclpy.
"""
from __future__ import annotations

import argparse
import signal
import sys

from hydranet_ros.cli import apps, data, deploy, models, training
from hydranet_ros.errors import UserError

# verb -> (one-line help, add_arguments(parser), run(args)), in the order --help lists them
VERBS = {**apps.VERBS, **deploy.VERBS, **data.VERBS, **training.VERBS, **models.VERBS}


class OneLineErrors(argparse.ArgumentParser):
    """An argument error is one line, as every other error a user can fix (no usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(
        prog="hydranet",
        description="HydraNet joint semantic segmentation and metric depth: tools for training, "
                    "export, inference, benchmarks and ROS 2 bags. `hydranet VERB --help` for details.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (help_text, add_arguments, run) in VERBS.items():
        sub = verbs.add_parser(verb, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that a verb cleans up (its workers, temporaries) as on Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if argv is None:  # the command line's own process, not a caller's
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return int(args.run(args) or 0)
    except UserError as error:
        print(f"hydranet {args.verb}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"hydranet {args.verb}: {'terminated' if isinstance(interrupt, Terminated) else 'interrupted'}",
              file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
