"""The studio as a hostile user meets it: raw HTTP against a launched app (Host, Origin, uploads, figure files,
session ends) and launch.py stopped by a signal."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from conftest import free_port

from sagan_viz.app import LAUNCH_SETTINGS, build_app
from sagan_viz.app.errors import register_private_folder, without_private_paths
from sagan_viz.app.security import host_names_for, split_host
from sagan_viz.app.session_files import StudioFiles

REPOSITORY = Path(__file__).resolve().parents[1]
UPLOAD_LIMIT = 4 * 2**20  # small, so that a test can go over it


class StudioSession:
    """One client session of a launched studio, spoken to as its page does (Gradio's queue API)."""

    def __init__(self, url: str, session_hash: str, origin: str | None = None) -> None:
        self.url, self.session_hash = url, session_hash
        headers = {"Origin": origin} if origin else {}
        self.http = httpx.Client(base_url=url, timeout=60, headers=headers)
        self.config = self.http.get("/config").json()
        self.components = {c["id"]: c for c in self.config["components"]}

    def component(self, elem_id: str) -> int:
        return next(i for i, c in self.components.items() if c.get("props", {}).get("elem_id") == elem_id)

    def defaults(self, dependency) -> list:
        return [self.components[i].get("props", {}).get("value") for i in dependency["inputs"]]

    def dependency(self, elem_id: str, event: str):
        target = [self.component(elem_id), event]
        return next(d for d in self.config["dependencies"] if target in [list(t) for t in d["targets"]])

    def join(self, elem_id: str, event: str, data: list | None = None, event_data=None) -> httpx.Response:
        dependency = self.dependency(elem_id, event)
        body = {"data": self.defaults(dependency) if data is None else data, "event_data": event_data,
                "fn_index": dependency["id"], "trigger_id": self.component(elem_id), "session_hash": self.session_hash}
        return self.http.post("/gradio_api/queue/join", json=body)

    def call(self, elem_id: str, event: str, data: list | None = None, event_data=None) -> dict:
        """The finished event's message (process_completed)."""
        joined = self.join(elem_id, event, data, event_data)
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                    return message
        raise AssertionError("the event never completed")

    def generate_and_click(self, x: float = 6.25, y: float = 12.5) -> list:
        """Generate with the page's defaults, then click (x, y): the click's outputs."""
        assert self.call("inspect-generate", "click")["success"]
        answer = self.call("inspect-image", "select", [None, "G.attn0"], {"index": [x, y], "value": None})
        assert answer["success"], answer
        return answer["output"]["data"]

    def upload(self, name: str, content: bytes) -> httpx.Response:
        return self.http.post("/gradio_api/upload", files={"files": (name, content, "application/octet-stream")})


def figure_of(outputs: list) -> dict:
    """The figure's file (outputs: image, figure, details, grid, download, recipe, state)."""
    return outputs[1]


@pytest.fixture(scope="module")
def studio(tiny_checkpoint_dir):
    """A launched studio on a free port with a 4 MB upload limit: (url, demo)."""
    demo = build_app(tiny_checkpoint_dir, device="cpu")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                max_file_size=UPLOAD_LIMIT, **LAUNCH_SETTINGS)
    yield f"http://127.0.0.1:{port}", demo
    demo.close()


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


# Host and Origin: DNS rebinding and cross-site requests.

def test_only_the_studio_s_own_host_names_are_served(studio):
    url, _ = studio
    port = int(url.rsplit(":", 1)[1])
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        assert httpx.get(f"{url}/config", headers={"Host": host}).status_code == 200, host
    for host in (f"rebound.attacker.example:{port}", "rebound.attacker.example", f"127.0.0.1:{port + 1}", "", "a:b:c"):
        answer = httpx.get(f"{url}/config", headers={"Host": host})
        assert answer.status_code == 400, host
    assert httpx.get(f"{url}/", headers={"Host": f"evil.example:{port}"}).status_code == 400


def test_cross_origin_uploads_and_queue_joins_are_refused_and_same_origin_works(studio, tiny_checkpoint):
    url, _ = studio
    upload_folder = Path(studio[1].GRADIO_CACHE)
    before = files_under(upload_folder)
    for origin in ("http://evil.example", "null", f"{url}.evil.example", "http://localhost:1"):
        hostile = StudioSession(url, f"cross-{len(origin)}", origin=origin)
        assert hostile.upload("weights.safetensors", b"x" * 100).status_code == 403, origin
        assert hostile.join("inspect-generate", "click").status_code == 403, origin
    assert files_under(upload_folder) == before  # nothing was stored
    same = StudioSession(url, "same-origin", origin=url)
    assert same.upload("weights.safetensors", tiny_checkpoint.read_bytes()).status_code == 200
    assert same.generate_and_click()  # a page of the studio itself works
    assert StudioSession(url, "no-origin").join("inspect-generate", "click").status_code == 200  # non-browser client


# Uploads: size, names in messages, where they are kept.

