"""`python launch.py`: private by default, a free port, clear errors for bad flags (the server is not started)."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pytest

import launch

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture
def launched(monkeypatch):
    """Calls to gr.Blocks.launch, recorded instead of serving."""
    calls = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: calls.append(kwargs))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return calls


def test_help_explains_every_flag():
    done = subprocess.run([sys.executable, "launch.py", "--help"], cwd=REPOSITORY, capture_output=True, text=True)
    assert done.returncode == 0
    for flag in ("--checkpoint", "--device", "--host", "--port", "--share", "--no-browser"):
        assert flag in done.stdout


def test_defaults_listen_on_localhost_without_share_browser_or_run_history(launched, tiny_checkpoint_dir, capsys):
    launch.main(["--checkpoints", str(tiny_checkpoint_dir), "--device", "cpu"])
    (settings,) = launched
    assert settings["server_name"] == "127.0.0.1" and settings["share"] is False
    assert settings["inbrowser"] is False  # no display here
    assert settings["run_history"] is False and settings["show_error"] is False
    assert f"http://127.0.0.1:{settings['server_port']}" in capsys.readouterr().out


def test_a_busy_default_port_is_skipped():
    with socket.socket() as busy:
        try:
            busy.bind(("127.0.0.1", launch.DEFAULT_PORT))
            busy.listen()
        except OSError:
            pass  # something else holds it already: just as good
        chosen = launch.choose_port("127.0.0.1", None)
    assert chosen > launch.DEFAULT_PORT


def test_a_busy_port_asked_for_is_refused(launched, tiny_checkpoint_dir, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            launch.main(["--checkpoints", str(tiny_checkpoint_dir), "--device", "cpu", "--port", str(port)])
    assert exit_info.value.code == 2 and f"port {port}" in capsys.readouterr().err
    assert not launched


def test_a_bad_checkpoint_flag_names_the_file_and_starts_nothing(launched, tiny_checkpoint_dir, tmp_path, capsys):
    bogus = tmp_path / "weights.safetensors"
    bogus.write_bytes(b"\x00" * 40)
    with pytest.raises(SystemExit) as exit_info:
        launch.main(["--checkpoints", str(tiny_checkpoint_dir), "--device", "cpu", "--checkpoint", str(bogus)])
    assert exit_info.value.code == 2 and "weights.safetensors" in capsys.readouterr().err
    assert not launched
