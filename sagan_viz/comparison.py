"""One panel of a comparison: a generation's paper figure at the comparison's query points, titled.

The studio's Compare tab draws one per checkpoint × seed × class, and `python -m sagan_viz.figure --from`
draws a recorded panel again: both call comparison_panel, so the two cannot drift apart.
"""
from __future__ import annotations

from PIL import Image

from .inspect import Generation
from .paper_figure import PanelCache, figure_caption, paper_figure
from .queries import query_views

PANEL_SCALE = 6  # display pixels per generated pixel in every panel, whatever the resolution
# Figure pixels kept free of title text at the top right, where the studio lays each panel's download button.
TITLE_INSET = 44


def panel_caption(title: str, described: str) -> str:
    """title · described, without the parts of described that title already says (a checkpoint's label
    names its step, and so does figure_caption)."""
    said = title.split(" · ")
    return " · ".join(said + [part for part in described.split(" · ") if part not in said])


def comparison_panel(generation: Generation, layer: str, pixels, title: str, columns: PanelCache | None = None,
                     scale: int = PANEL_SCALE, max_peaks: int = 3) -> Image.Image:
    """generation's figure at pixels (its own image's coordinates), titled; without that layer it says so.

    columns: figure columns drawn before (a click then draws one new column per panel).
    """
    if layer in generation.layers:
        caption = panel_caption(title, figure_caption(generation, layer))
        views = query_views(generation, layer, pixels, max_peaks)
        return paper_figure(generation.image, views, generation.layers[layer].key_shape, scale=scale, caption=caption,
                            cache=columns, title_inset=TITLE_INSET)
    missing = f"no attention layer {layer} in this checkpoint" if generation.layers else "no attention layers"
    return paper_figure(generation.image, [], None, scale=scale, caption=f"{title} · {missing}", cache=columns,
                        title_inset=TITLE_INSET)
