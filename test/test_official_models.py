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
    """Serves files from a dict; `truncate` sends the full Content-Length but half the bytes."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.truncate, self.requests = files, False, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if server.truncate else body)

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
                             "-p", f"model_path:=official:{NAME}"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1
    assert "hydranet models download ExpKITTI_joint --accept-licence" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
