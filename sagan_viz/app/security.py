"""Who may talk to the studio: the Host names it answers to, same-origin state changes, the upload size.

Gradio's own CORS middleware only withholds Access-Control-Allow-Origin from foreign pages: their requests
still run (a cross-origin form POST of an upload needs no preflight), and any Host header is served, so a
page whose DNS name is rebound to 127.0.0.1 could drive the studio. RequestGuard, an ASGI middleware on
Gradio's FastAPI app (server.Studio installs it), refuses those requests before Gradio sees them.
"""
from __future__ import annotations

import shutil
import socket
import tempfile
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse

MEGABYTE = 2**20
DEFAULT_MAX_UPLOAD_BYTES = 256 * MEGABYTE  # BigGAN-deep-512's pytorch_model.bin is ~230 MB
MULTIPART_ALLOWANCE = 64 * 1024  # form framing around the file in an upload's Content-Length
DISK_RESERVE = 2**30  # an upload is refused when it would leave less free space than this where it goes
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")
ANY_HOST = "*"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(value: str, default_port: int = 80) -> tuple[str, int] | None:
    """'Localhost:7860' -> ('localhost', 7860); '[::1]:80' -> ('::1', 80); None when it is no host[:port]."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, port = value.split(":")
    else:
        name, port = value, ""
    if not name or (port and not port.isdigit()):
        return None
    return name.rstrip("."), int(port) if port else default_port


def this_machine_names() -> set[str]:
    """The names this machine goes by (what a LAN user types when the studio listens on every interface)."""
    names = set()
    for lookup in (socket.gethostname, socket.getfqdn):
        try:
            names.add(lookup().lower())
        except OSError:
            continue
    return names


def host_names_for(server_name: str, share: bool = False, extra_hosts=()) -> frozenset[str] | None:
    """Host names the studio answers to; None means any (a --share link, or ANY_HOST among extra_hosts)."""
    extra = {name.strip().lower() for name in extra_hosts if name.strip()}
    if share or ANY_HOST in extra:
        return None
    names = {*LOOPBACK_NAMES, server_name.lower(), *extra}
    if server_name in WILDCARD_ADDRESSES:
        names |= this_machine_names()
    return frozenset(names - {""})


@dataclass(frozen=True)
class RequestPolicy:
    """What RequestGuard accepts."""

    host_names: frozenset[str] | None  # besides the address a connection arrived on; None: any Host
    max_upload_bytes: int | None = DEFAULT_MAX_UPLOAD_BYTES  # None: no limit


class RequestGuard:
    """ASGI middleware: a wrong Host -> 400; a state change from a foreign Origin -> 403; an upload whose
    declared size is over the limit -> 413 before a byte is stored (Gradio's max_file_size then stops
    uploads that do not declare a size while they stream); one the disk has no room for -> 507.

    blocks: the gr.Blocks served, whose share_url (once known) is an origin of its own.
    """

    def __init__(self, app, policy: RequestPolicy, blocks=None) -> None:
        self.app = app
        self.policy = policy
        self.blocks = blocks

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope, Headers(scope=scope))
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            status, text = refusal
            await PlainTextResponse(text, status_code=status)(scope, receive, send)

    def refusal(self, scope, headers: Headers) -> tuple[int, str] | None:
        """(status, reason) when the request must not reach Gradio, else None."""
        host = headers.get("host", "")
        if not self.host_accepted(host, scope.get("server")):
            return 400, f"Host {host!r} is not a name of this studio (launch.py --allow-host NAME adds one)"
        origin = headers.get("origin")
        changes_state = scope["type"] == "websocket" or scope["method"] in STATE_CHANGING
        if changes_state and origin is not None and not self.origin_accepted(origin, host):
            return 403, f"cross-origin request from {origin!r} refused"
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/upload"):
            return self.upload_refusal(headers)
        return None

    def host_accepted(self, host: str, server: tuple[str, int] | None) -> bool:
        """A Host of ours: a known name or the address the connection arrived on, and the port served."""
        if self.policy.host_names is None:
            return True
        parsed = split_host(host)
        if parsed is None:
            return False
        name, port = parsed
        if server is not None and port != server[1]:
            return False
        return name in self.policy.host_names or (server is not None and name == str(server[0]).lower())

    def origin_accepted(self, origin: str, host: str) -> bool:
        """The page's origin is this very host (same-origin), or the studio's share link."""
        parts = urlsplit(origin.strip().lower())
        if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
            return False  # "null" (sandboxed frames, file:// pages) and anything odd
        page = split_host(parts.netloc, DEFAULT_PORTS[parts.scheme])
        if page is not None and page == split_host(host, DEFAULT_PORTS[parts.scheme]):
            return True
        share_url = getattr(self.blocks, "share_url", None)
        return bool(share_url) and f"{parts.scheme}://{parts.netloc}" == share_url.rstrip("/").lower()

    def upload_refusal(self, headers: Headers) -> tuple[int, str] | None:
        """413 when the declared body is over the upload limit (plus the form's framing); 507 when storing
        the largest upload allowed would leave the temporary folder's disk with less than DISK_RESERVE."""
        limit = self.policy.max_upload_bytes
        declared = headers.get("content-length", "")
        if limit is not None and declared.isdigit() and int(declared) > limit + MULTIPART_ALLOWANCE:
            return 413, f"upload larger than the studio's limit of {limit / MEGABYTE:.0f} MB (launch.py --max-upload-mb)"
        expected = int(declared) if declared.isdigit() else (limit or 0)
        if shutil.disk_usage(tempfile.gettempdir()).free < expected + DISK_RESERVE:
            return 507, "the server's disk is too full to take an upload now"
        return None
