"""ament_python package; also installs with plain pip (see README)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hydranet_ros"

setup(
    name=PACKAGE,
    version="0.2.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={f"{PACKAGE}.model": ["label_spaces/*.json"], f"{PACKAGE}.training": ["teacher_maps/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
        (f"share/{PACKAGE}/models", glob("models/*.pt") + glob("models/*.md") + glob("models/*.json")),
    ],
    install_requires=["numpy", "opencv-python-headless", "simplejpeg", "pyyaml", "tqdm"],
    zip_safe=False,
    maintainer="hydranet_ros maintainers",
    maintainer_email="maintainers@hydranet-ros.dev",
    description="HydraNet joint segmentation and depth for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "hydranet = hydranet_ros.cli.main:main",
            "perception_node = hydranet_ros.ros.perception_node:main",
            "managed_perception_node = hydranet_ros.ros.managed_perception_node:main",
        ],
    },
)
