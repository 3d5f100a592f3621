"""Heat maps, markers, arrows and the paper figure are drawn where the maths says; charts read the history."""
import numpy as np
import pytest
from figure_helpers import gradient_image, one_hot_query
from PIL import Image

from sagan_viz.analysis import Peak
from sagan_viz.paper_figure import figure_layout, paper_figure
from sagan_viz.queries import QUERY_COLOURS, QueryView
from sagan_viz.render import (
    Painting,
    attention_grid_image,
    attention_overlay,
    colourise,
    draw_arrows,
    draw_markers,
    draw_smoothly,
    layer_point,
    normalise_for_display,
)


def test_query_colours_are_five_distinct_visible_colours():
    assert len(QUERY_COLOURS) == 5 and len(set(QUERY_COLOURS)) == 5
    assert all(max(colour) >= 200 for colour in QUERY_COLOURS)  # none lost on the dark end of the map


def test_colourise_runs_dark_to_bright_and_clips():
    colours = colourise(np.linspace(-0.5, 1.5, 41)[None, :])
    assert colours.shape == (1, 41, 3) and colours.dtype == np.uint8
    brightness = colours[0].astype(int).sum(axis=1)
    assert brightness[0] < 20 and brightness[-1] > 650
    assert np.all(np.diff(brightness) >= 0)


def test_normalise_for_display_puts_the_maximum_at_one():
    beta = np.full((4, 4), 1 / 16)
    beta[1, 2] = 2 / 16
    assert normalise_for_display(beta).max() == pytest.approx(1.0)
    assert normalise_for_display(np.zeros((2, 2))).max() == 0.0


def test_overlay_is_brightest_at_the_hot_cell_on_a_non_square_grid():
    image = np.full((6, 10, 3), 128, np.uint8)
    beta = np.full((3, 5), 0.01)
    beta[2, 1] = 0.86  # key row 2 of 3 (bottom), column 1 of 5: image rows 4..5, columns 2..3
    overlay = attention_overlay(image, beta, scale=2)
    assert overlay.shape == (12, 20, 3)
    brightness = overlay.astype(int).sum(axis=2)
    hot = np.zeros_like(brightness, bool)
    hot[8:12, 4:8] = True
    assert brightness[hot].min() > brightness[~hot].max()


def test_attention_grid_image_has_one_square_per_key_cell():
    beta = np.full((3, 5), 0.01)
    beta[0, 4] = 0.86
    grid = attention_grid_image(beta, cell_pixels=10)
    assert grid.shape == (31, 51, 3)
    brightness = grid.astype(int).sum(axis=2)
    assert brightness[5, 45] == brightness.max()  # the centre of cell (0, 4): top right
    assert brightness[10, 5] < 60  # a grid line


def test_markers_are_drawn_in_the_query_colour_at_the_query_pixel():
    display = Image.new("RGB", (256, 256), (128, 128, 128))
    query = one_hot_query(1, (20.0, 8.0), (0, 0))
    marked = np.asarray(draw_markers(display, [query], (32, 32)))
    assert tuple(marked[64, 160]) == QUERY_COLOURS[1]
    assert tuple(marked[200, 40]) == (128, 128, 128)


def test_arrows_change_pixels_along_the_line_from_query_to_peak():
    display = Image.new("RGB", (256, 256), (128, 128, 128))
    query = one_hot_query(0, (4.0, 4.0), (12, 12))  # query at display (32, 32), peak centre (200, 200)
    drawn = np.asarray(draw_arrows(display, query, (16, 16), (32, 32))).astype(int)
    for t in (0.3, 0.5, 0.7):
        x = y = round(32 + t * (200 - 32))
        assert np.abs(drawn[y, x] - np.array(QUERY_COLOURS[0])).sum() < 30  # the arrow's colour
    assert tuple(drawn[32, 220]) == (128, 128, 128)  # away from the line: untouched
    assert tuple(drawn[220, 32]) == (128, 128, 128)


