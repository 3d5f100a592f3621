"""`python -m sagan_viz.download NAME`: fetch pretrained BigGAN-deep weights (config.json + pytorch_model.bin, the
layout of pytorch-pretrained-biggan) from the Hugging Face Hub into a folder the studio opens.

Example:
    python -m sagan_viz.download biggan-deep-128          # into models/biggan-deep-128
    python launch.py --checkpoint models/biggan-deep-128

The package's original files (https://s3.amazonaws.com/models.huggingface.co/biggan/NAME-config.json and
NAME-pytorch_model.bin) live outside the Hub; a model with no Hub repository known to hold them in this layout
is refused with those addresses, to be fetched by hand.
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

WEIGHT_FILES = ("config.json", "pytorch_model.bin")
ORIGINAL_URL = "https://s3.amazonaws.com/models.huggingface.co/biggan/{name}-{filename}"


@dataclass(frozen=True)
class HubWeights:
    """Where one model's two files live on the Hub: a repository, pinned to the commit whose files were checked."""

    repo_id: str | None
    revision: str | None = None

    @property
    def url(self) -> str | None:
        """The repository's page, for fetching by hand."""
        return f"https://huggingface.co/{self.repo_id}" if self.repo_id else None


# osanseviero/BigGAN-deep-128: commit c98e5e8 ("Rename file") holds exactly .gitattributes, config.json (630 B)
# and pytorch_model.bin (211 MB); later commits add only a README and an inference-widget pipeline.py.
# No Hub repository holding the 256 or 512 model in this layout was found; add one here once its files are checked.
MODELS = {
    "biggan-deep-128": HubWeights("osanseviero/BigGAN-deep-128", "c98e5e826ec6dc3dabaa01b7703d86c34fad5342"),
    "biggan-deep-256": HubWeights(None),
    "biggan-deep-512": HubWeights(None),
}


class DownloadError(Exception):
    """A download that did not complete; the message is one line for the terminal."""


def download_weights(name: str, folder: Path) -> Path:
    """Fetch NAME's config.json and pytorch_model.bin into folder; on failure folder gets nothing."""
    hub = MODELS[name]
    if hub.repo_id is None:
        original = " and ".join(ORIGINAL_URL.format(name=name, filename=filename) for filename in WEIGHT_FILES)
        raise DownloadError(f"no Hugging Face Hub repository is known to hold {name}; download {original} by hand "
                            f"into {folder}, named {' and '.join(WEIGHT_FILES)}")
    if folder.exists() and not folder.is_dir():
        raise DownloadError(f"{folder} is a file; --to wants a folder to put {' and '.join(WEIGHT_FILES)} in")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        # Beside the target: the final rename stays on one file system, and a broken download never lands there.
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    except OSError as error:
        raise DownloadError(f"cannot write into {folder.parent}: {error.strerror or error}") from error
    try:
        fetch_from_hub(hub, staging)
        folder.mkdir(exist_ok=True)
        for filename in WEIGHT_FILES:
            os.replace(staging / filename, folder / filename)
    except Exception as error:  # offline, HTTP errors, a full disk: all end the same way for the user
        raise DownloadError(f"cannot download {name} from the Hugging Face Hub (no network?): "
                            f"{innermost_reason(error)}. Download {' and '.join(WEIGHT_FILES)} from "
                            f"{hub.url} by hand into {folder}.") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def fetch_from_hub(hub: HubWeights, staging: Path) -> None:
    """Download the two files into staging with huggingface_hub (imported here: only this command needs it)."""
    from huggingface_hub import hf_hub_download

    hub_logger = logging.getLogger("huggingface_hub")
    previous_level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)  # offline, it logs each of its retries; our one line says it all
    try:
        for filename in WEIGHT_FILES:
            hf_hub_download(repo_id=hub.repo_id, filename=filename, revision=hub.revision, local_dir=staging)
    finally:
        hub_logger.setLevel(previous_level)


def innermost_reason(error: BaseException) -> str:
    """'gaierror: [Errno -2] Name or service not known': the root cause, not the advice the hub wraps it in."""
    seen = {id(error)}
    while (cause := error.__cause__ or error.__context__) is not None and id(cause) not in seen:
        seen.add(id(cause))
        error = cause
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}"[:200]


def build_parser() -> argparse.ArgumentParser:
    """The command line of sagan_viz.download."""
    parser = argparse.ArgumentParser(
        prog="python -m sagan_viz.download",
        description="Download pretrained BigGAN-deep ImageNet weights (config.json and pytorch_model.bin, the "
        "layout of pytorch-pretrained-biggan) from the Hugging Face Hub, for python launch.py --checkpoint.",
    )
    parser.add_argument("name", choices=tuple(MODELS), metavar="NAME",
                        help=f"which model: {', '.join(MODELS)} (the number is the image side in pixels)")
    parser.add_argument("--to", type=Path, default=None, metavar="DIR",
                        help="folder to write the two files into (default: models/NAME)")
    return parser


def main(argv: list[str] | None = None) -> Path:
    """Parse argv, download, print the --checkpoint argument; a failed download is one line and exit code 1."""
    parser = build_parser()
    args = parser.parse_args(argv)
    folder = args.to if args.to is not None else Path("models") / args.name
    hub_url = MODELS[args.name].url
    if hub_url:  # offline, the hub retries for about half a minute before giving up
        print(f"downloading {args.name} from {hub_url} into {folder} ...", flush=True)
    try:
        download_weights(args.name, folder)
    except DownloadError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    print(f"downloaded {args.name} ({', '.join(WEIGHT_FILES)}) into {folder}; open it with:")
    print(f"python launch.py --checkpoint {shlex.quote(str(folder))}")
    return folder


if __name__ == "__main__":
    main()
