"""Model names a user can give (model_path, --model): a file, a shipped model's name, or
`official:NAME` for an official checkpoint downloaded with `hydranet models download NAME`."""
from __future__ import annotations

from pathlib import Path

from hydranet_ros.model import official
from hydranet_ros.model.model_file import DEFAULT_MODEL
from hydranet_ros.shipped import shipped_file

# The shipped models' licences, as models/README.md ("Licence") gives them: the code is Apache-2.0,
# weights carry the terms of the data they learned from.
SHIPPED_LICENCES = {
    "hydranet_street.pt": "research and non-commercial use only: trained on CamVid (CC BY-NC 4.0) and KITTI "
                          "(CC BY-NC-SA 3.0) frames, with Cityscapes-trained teachers",
    "hydranet_indoor.pt": "Apache-2.0: trained on generated rooms only",
}


def resolve_model_path(value: str) -> Path:
    """An existing path as given; `official:NAME` from the user cache (a one-line error saying how to
    download it when it is not there); a bare name (or empty: the street model) from the shipped models,
    share/hydranet_ros/models when installed, else the source tree's models/."""
    if value.startswith(official.PREFIX):
        return official.model_file(value[len(official.PREFIX):])
    path = Path(value or DEFAULT_MODEL)
    if path.is_file() or path.parent != Path("."):
        return path
    found = shipped_file("models", path)
    return found if found.is_file() else path
