"""Files the package ships (models, configs, Fast DDS profiles): share/hydranet_ros/<folder> when
installed through colcon, else the source tree's <folder>. No rclpy: the offline tools use it too."""
from __future__ import annotations

from pathlib import Path

PACKAGE = "hydranet_ros"


def shipped_folders(folder: str) -> list[Path]:
    """Where `folder` (models, config) is looked up, the install's share folder first."""
    folders = [Path(__file__).resolve().parents[1] / folder]
    try:
        from ament_index_python.packages import get_package_share_directory
        folders.insert(0, Path(get_package_share_directory(PACKAGE)) / folder)
    except (ImportError, LookupError, ValueError, OSError):  # not installed through colcon
        pass
    return folders


def shipped_file(folder: str, name: str | Path) -> Path:
    """The first shipped folder/name that exists; the source tree's path when none does."""
    candidates = [base / name for base in shipped_folders(folder)]
    return next((path for path in candidates if path.is_file()), candidates[-1])
