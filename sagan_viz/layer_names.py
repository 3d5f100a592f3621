"""The one home of attention-layer names: "G.attn0" is the first attention layer of the generator."""
from __future__ import annotations

import re

NETWORKS = ("G", "D")  # generator, discriminator
_PATTERN = re.compile(r"^(G|D)\.attn(0|[1-9][0-9]*)$")


def layer_name(network: str, index: int) -> str:
    """'G', 0 -> 'G.attn0'."""
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
    return f"{network}.attn{int(index)}"


def parse_layer_name(name: str) -> tuple[str, int]:
    """'D.attn1' -> ('D', 1); ValueError for anything else."""
    match = _PATTERN.match(str(name))
    if match is None:
        raise ValueError(f"{name!r} is not an attention layer name (expected G.attnK or D.attnK)")
    return match.group(1), int(match.group(2))


def network_of(name: str) -> str:
    """'G' or 'D': which network a layer name belongs to."""
    return parse_layer_name(name)[0]


def generator_first(names) -> list[str]:
    """Layer names sorted G's first, each network in forward order."""
    return sorted(names, key=lambda name: (NETWORKS.index(network_of(name)), parse_layer_name(name)[1]))