def test_arrow_width_grows_with_peak_mass():
    display = Image.new("RGB", (256, 256), (128, 128, 128))
    widths = []
    for mass in (0.05, 0.8):
        query = QueryView(pixel=(4.0, 16.0), cell=(8, 2), colour=QUERY_COLOURS[2],
                          attention_map=np.full((16, 16), 1 / 256), peaks=[Peak((8, 13), 0.1, mass)])
        drawn = np.asarray(draw_arrows(display, query, (16, 16), (32, 32))).astype(int)
        column = drawn[:, 128]  # the arrow runs along row 128
        widths.append(int((np.abs(column - 128).sum(axis=1) > 30).sum()))
    assert 0 < widths[0] < widths[1]


@pytest.mark.parametrize("scale", [4, 8])
@pytest.mark.parametrize("count", [0, 1, 5])
def test_paper_figure_writes_a_png_of_the_expected_size(tmp_path, scale, count):
    pixels = [(4.0, 4.0), (28.0, 6.0), (16.0, 16.0), (6.0, 27.0), (30.0, 30.0)][:count]
    queries = [one_hot_query(number, pixel, (15 - number, 3 * number)) for number, pixel in enumerate(pixels)]
    figure = paper_figure(gradient_image(), queries, (16, 16), scale=scale, caption="G.attn0 · seed 7")
    path = tmp_path / "figure.png"
    figure.save(path)
    with Image.open(path) as written:
        size = written.size
    layout = figure_layout((32, 32), count, scale, "G.attn0 · seed 7")
    assert size == layout.size
    panels = count + 1
    assert size[0] == panels * 32 * scale + (panels + 1) * layout.gap
    assert size[1] > 32 * scale + 4 * 10  # the panels and four lines of text
    if count == 0:  # the image panel is the image itself, upscaled without smoothing
        left, top = layout.panel_origin(0)
        panel = np.asarray(figure)[top : top + 32 * scale, left : left + 32 * scale]
        assert np.array_equal(panel, np.repeat(np.repeat(gradient_image(), scale, 0), scale, 1))


def test_paper_figure_panels_show_each_querys_map():
    query = one_hot_query(0, (4.0, 4.0), (12, 3))  # hot key cell: lower left
    figure = np.asarray(paper_figure(gradient_image(), [query], (16, 16), scale=4))
    left, top = figure_layout((32, 32), 1, 4).panel_origin(1)
    panel = figure[top : top + 128, left : left + 128].astype(int).sum(axis=2)
    assert panel[12 * 8 + 4, 3 * 8 + 4] > 600  # the cell's centre: bright
    assert panel[12 * 8 + 4, 12 * 8 + 4] < 300  # the mirrored cell (row and column swapped): dark


def test_a_peak_at_the_query_itself_gets_a_ring_around_its_cell():
    display = Image.new("RGB", (256, 256), (128, 128, 128))
    query = QueryView(pixel=(17.0, 17.0), cell=(8, 8), colour=QUERY_COLOURS[4],
                      attention_map=np.full((16, 16), 1 / 256), peaks=[Peak((8, 8), 0.5, 0.6)])
    drawn = np.asarray(draw_arrows(display, query, (16, 16), (32, 32))).astype(int)
    centre = np.array([136, 136])  # the centre of key cell (8, 8)
    changed = np.argwhere(np.abs(drawn - 128).sum(axis=2) > 30)
    distances = np.linalg.norm(changed - centre, axis=1)
    assert len(changed) > 0 and distances.min() > 8  # a ring: the cell itself stays visible
    assert tuple(drawn[136, 136]) == (128, 128, 128)


def test_text_falls_back_to_plain_letters_for_fonts_without_greek():
    from PIL import ImageFont

    from sagan_viz.figure_text import plain_text

    assert plain_text("max β = 3× uniform", ImageFont.load_default(size=12)) == "max beta = 3x uniform"


