"""`python launch.py`: open the sagan-viz studio on the bundled checkpoints (flags only; the app is built elsewhere)."""
from __future__ import annotations

import argparse
import os
import socket
import sys

from sagan_viz.devices import DEVICE_CHOICES  # no torch: --help stays instant

DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 256  # BigGAN-deep-512's weights are ~230 MB; security.DEFAULT_MAX_UPLOAD_BYTES agrees


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(host: str, requested: int | None) -> int:
    """The port asked for (which must be free), else the first free one from 7860 upwards."""
    if requested is not None:
        if not port_is_free(host, requested):
            raise ValueError(f"port {requested} on {host} is already in use; leave out --port to pick a free one")
        return requested
    for port in range(DEFAULT_PORT, DEFAULT_PORT + 100):
        if port_is_free(host, port):
            return port
    raise ValueError(f"no free port between {DEFAULT_PORT} and {DEFAULT_PORT + 99} on {host}")


def has_display() -> bool:
    """Whether a browser window could open here."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def build_parser() -> argparse.ArgumentParser:
    """The launcher's flags, each explained."""
    parser = argparse.ArgumentParser(
        prog="python launch.py",
        description="Open the sagan-viz studio: generate images, click pixels, see SAGAN self-attention.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", help="a checkpoint to open first: a sagan-viz .safetensors file, or a "
                        "BigGAN-deep folder with config.json and pytorch_model.bin (python -m sagan_viz.download "
                        "fetches one); default: the newest bundled one in --checkpoints")
    parser.add_argument("--checkpoints", default="checkpoints", help="folder of checkpoints to list")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="where the networks run; auto picks cuda, then mps, then cpu")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 127.0.0.1 keeps the studio private to this machine")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port to listen on (default: {DEFAULT_PORT}, or the next free one)")
    parser.add_argument("--share", action="store_true", help="also create a public gradio.live link (then any "
                        "Host name is answered)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="a Host name to answer to besides 127.0.0.1, localhost and --host (repeatable; e.g. the "
                        "name a reverse proxy or the LAN uses; '*' answers to any name)")
    parser.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                        help="largest checkpoint upload accepted, in MiB; larger ones are refused before they are stored")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse flags, build the studio, serve it; its temporary files go when it stops (Ctrl+C, SIGTERM)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_upload_mb <= 0:
        parser.error("--max-upload-mb must be a positive number of MiB")
    from sagan_viz.temp_folder import private_temp_folder  # deferred: --help stays instant

    with private_temp_folder():  # entered before Gradio's import, which notes its temporary folder
        try:
            serve(parser, args)
        except KeyboardInterrupt:  # stopped before Gradio's own wait took over
            pass


def serve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Build the studio from the flags and serve it until stopped."""
    from sagan_viz.app import LAUNCH_SETTINGS, build_app
    from sagan_viz.checkpoint import CheckpointError

    try:
        port = choose_port(args.host, args.port)
        demo = build_app(checkpoint_dir=args.checkpoints, checkpoint=args.checkpoint, device=args.device,
                         allowed_hosts=tuple(args.allow_host))
    except (CheckpointError, ValueError) as error:
        parser.error(str(error))
    print(f"sagan-viz studio on http://{args.host}:{port}  (Ctrl+C to stop)", flush=True)
    demo.launch(server_name=args.host, server_port=port, share=args.share,
                inbrowser=has_display() and not args.no_browser, max_file_size=args.max_upload_mb * 2**20,
                **LAUNCH_SETTINGS)


if __name__ == "__main__":
    main()
