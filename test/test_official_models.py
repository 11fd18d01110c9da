"""`hydranet models download`: a real HTTP server on loopback serves a checkpoint in the authors'
exact layout (test/authors_reference.py) whose git blob id the test computes itself."""
import dataclasses
import http.server
import subprocess
import threading

import pytest
import torch

from authors_reference import seeded_state_dict
from conftest import shared_path
from hydranet_ros.cli.main import main as hydranet
from hydranet_ros.model import official
from hydranet_ros.model.catalog import resolve_model_path
from hydranet_ros.model.model_file import ModelFileError, load_model

NAME = "ExpKITTI_joint"


class Server:
    """Serves files from a dict. Hostile modes: `truncate` sends the full Content-Length but half the
    bytes; `endless` sends zeros without a Content-Length until the client gives up; `trickle` one byte
    every 0.2 s; `length` replaces the Content-Length header's value."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.truncate, self.requests = files, False, []
        self.endless = self.trickle = False
        self.length = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                import time
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                if not server.endless:
                    self.send_header("Content-Length", server.length or str(len(body)))
                self.end_headers()
                try:
                    if server.endless:
                        chunk = bytes(1 << 20)
                        for _ in range(1000):  # bounded: 1 GB at most, the client stops far earlier
                            self.wfile.write(chunk)
                    elif server.trickle:
                        for byte in body[:50]:  # bounded: 10 s at most
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.2)
                    else:
                        self.wfile.write(body[:len(body) // 2] if server.truncate else body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRANET_CACHE", str(tmp_path / "cache"))
    layout = shared_path("reference", "authors_checkpoint_layout.json")
    path = tmp_path / "served.ckpt"
    torch.save({"state_dict": seeded_state_dict(layout, NAME)}, path)
    blob = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    assert official.git_blob_sha1(path) == blob  # our verification is git's own id
    monkeypatch.setitem(official.OFFICIAL, NAME, dataclasses.replace(official.OFFICIAL[NAME], git_blob_sha1=blob))
    server = Server({f"/mirror/weights/{NAME}.ckpt": path.read_bytes()})
    yield server
    server.close()


def _cache_files():
    folder = official.models_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_download_verifies_imports_and_the_name_resolves(served, capsys):
    with pytest.raises(ModelFileError, match="not downloaded yet; run: hydranet models download ExpKITTI_joint"):
        resolve_model_path(f"official:{NAME}")
    assert hydranet(["models", "download", NAME, "--base-url", served.url]) == 2  # licence not accepted
    assert "NON-COMMERCIAL" in capsys.readouterr().err and not _cache_files()
    assert hydranet(["models", "download", NAME, "--accept-licence", "--base-url", served.url]) == 0
    assert served.requests == [f"/mirror/weights/{NAME}.ckpt"]
    assert _cache_files() == [f"{NAME}.ckpt", f"{NAME}.pt"]
    model, spec = load_model(resolve_model_path(f"official:{NAME}"))
    assert spec.native_resolution and spec.focal_length_px == 721.54 and spec.provenance["official"] == NAME
    assert hydranet(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert f"official:{NAME}" in listing
    street = next(line for line in listing.splitlines() if "hydranet_street.pt" in line)
    indoor = next(line for line in listing.splitlines() if "hydranet_indoor.pt" in line)
    assert "non-commercial" in street and "Apache-2.0" not in street  # trained on CamVid and KITTI
    assert "Apache-2.0" in indoor
    # A cached file is verified again, not trusted: tampered, it is fetched anew.
    cached = official.models_dir() / f"{NAME}.ckpt"
    cached.write_bytes(cached.read_bytes()[:-1] + b"x")
    official.download(NAME, True, served.url)
    assert len(served.requests) == 2 and official.git_blob_sha1(cached) == official.OFFICIAL[NAME].git_blob_sha1


def test_wrong_hash_cut_off_download_and_no_network_leave_nothing_behind(served, monkeypatch):
    monkeypatch.setitem(official.OFFICIAL, NAME, dataclasses.replace(official.OFFICIAL[NAME], git_blob_sha1="0" * 40))
    with pytest.raises(ModelFileError, match="is not the published ExpKITTI_joint.*deleted"):
        official.download(NAME, True, served.url)
    assert _cache_files() == []
    served.truncate = True
    with pytest.raises(ModelFileError, match="cut off"):
        official.download(NAME, True, served.url)
    assert _cache_files() == []
    served.close()
    with pytest.raises(ModelFileError, match=f"cannot download {served.url}/weights/{NAME}.ckpt"):
        official.download(NAME, True, served.url)
    assert _cache_files() == []


def test_the_node_stops_with_the_download_command_when_an_official_model_is_missing(tmp_path):
    import os
    import sys
    pytest.importorskip("rclpy")
    env = os.environ | {"HYDRANET_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "hydranet_ros.ros.perception_node", "--ros-args",
                             "-p", f"model_path:=official:{NAME}"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1
    assert "hydranet models download ExpKITTI_joint --accept-licence" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_hostile_downloads_end_in_one_line_and_leave_nothing_behind(served, monkeypatch):
    """An endless body used to fill the disk before the hash check, a trickle never timed out, a
    non-numeric Content-Length and a folder in the checkpoint's place gave tracebacks."""
    import time
    served.endless = True
    start = time.monotonic()
    with pytest.raises(ModelFileError, match=r"sends more than \d+ MiB, more than ExpKITTI_joint can be"):
        official.download(NAME, True, served.url)
    assert time.monotonic() - start < 30 and _cache_files() == []
    served.endless, served.length = False, str(10 ** 12)  # announced far beyond the cap: refused at once
    with pytest.raises(ModelFileError, match="more than ExpKITTI_joint can be"):
        official.download(NAME, True, served.url)
    served.length = "abc"  # not a number: ignored, the hash still judges the body
    assert official.download(NAME, True, served.url).is_file()
    official.models_dir().joinpath(f"{NAME}.ckpt").unlink()
    served.length, served.trickle = None, True
    monkeypatch.setattr(official, "DOWNLOAD_DEADLINE_S", 1.0)
    with pytest.raises(ModelFileError, match=r"took more than 1 s"):
        official.download(NAME, True, served.url)
    assert [name for name in _cache_files() if name.endswith(".part")] == []


def test_partial_downloads_of_killed_processes_are_removed_and_a_folder_in_place_is_named(served):
    folder = official.models_dir()
    folder.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = folder / f".{NAME}.ckpt.{dead.pid}.part"  # what SIGKILL mid-download leaves
    stale.write_bytes(b"half a checkpoint")
    official.download(NAME, True, served.url)
    assert not stale.exists()
    (folder / f"{NAME}.ckpt").unlink()
    (folder / f"{NAME}.ckpt").mkdir()
    with pytest.raises(ModelFileError, match=f"{NAME}.ckpt is a folder where the downloaded checkpoint belongs"):
        official.download(NAME, True, served.url)


def test_each_official_checkpoint_knows_its_tensor_bytes_from_the_published_layout():
    import json
    import numpy as np
    layout = json.loads(shared_path("reference", "authors_checkpoint_layout.json").read_text())
    itemsize = {"float32": 4, "float64": 8, "int64": 8}
    for name, checkpoint in official.OFFICIAL.items():
        tensors = layout[name]["state_dict"].values()
        assert checkpoint.tensor_bytes == sum(int(np.prod(shape)) * itemsize[dtype] for shape, dtype in tensors)
