"""The studio in a real browser: Playwright driving Debian's Chromium (installed by .ci/run).

Screenshots go to $SAGAN_VIZ_SCREENSHOTS (default: pytest's tmp folder); look at them.
"""
from __future__ import annotations

import json

from browser_helpers import click_image_at, image_bytes, marker_fractions, near, wait_for_new_image

from sagan_viz.figure import main as figure_main


def test_inspect_two_clicks_show_different_maps_and_arrows(page, shots):
    page.click("#inspect-generate")
    wait_for_new_image(page, "#inspect-image", None)
    page.screenshot(path=shots / "1-generated.png", full_page=True)
    page.click("#inspect-show-grid input")  # the raw grid is drawn only when asked for
    click_image_at(page, "#inspect-image", 0.2, 0.25)
    first_grid = wait_for_new_image(page, "#inspect-grid", None)
    first_grid_png = image_bytes(page, "#inspect-grid")
    first_figure = page.locator("#inspect-figure img").first.get_attribute("src")
    page.screenshot(path=shots / "2-first-query.png", full_page=True)
    click_image_at(page, "#inspect-image", 0.8, 0.75)
    wait_for_new_image(page, "#inspect-grid", first_grid)
    wait_for_new_image(page, "#inspect-figure", first_figure)
    page.screenshot(path=shots / "3-second-query.png", full_page=True)
    assert image_bytes(page, "#inspect-grid") != first_grid_png  # a different query, a different beta row
    # each click has its marker where it was clicked, drawn over the picture (centres as fractions of it)
    marked = marker_fractions(page, "#inspect-image", 2)
    assert near(marked, [(0.2, 0.25), (0.8, 0.75)]), marked
    details = page.locator("#inspect-details").inner_text()
    assert "max β" in details and details.count("×") >= 2
    figure_width = page.evaluate("document.querySelector('#inspect-figure img').naturalWidth")
    image_width = page.evaluate("document.querySelector('#inspect-image img').naturalWidth")
    assert figure_width > image_width  # the image plus one map per query
    assert "Traceback" not in page.content()
    # Gradio's run history would rewrite every stored event in localStorage on each click (slower and slower)
    stored = page.evaluate("Object.keys(window.localStorage)")
    assert not [key for key in stored if key.startswith("gradio:run-history")], stored


def test_compare_click_updates_both_panels_and_a_downloaded_recipe_redraws_the_panel(page, shots, tiny_checkpoint,
                                                                                     tmp_path):
    page.get_by_role("tab", name="Compare").click()
    page.click("#compare-run")
    wait_for_new_image(page, "#compare-reference", None)
    panel_sources = [wait_for_new_image(page, f"#compare-panel-{i}", None) for i in range(2)]
    click_image_at(page, "#compare-reference", 0.5, 0.375)
    for index, old in enumerate(panel_sources):
        wait_for_new_image(page, f"#compare-panel-{index}", old)
    assert near(marker_fractions(page, "#compare-reference", 1), [(0.5, 0.375)])  # marked where clicked
    page.screenshot(path=shots / "4-compare.png", full_page=True)
    with page.expect_download() as download:
        page.click("#compare-recipe-0")  # the first panel: the newest tiny-sagan snapshot
    recipe = tmp_path / download.value.suggested_filename
    download.value.save_as(recipe)
    record = json.loads(recipe.read_text())
    assert record["kind"] == "compare-panel" and len(record["queries"]) == 1  # the click above
    figure_main(["--from", str(recipe), "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                 "--out", str(tmp_path / "again.png")])
    assert (tmp_path / "again.png").read_bytes() == image_bytes(page, "#compare-panel-0")  # the panel on the page


def test_gamma_chart_renders_one_trace_per_attention_layer(page, shots):
    page.get_by_role("tab", name="Training dynamics").click()
    page.wait_for_selector("#dynamics-gamma .js-plotly-plot")
    names = page.evaluate("Array.from(document.querySelector('#dynamics-gamma .js-plotly-plot').data, t => t.name)")
    assert {"G.attn0", "D.attn0"} <= set(names)
    page.screenshot(path=shots / "5-dynamics.png", full_page=True)


def test_attribution_and_timeline_mark_the_clicked_point_over_their_picture(page, shots):
    page.get_by_role("tab", name="Attribution").click()
    picture = wait_for_new_image(page, "#attribution-image", None)  # ready on open
    click_image_at(page, "#attribution-image", 0.7, 0.2)
    wait_for_new_image(page, "#attribution-figure", None)
    assert near(marker_fractions(page, "#attribution-image", 1), [(0.7, 0.2)])
    assert page.locator("#attribution-image img").first.get_attribute("src") == picture  # the picture stays
    page.screenshot(path=shots / "6-attribution.png", full_page=True)
    page.get_by_role("tab", name="Training dynamics").click()
    wait_for_new_image(page, "#timeline-image", None)
    strip = wait_for_new_image(page, "#timeline-strip", None)
    click_image_at(page, "#timeline-image", 0.25, 0.6)
    wait_for_new_image(page, "#timeline-strip", strip)
    assert near(marker_fractions(page, "#timeline-image", 1), [(0.25, 0.6)])
    page.locator("#timeline-image").scroll_into_view_if_needed()
    page.screenshot(path=shots / "7-timeline.png", full_page=True)
    assert "Traceback" not in page.content()


def test_teaching_walkthrough_renders_equations_and_gamma_zero_shows_the_difference(page, shots):
    page.get_by_role("tab", name="Teaching").click()
    page.click("#teaching-generate")
    wait_for_new_image(page, "#teaching-image", None)
    click_image_at(page, "#teaching-image", 0.31, 0.44)  # where the faces' left eye sits
    wait_for_new_image(page, "#teaching-beta", None)
    assert near(marker_fractions(page, "#teaching-image", 1), [(0.31, 0.44)])
    page.wait_for_selector("#teaching-steps .katex")
    steps = page.locator("#teaching-steps").inner_text()
    assert "C = 32, C̄ = 4, N = 16×16 = 256" in steps and "1.000000" in steps
    assert "$$" not in steps  # every equation went through KaTeX
    assert page.locator("#teaching-steps .katex-display").count() >= 6  # one displayed equation per step
    page.screenshot(path=shots / "8-teaching-walkthrough.png", full_page=True)
    number = page.locator("#teaching-gamma input[type='number']")
    number.fill("0")
    number.press("Enter")
    page.click("#teaching-apply")
    wait_for_new_image(page, "#teaching-difference", None)
    wait_for_new_image(page, "#teaching-result", None)
    page.wait_for_function("document.querySelector('#teaching-effect').innerText.includes('→ +0.0000')")
    page.locator("#teaching-result").scroll_into_view_if_needed()
    page.screenshot(path=shots / "9-teaching-gamma-zero.png", full_page=True)
    assert "pixels changed" in page.locator("#teaching-effect").inner_text()
    assert "Traceback" not in page.content()
