"""Figure text stamped from cached glyphs looks as PIL's own text drawing does, and measures as it draws."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from sagan_viz.figure_text import draw_text, figure_font, text_width

LINES = ["query 3: cell (12, 20)", "max β 0.0312", "= 85.3× uniform", "arrows: 41% of β",
         "G.attn0 (γ = +0.123) · EMA G · seed 7"]


def ink(draw_line, text: str, size: int) -> np.ndarray:
    """Darkness (0-255) of one line drawn black on white."""
    image = Image.new("L", (16 * len(text) + 20, 3 * size), 255)
    draw_line(ImageDraw.Draw(image), text)
    return 255 - np.asarray(image, dtype=np.int32)


@pytest.mark.parametrize("size", [10, 13, 15])
@pytest.mark.parametrize("text", LINES)
def test_a_line_covers_what_pil_draws(text, size):
    font = figure_font(size)
    ours = ink(lambda draw, line: draw_text(draw, (3, 2), line, font, 0), text, size)
    pils = ink(lambda draw, line: draw.text((3, 2), line, font=font, fill=0), text, size)
    assert ours.sum() == pytest.approx(pils.sum(), rel=0.05)  # the same amount of ink
    rows, columns = (np.nonzero(ours.sum(axis=axis))[0] for axis in (1, 0))
    pil_rows, pil_columns = (np.nonzero(pils.sum(axis=axis))[0] for axis in (1, 0))
    assert abs(rows[0] - pil_rows[0]) <= 1 and abs(rows[-1] - pil_rows[-1]) <= 1  # same baseline and height
    assert abs(columns[0] - pil_columns[0]) <= 1 and abs(columns[-1] - pil_columns[-1]) <= 3  # kerning aside
    # Glyph by glyph in the same places: each 6-pixel stretch of the ink profile matches PIL's within a pixel's shift.
    profile, pil_profile = ours.sum(axis=0), pils.sum(axis=0)
    mismatch = 0
    for start in range(1, len(pil_profile) - 7, 6):
        window = slice(start, start + 6)
        mismatch += min(np.abs(np.roll(profile, shift)[window] - pil_profile[window]).sum() for shift in (-1, 0, 1))
    assert mismatch < 0.1 * pil_profile.sum()


@pytest.mark.parametrize("text", LINES)
def test_text_width_is_where_drawing_ends(text):
    size = 13
    font = figure_font(size)
    ours = ink(lambda draw, line: draw_text(draw, (0, 0), line, font, 0), text, size)
    last_inked = np.nonzero(ours.sum(axis=0))[0][-1]
    width = text_width(text, size)
    assert width == pytest.approx(font.getlength(text), abs=3)  # PIL's own measure, kerning aside
    assert last_inked <= width + 1  # what was fitted to a width stays inside it


def test_repeated_characters_are_stamped_alike():
    font = figure_font(12)
    image = Image.new("L", (200, 30), 255)
    draw_text(ImageDraw.Draw(image), (0, 0), "8    8", font, 0)
    darkness = 255 - np.asarray(image, dtype=np.int32)
    inked = np.nonzero(darkness.sum(axis=0))[0]
    first, second = inked[inked < 20], inked[inked >= 20]
    assert darkness[:, first].sum() == darkness[:, second].sum() > 0
