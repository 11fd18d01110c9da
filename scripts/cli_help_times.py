#!/usr/bin/env python3
"""Prints, as JSON, how long `hydranet --help` and `hydranet VERB --help` take for every verb (the
median of --repeats runs of the installed command in a new process, in milliseconds):
    .venv/bin/python scripts/cli_help_times.py [--repeats 5]"""
import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hydranet_ros.cli.main import VERBS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    command = [str(Path(sys.executable).with_name("hydranet"))]
    times = {}
    for verb in ["", *VERBS]:
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(command + ([verb] if verb else []) + ["--help"], check=True, capture_output=True)
            runs.append((time.perf_counter() - start) * 1e3)
        times[f"hydranet {verb} --help".replace("  ", " ")] = round(statistics.median(runs), 1)
    print(json.dumps({"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python "
                                 f"{platform.python_version()}", "repeats": repeats, "median_ms": times,
                      "slowest_ms": max(times.values())}, indent=1))


if __name__ == "__main__":
    main()