@pytest.mark.parametrize("shape, key_shape, scale", [((32, 32), (16, 16), 8), ((6, 10), (3, 5), 2), ((10, 10), (3, 7), 5)])
def test_overlay_shows_the_top_colour_where_beta_peaks_and_the_image_where_it_does_not(shape, key_shape, scale):
    rng = np.random.default_rng(0)
    beta = rng.random(key_shape)
    peak = np.unravel_index(beta.argmax(), key_shape)
    trough = np.unravel_index(beta.argmin(), key_shape)
    dark, bright = np.zeros((*shape, 3), np.uint8), np.full((*shape, 3), 255, np.uint8)
    over_dark, over_bright = attention_overlay(dark, beta, scale), attention_overlay(bright, beta, scale)
    assert over_dark.shape == (shape[0] * scale, shape[1] * scale, 3)
    height, width = over_dark.shape[:2]
    rows = np.arange(height) * key_shape[0] // height  # the key cell under every display pixel
    columns = np.arange(width) * key_shape[1] // width
    in_peak = (rows[:, None] == peak[0]) & (columns[None, :] == peak[1])
    in_trough = (rows[:, None] == trough[0]) & (columns[None, :] == trough[1])
    top_colour = colourise(np.array([[1.0]]))[0, 0]
    # Where beta peaks the map is opaque: the image underneath does not show.
    assert (over_dark[in_peak] == top_colour).all() and (over_bright[in_peak] == top_colour).all()
    # Where it is lowest the image shows through: a bright image makes those pixels brighter.
    assert (over_bright[in_trough].astype(int) - over_dark[in_trough]).min() > 50
    # A uniform image under one key cell gives one colour for the whole cell.
    for cell_mask in (in_peak, in_trough):
        assert len(np.unique(over_bright[cell_mask], axis=0)) == 1


def test_markers_touch_only_the_pixels_around_them():
    display = Image.fromarray(np.full((256, 256, 3), 200, np.uint8))
    query = QueryView(pixel=(8.0, 8.0), cell=(4, 4), colour=QUERY_COLOURS[0], attention_map=np.ones((16, 16)))
    marked = np.asarray(draw_markers(display, [query], (32, 32))).astype(int)
    changed = np.argwhere(np.abs(marked - 200).sum(axis=2) > 0)
    assert changed.min() >= 64 - 8 and changed.max() <= 64 + 8  # radius 7.2 display pixels around (64, 64)
    assert tuple(marked[64, 64]) == QUERY_COLOURS[0]


def test_draw_smoothly_covers_each_pixel_in_proportion_and_leaves_the_rest():
    display = Image.new("RGB", (40, 30), (0, 0, 100))

    def paint(draw, factor, origin, ink):  # white from x 10 to 20.5, y 10 to 20; red over its left quarter
        def box(x0, y0, x1, y1):
            (left, top), (right, bottom) = layer_point((x0, y0), factor, origin), layer_point((x1, y1), factor, origin)
            return left, top, right - 1, bottom - 1
        draw.rectangle(box(10, 10, 20.5, 20), fill=ink((255, 255, 255)))
        draw.rectangle(box(10, 10, 12.5, 20), fill=ink((255, 0, 0)))

    result = np.asarray(draw_smoothly(display, Painting(paint, (10, 10, 20.5, 20)))).astype(int)
    assert result.shape == (30, 40, 3)
    assert (result[10:20, 13:20] == 255).all() and (result[10:20, 10:12] == (255, 0, 0)).all()
    assert tuple(result[15, 12]) == (255, 128, 128)  # half red, half white (rounded)
    assert tuple(result[15, 20]) == (128, 128, 178)  # half white, half the blue beneath
    untouched = np.ones((30, 40), bool)
    untouched[10:20, 10:21] = False
    assert (result[untouched] == (0, 0, 100)).all()


@pytest.mark.parametrize("compressor", ["default", "zlib"])
def test_encode_png_reads_back_exactly_and_refuses_what_it_cannot_write(compressor):
    import io
    import zlib

    from sagan_viz.imaging import encode_png

    compress = zlib.compress if compressor == "zlib" else None  # the fallback where isal has no wheel
    image = np.random.default_rng(0).integers(0, 256, (7, 13, 3), dtype=np.uint8)
    with Image.open(io.BytesIO(encode_png(image, compress=compress))) as decoded:
        assert decoded.mode == "RGB" and np.array_equal(np.asarray(decoded), image)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        encode_png(image.astype(np.float32))
