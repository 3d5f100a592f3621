"""`python -m sagan_viz.download` without a network: the Hub's downloader is replaced; failures are one line."""
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub.errors import LocalEntryNotFoundError

from sagan_viz.download import MODELS, WEIGHT_FILES, main

REPOSITORY = Path(__file__).resolve().parents[1]
PROG = "python -m sagan_viz.download"


@pytest.fixture
def hub_calls(monkeypatch) -> list[dict]:
    """huggingface_hub.hf_hub_download replaced by one that writes small files and records its arguments."""
    calls = []

    def fake_download(repo_id, filename, *, revision=None, local_dir=None, **options):
        calls.append(dict(repo_id=repo_id, filename=filename, revision=revision, local_dir=Path(local_dir)))
        target = Path(local_dir) / filename
        target.write_text(f"{repo_id}/{filename}")
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    return calls


def offline_hub(monkeypatch, after_files: int = 0) -> None:
    """A downloader that fails as huggingface_hub does offline, after writing `after_files` files (a partial run)."""
    written = []

    def failing_download(repo_id, filename, *, local_dir=None, **options):
        if len(written) >= after_files:
            Path(local_dir, filename).write_bytes(b"half a file")
            try:
                raise socket.gaierror(-2, "Name or service not known")
            except socket.gaierror as error:
                raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub and "
                                              "we cannot find the requested files in the local cache.") from error
        written.append(filename)
        Path(local_dir, filename).write_text("complete")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", failing_download)


def run_failing(argv, capsys, code: int) -> str:
    """Run main(argv), expect exit `code` and exactly one stderr line, no traceback; return that line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == code
    error = capsys.readouterr().err
    assert "Traceback" not in error
    lines = error.strip().splitlines()
    assert len(lines) == 1, error
    assert lines[0].startswith(f"{PROG}: error: ")
    return lines[0]


def leftovers(parent: Path) -> list[str]:
    """Staging folders the download left beside its target."""
    return [path.name for path in parent.iterdir() if ".partial-" in path.name] if parent.exists() else []


def test_success_puts_both_files_in_the_folder_and_prints_the_launch_argument(hub_calls, tmp_path, capsys):
    target = tmp_path / "weights" / "biggan-deep-128"
    assert main(["biggan-deep-128", "--to", str(target)]) == target
    assert sorted(path.name for path in target.iterdir()) == sorted(WEIGHT_FILES)
    assert (target / "pytorch_model.bin").read_text() == "osanseviero/BigGAN-deep-128/pytorch_model.bin"
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"python launch.py --checkpoint {target}"
    assert leftovers(target.parent) == []


def test_files_come_from_the_pinned_hub_commit_through_a_staging_folder_beside_the_target(hub_calls, tmp_path):
    target = tmp_path / "biggan-deep-128"
    main(["biggan-deep-128", "--to", str(target)])
    hub = MODELS["biggan-deep-128"]
    assert [call["filename"] for call in hub_calls] == list(WEIGHT_FILES)
    assert all(call["repo_id"] == hub.repo_id == "osanseviero/BigGAN-deep-128" for call in hub_calls)
    assert all(call["revision"] == hub.revision and len(hub.revision) == 40 for call in hub_calls)
    assert all(call["local_dir"].parent == tmp_path and call["local_dir"] != target for call in hub_calls)


def test_the_default_folder_is_models_name_under_the_working_directory(hub_calls, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["biggan-deep-128"])
    assert (tmp_path / "models" / "biggan-deep-128" / "config.json").is_file()
    assert capsys.readouterr().out.strip().splitlines()[-1] == "python launch.py --checkpoint models/biggan-deep-128"


def test_a_folder_with_a_space_is_printed_ready_to_paste(hub_calls, tmp_path, capsys):
    target = tmp_path / "my models" / "b128"
    main(["biggan-deep-128", "--to", str(target)])
    assert shlex.split(capsys.readouterr().out.strip().splitlines()[-1])[-1] == str(target)


def test_offline_is_one_line_with_the_cause_and_where_to_fetch_by_hand(monkeypatch, tmp_path, capsys):
    offline_hub(monkeypatch)
    target = tmp_path / "biggan-deep-128"
    line = run_failing(["biggan-deep-128", "--to", str(target)], capsys, code=1)
    assert "cannot download biggan-deep-128 from the Hugging Face Hub (no network?)" in line
    assert "gaierror: [Errno -2] Name or service not known" in line
    assert f"from https://huggingface.co/osanseviero/BigGAN-deep-128 by hand into {target}." in line
    assert not target.exists() and leftovers(tmp_path) == []


def test_a_download_broken_after_the_first_file_leaves_nothing_in_the_folder(monkeypatch, tmp_path, capsys):
    offline_hub(monkeypatch, after_files=1)  # config.json arrives, pytorch_model.bin breaks half way
    target = tmp_path / "biggan-deep-128"
    run_failing(["biggan-deep-128", "--to", str(target)], capsys, code=1)
    assert not target.exists() and leftovers(tmp_path) == []


def test_a_failed_download_keeps_an_earlier_complete_download(monkeypatch, tmp_path, capsys):
    target = tmp_path / "biggan-deep-128"
    target.mkdir()
    (target / "pytorch_model.bin").write_text("the earlier, complete weights")
    offline_hub(monkeypatch, after_files=1)
    run_failing(["biggan-deep-128", "--to", str(target)], capsys, code=1)
    assert [path.name for path in target.iterdir()] == ["pytorch_model.bin"]
    assert (target / "pytorch_model.bin").read_text() == "the earlier, complete weights"


@pytest.mark.parametrize("name", ["biggan-deep-256", "biggan-deep-512"])
def test_a_model_without_a_known_hub_repository_names_the_original_files(name, hub_calls, tmp_path, capsys):
    target = tmp_path / name
    line = run_failing([name, "--to", str(target)], capsys, code=1)
    assert f"no Hugging Face Hub repository is known to hold {name}" in line
    assert f"https://s3.amazonaws.com/models.huggingface.co/biggan/{name}-pytorch_model.bin" in line
    assert f"https://s3.amazonaws.com/models.huggingface.co/biggan/{name}-config.json" in line
    assert hub_calls == [] and not tmp_path.joinpath(name).exists()


def test_a_file_in_place_of_the_folder_is_refused_before_downloading(hub_calls, tmp_path, capsys):
    target = tmp_path / "weights.bin"
    target.write_text("not a folder")
    line = run_failing(["biggan-deep-128", "--to", str(target)], capsys, code=1)
    assert f"{target} is a file" in line and hub_calls == []


def test_an_unknown_name_is_an_argparse_error_listing_the_choices(hub_calls, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["biggan-deep-64"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after argparse's usage line
    assert error.startswith(f"{PROG}: error: argument NAME: invalid choice: 'biggan-deep-64'")
    assert all(name in error for name in MODELS) and hub_calls == []


def test_help_runs_as_a_module_and_lists_the_models():
    result = subprocess.run([sys.executable, "-m", "sagan_viz.download", "--help"], cwd=REPOSITORY,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {PROG} [-h] [--to DIR] NAME")
    assert all(name in result.stdout for name in MODELS)
