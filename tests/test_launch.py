"""`python launch.py`: private by default, a free port, clear errors for bad flags (the server is not started)."""
from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
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
    for flag in ("--checkpoint", "--device", "--host", "--port", "--share", "--no-browser", "--allow-host",
                 "--max-upload-mb"):
        assert flag in done.stdout


def test_help_does_not_import_torch_gradio_or_the_studio():
    probe = ("import runpy, sys\n"
             "sys.argv = ['launch.py', '--help']\n"
             "try:\n"
             "    runpy.run_path('launch.py', run_name='__main__')\n"
             "except SystemExit as stop:\n"
             "    assert stop.code == 0, stop.code\n"
             "heavy = sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'gradio', 'numpy'))\n"
             "print('imported:', heavy)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPOSITORY, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "imported: []"


def test_device_choices_are_the_one_list_the_library_and_the_trainer_use():
    from sagan_viz.devices import DEVICE_CHOICES
    from training.train import build_parser as training_parser

    def device_choices(parser):
        (action,) = [action for action in parser._actions if "--device" in action.option_strings]
        return tuple(action.choices)

    assert device_choices(launch.build_parser()) == DEVICE_CHOICES == device_choices(training_parser())
    assert set(DEVICE_CHOICES) == {"auto", "cpu", "cuda", "mps"}


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


def test_uploads_are_limited_to_256_mb_by_default_and_the_flag_changes_it(launched, tiny_checkpoint_dir):
    launch.main(["--checkpoints", str(tiny_checkpoint_dir), "--device", "cpu"])
    launch.main(["--checkpoints", str(tiny_checkpoint_dir), "--device", "cpu", "--max-upload-mb", "300"])
    assert [settings["max_file_size"] for settings in launched] == [256 * 2**20, 300 * 2**20]
    assert 230 * 10**6 < launched[0]["max_file_size"]  # BigGAN-deep-512's weights fit


def test_every_launch_gets_the_request_guard_with_the_hosts_asked_for(launched, tiny_checkpoint_dir):
    from sagan_viz.app.security import RequestGuard

    launch.main(["--checkpoints", str(tiny_checkpoint_dir), "--device", "cpu", "--allow-host", "studio.lan"])
    launch.main(["--checkpoints", str(tiny_checkpoint_dir), "--device", "cpu", "--share"])
    policies = []
    for settings in launched:
        (middleware,) = settings["app_kwargs"]["middleware"]
        assert middleware.cls is RequestGuard
        policies.append(middleware.kwargs["policy"])
    assert policies[0].host_names == {"127.0.0.1", "localhost", "studio.lan"}
    assert policies[0].max_upload_bytes == 256 * 2**20
    assert policies[1].host_names is None  # a share link arrives under its own gradio.live name


def test_the_private_temporary_folder_is_gone_and_tempfile_restored_after_launch(launched, tiny_checkpoint_dir,
                                                                                monkeypatch):
    seen = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: seen.append(Path(tempfile.gettempdir())))
    before = tempfile.tempdir
    launch.main(["--checkpoints", str(tiny_checkpoint_dir), "--device", "cpu"])
    (private,) = seen
    assert private.name.startswith("sagan-viz-") and not private.exists()
    assert tempfile.tempdir == before


def test_a_non_positive_upload_limit_is_refused(launched, tiny_checkpoint_dir, capsys):
    with pytest.raises(SystemExit):
        launch.main(["--checkpoints", str(tiny_checkpoint_dir), "--max-upload-mb", "0"])
    assert "--max-upload-mb" in capsys.readouterr().err and not launched
