"""The figures' text: one font, lines measured and drawn from glyphs rendered once.

PIL's draw.text lays out and renders every glyph of a line again on every call (FreeType runs each glyph's
hinting program; Raqm shapes the line): a click's four caption lines took 1.1 ms back to back and 17 ms a
second after the last click; stamped from cached glyphs, 0.11 and 7 ms (measured, README "Many users").
A figure's text uses a few dozen characters, so each (font, character) is rendered once and a line is
stamped from those coverage masks.
Glyphs sit at whole pixels along the sum of their advances; kerning is not applied, and text_width measures
the same way, so text fitted with it fits as drawn.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

from PIL import Image, ImageDraw, ImageFont


@functools.lru_cache(maxsize=32)  # loading a font file costs ~0.1 ms, and every figure asks for several sizes
def figure_font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans where installed (it has Greek letters), else PIL's default font, at a pixel size."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def plain_text(text: str, font: ImageFont.FreeTypeFont) -> str:
    """Spell Greek and the times sign out for fonts without them (PIL's default font)."""
    if "DejaVu" in font.getname()[0]:
        return text
    return text.replace("β", "beta").replace("γ", "gamma").replace("×", "x").replace("→", "->")


class Glyph(NamedTuple):
    """One character as a font draws it."""

    mask: Image.Image | None  # coverage, 0-255 (None for a character that marks nothing, such as a space)
    offset: tuple[int, int]  # where the mask's top-left corner sits from the pen position (line top-left)
    advance: float  # how far the pen moves on, pixels


@functools.lru_cache(maxsize=4096)
def glyph(font: ImageFont.FreeTypeFont, character: str) -> Glyph:
    """The character rendered alone, as draw.text would draw it at the pen position."""
    left, top, right, bottom = font.getbbox(character)
    mask = None
    if right > left and bottom > top:
        mask = Image.new("L", (right - left, bottom - top), 0)
        ImageDraw.Draw(mask).text((-left, -top), character, font=font, fill=255)
    return Glyph(mask, (left, top), font.getlength(character))


def text_width(text: str, size: int) -> float:
    """Width in pixels of a line of text as draw_text draws it in figure_font(size)."""
    font = figure_font(size)
    return sum(glyph(font, character).advance for character in plain_text(text, font))


def draw_text(draw: ImageDraw.ImageDraw, origin: tuple[float, float], text: str, font: ImageFont.FreeTypeFont,
              fill) -> None:
    """One line of text, its top-left at origin, in fill (Greek spelt out for fonts without it)."""
    x, y = origin
    for character in plain_text(text, font):
        shape = glyph(font, character)
        if shape.mask is not None:
            draw.bitmap((round(x) + shape.offset[0], round(y) + shape.offset[1]), shape.mask, fill=fill)
        x += shape.advance
