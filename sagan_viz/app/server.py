"""How the studio is served: the request guard and the upload limit on every launch."""
from __future__ import annotations

import os

import gradio as gr
from gradio.utils import _parse_file_size
from starlette.middleware import Middleware

from .security import DEFAULT_MAX_UPLOAD_BYTES, RequestGuard, RequestPolicy, host_names_for


class Studio(gr.Blocks):
    """gr.Blocks whose launch always installs RequestGuard and an upload limit, whoever launches it
    (launch.py, the tests, the benchmarks). Takes launch's options as keywords.

    allowed_hosts: Host names to answer to besides 127.0.0.1, localhost and server_name ("*": any).
    """

    allowed_hosts: tuple[str, ...] = ()
    session_files = None  # the StudioFiles of its sessions, set by build_app

    def launch(self, **options):
        """gr.Blocks.launch with max_file_size (default 256 MB), no SSR proxy, and RequestGuard."""
        options.setdefault("max_file_size", DEFAULT_MAX_UPLOAD_BYTES)
        options.setdefault("ssr_mode", False)  # a Node proxy in front would see the requests first
        server_name = options.get("server_name") or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
        policy = RequestPolicy(host_names_for(server_name, bool(options.get("share")), self.allowed_hosts),
                               _parse_file_size(options["max_file_size"]))
        app_options = dict(options.pop("app_kwargs", None) or {})  # a fresh dict: Gradio writes into it
        app_options["middleware"] = [*app_options.get("middleware", ()),
                                     Middleware(RequestGuard, policy=policy, blocks=self)]
        return super().launch(app_kwargs=app_options, **options)