def test_an_upload_over_the_limit_is_refused_before_it_is_stored(studio):
    url, demo = studio
    upload_folder = Path(demo.GRADIO_CACHE)
    before = files_under(upload_folder)
    session = StudioSession(url, "big-upload")
    answer = session.upload("huge.safetensors", b"\0" * (UPLOAD_LIMIT + 2**20))  # declares its size
    assert answer.status_code == 413 and "limit" in answer.text

    def chunks():  # no Content-Length: Gradio's max_file_size stops it while it streams
        boundary = b"--sagan-boundary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="files"; filename="huge.safetensors"\r\n\r\n'
        for _ in range(UPLOAD_LIMIT // 2**20 + 2):
            yield b"\0" * 2**20
        yield b"\r\n" + boundary + b"--\r\n"

    streamed = session.http.post("/gradio_api/upload", content=chunks(),
                                 headers={"Content-Type": "multipart/form-data; boundary=sagan-boundary"})
    assert streamed.status_code == 413
    assert files_under(upload_folder) == before


def test_an_upload_the_disk_has_no_room_for_is_refused(studio, monkeypatch):
    from sagan_viz.app import security

    url, demo = studio
    monkeypatch.setattr(security, "DISK_RESERVE", 2**62)  # as if the disk were full
    before = files_under(Path(demo.GRADIO_CACHE))
    assert StudioSession(url, "full-disk").upload("weights.safetensors", b"x" * 100).status_code == 507
    assert files_under(Path(demo.GRADIO_CACHE)) == before


def test_a_bad_upload_names_the_file_by_its_own_name_and_is_deleted(studio):
    url, demo = studio
    session = StudioSession(url, "bad-upload")
    stored = session.upload("my notes.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ").json()[0]
    file_data = {"path": stored, "orig_name": "my notes.safetensors", "meta": {"_type": "gradio.FileData"}}
    answer = session.call("inspect-upload", "upload", [file_data])
    message = answer["output"]["error"]
    assert not answer["success"] and "my notes.safetensors" in message
    for private in (str(Path(stored).parent), str(demo.session_files.root), str(Path(demo.GRADIO_CACHE))):
        assert private not in message
    assert not Path(stored).exists()
    assert not [path for path in files_under(demo.session_files.uploads) if path.name == "my notes.safetensors"]


def test_a_good_upload_moves_into_its_session_s_folder_which_is_never_served(studio, tiny_checkpoint):
    url, demo = studio
    session = StudioSession(url, "good-upload")
    stored = session.upload("mine.safetensors", tiny_checkpoint.read_bytes()).json()[0]
    file_data = {"path": stored, "orig_name": "mine.safetensors", "meta": {"_type": "gradio.FileData"}}
    answer = session.call("inspect-upload", "upload", [file_data])
    assert answer["success"], answer
    assert "mine.safetensors" in answer["output"]["data"][-1]  # "Loaded mine.safetensors · step 2 ..."
    (kept,) = [path for path in files_under(demo.session_files.uploads) if path.name == "mine.safetensors"]
    assert not Path(stored).exists()
    assert session.http.get(f"/gradio_api/file={kept}").status_code in (403, 404)


# Figure files: unguessable, per session, gone with the session.

def test_figure_names_are_unguessable_and_one_session_s_folder_is_not_another_s(studio):
    url, _ = studio
    first = StudioSession(url, "names-a").generate_and_click()
    second = StudioSession(url, "names-b").generate_and_click()
    first_path, second_path = Path(figure_of(first)["path"]), Path(figure_of(second)["path"])
    assert re.fullmatch(r"figure-[A-Za-z0-9_-]{22}\.png", first_path.name)  # 128 random bits
    assert first_path.parent != second_path.parent
    assert httpx.get(figure_of(first)["url"]).status_code == 200
    neighbour = first_path.with_name("figure-" + "A" * 22 + ".png")
    assert httpx.get(f"{url}/gradio_api/file={neighbour}").status_code in (403, 404)


def test_a_session_s_figure_and_download_survive_many_clicks_of_other_sessions(studio):
    url, _ = studio
    mine = StudioSession(url, "patient-user").generate_and_click()
    figure, download = figure_of(mine)["url"], mine[4]["url"]
    busy = StudioSession(url, "busy-user")
    busy.generate_and_click()
    for number in range(25):  # 75 files: more than a session keeps of its own
        busy.call("inspect-image", "select", [None, "G.attn0"], {"index": [0.6 * number, 18.75], "value": None})
    assert httpx.get(figure).status_code == 200 and httpx.get(download).status_code == 200


def test_a_session_keeps_its_newest_files_and_never_deletes_another_s(tmp_path):
    files = StudioFiles(tmp_path, keep_pngs=3)
    image = np.zeros((4, 4, 3), np.uint8)

    class Request:  # what Gradio passes: only the session is read
        def __init__(self, session_hash):
            self.session_hash = session_hash

    other = files.write_png(Request("other"), "inspect", image, "figure")
    mine = [files.write_png(Request("mine"), "inspect", image, "figure") for _ in range(5)]
    assert [Path(p).exists() for p in mine] == [False, False, True, True, True]
    assert Path(other).exists()
    files.end_session(Request("mine"))
    assert not any(Path(p).exists() for p in mine) and Path(other).exists()


def open_heartbeat(url: str, session_hash: str) -> socket.socket:
    """The page's heartbeat connection; closing the socket is the page going away."""
    host, port = url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)))
    connection.sendall(f"GET /gradio_api/heartbeat/{session_hash} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    connection.recv(1024)  # the stream has started
    return connection


def test_a_session_s_figures_and_upload_are_removed_when_its_page_goes_away(studio, tiny_checkpoint):
    url, demo = studio
    heartbeat = open_heartbeat(url, "leaving-user")
    session = StudioSession(url, "leaving-user")
    stored = session.upload("leaving.safetensors", tiny_checkpoint.read_bytes()).json()[0]
    file_data = {"path": stored, "orig_name": "leaving.safetensors", "meta": {"_type": "gradio.FileData"}}
    assert session.call("inspect-upload", "upload", [file_data])["success"]
    (upload,) = [path for path in files_under(demo.session_files.uploads) if path.name == "leaving.safetensors"]
    outputs = session.generate_and_click()
    figures = Path(figure_of(outputs)["path"]).parents[1]
    assert files_under(figures)
    heartbeat.close()
    deadline = time.monotonic() + 20
    while (figures.exists() or upload.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not figures.exists() and not upload.exists()


def test_messages_name_private_files_by_their_own_names(tmp_path):
    register_private_folder(tmp_path / "private")
    message = f"{tmp_path}/private/Qx_9/my weights.safetensors: truncated; also {tmp_path}/private/a/b:c.bin"
    assert without_private_paths(message) == "my weights.safetensors: truncated; also b:c.bin"
    assert without_private_paths("checkpoints/run/step_1.safetensors: bad") == "checkpoints/run/step_1.safetensors: bad"


def test_host_names_follow_host_share_and_allowed_hosts():
    assert split_host("LocalHost:7860") == ("localhost", 7860) and split_host("[::1]:80") == ("::1", 80)
    assert split_host("x:y") is None and split_host("example.org") == ("example.org", 80)
    assert host_names_for("127.0.0.1") == {"127.0.0.1", "localhost"}
    assert host_names_for("192.168.1.5", extra_hosts=("studio.lan",)) == {"127.0.0.1", "localhost", "192.168.1.5",
                                                                         "studio.lan"}
    assert socket.gethostname().lower() in host_names_for("0.0.0.0")
    assert host_names_for("127.0.0.1", share=True) is None and host_names_for("127.0.0.1", extra_hosts=("*",)) is None


# launch.py stopped by a signal: nothing of it stays in the temporary folder.

def wait_for(url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            if httpx.get(f"{url}/config", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_launch_py_and_removes_every_temporary_folder(signal_number, tiny_checkpoint_dir, tiny_checkpoint,
                                                                     tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    port = free_port()
    environment = {**os.environ, "TMPDIR": str(temporary), "OMP_NUM_THREADS": "1"}
    environment.pop("GRADIO_TEMP_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "launch.py", "--checkpoints", str(tiny_checkpoint_dir), "--device", "cpu", "--port",
         str(port), "--no-browser"], cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url, process)
        session = StudioSession(url, "before-the-signal")
        stored = session.upload("mine.safetensors", tiny_checkpoint.read_bytes()).json()[0]
        file_data = {"path": stored, "orig_name": "mine.safetensors", "meta": {"_type": "gradio.FileData"}}
        assert session.call("inspect-upload", "upload", [file_data])["success"]
        session.generate_and_click()
        assert len(files_under(temporary)) >= 4  # the upload and a click's three PNG files
        process.send_signal(signal_number)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert list(temporary.iterdir()) == []


def test_an_ended_session_s_uploaded_model_leaves_the_model_cache(tmp_path, tiny_checkpoint):
    from sagan_viz.app.catalog import ModelCache
    from sagan_viz.app.session_files import StudioFiles, session_of

    cache = ModelCache(torch.device("cpu"))
    files = StudioFiles(tmp_path / "studio", on_upload_removed=cache.forget)
    session = files._session(session_of(None))  # what keep_upload does with an upload Gradio stored
    folder = files.uploads / session.name / "one"
    folder.mkdir(parents=True)
    upload = folder / "mine.safetensors"
    upload.write_bytes(tiny_checkpoint.read_bytes())
    session.uploads.append(folder)
    first = cache.get(upload)
    assert cache.get(upload) is first  # cached while the session lives
    files.end_session(None)  # the page went away
    assert not upload.exists()
    upload.parent.mkdir(parents=True)
    upload.write_bytes(tiny_checkpoint.read_bytes())
    assert cache.get(upload) is not first  # forgotten: a new file at that path is read afresh
