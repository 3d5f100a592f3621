"""A BigGAN-deep model in a real browser: pick a class by typing its name, generate, click, see the map."""
from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import click_image_at, wait_for_new_image
from conftest import CHROMIUM, CHROMIUM_ARGS, free_port

from sagan_viz.app import LAUNCH_SETTINGS, build_app


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:  # one per module: two at once would share one event loop
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def serve(demo, browser):
    """Launch demo on a free loopback port and open a page on it; yields the page, closes both after."""
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_SETTINGS)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(30_000)
        page.goto(f"http://127.0.0.1:{port}")
        yield page
        page.close()
    finally:
        demo.close()


@pytest.fixture(scope="module")
def biggan_page(tiny_biggan_deep, tmp_path_factory, browser):
    demo = build_app(tmp_path_factory.mktemp("no-bundled-checkpoints"), checkpoint=tiny_biggan_deep, device="cpu")
    yield from serve(demo, browser)


def test_pick_a_class_by_name_generate_and_click(biggan_page, shots: Path):
    page = biggan_page
    page.locator("#inspect-class-search textarea").click()
    page.keyboard.type("retriever")  # typed, not filled: Gradio listens to the keys
    # the picker now lists only the retrievers, the first one chosen; pick the golden one
    page.wait_for_function("document.querySelector('#inspect-class input').value.includes('retriever')")
    page.locator("#inspect-class input").click()
    page.get_by_role("option", name="207 · golden retriever").click()
    page.locator("#inspect-truncation input[type=number]").fill("0.5")
    page.locator("#inspect-truncation input[type=number]").press("Enter")
    page.click("#inspect-generate")
    wait_for_new_image(page, "#inspect-image", None)
    page.wait_for_function("document.querySelector('#inspect-status').innerText.includes('golden retriever')")
    status = page.locator("#inspect-status").inner_text()
    assert "golden retriever (207)" in status and "truncation 0.5" in status and "biggan-deep" in status
    figure = page.locator("#inspect-figure img").first.get_attribute("src")
    click_image_at(page, "#inspect-image", 0.3, 0.6)
    wait_for_new_image(page, "#inspect-figure", figure)
    page.screenshot(path=shots / "biggan-1-class-and-click.png", full_page=True)
    details = page.locator("#inspect-details").inner_text()
    assert "16×16" in details and "8×8" in details and "max β" in details
    page.click("button[role=tab]:has-text('Training dynamics')")
    page.wait_for_function("document.querySelector('#dynamics-note').innerText.includes('no training history')")
    assert "Traceback" not in page.content()


@pytest.fixture(scope="module")
def studio_page(tiny_checkpoint_dir, browser):
    yield from serve(build_app(tiny_checkpoint_dir, device="cpu"), browser)


def test_every_tab_is_ready_on_open_without_pressing_generate(studio_page, shots: Path):
    page = studio_page
    wait_for_new_image(page, "#inspect-image", None)  # nothing pressed: the page load generated it
    for tab, selector in (("Compare", "#compare-reference"), ("Attribution", "#attribution-image"),
                          ("Teaching", "#teaching-image"), ("Training dynamics", "#timeline-strip")):
        page.click(f"button[role=tab]:has-text('{tab}')")
        wait_for_new_image(page, selector, None)
    page.screenshot(path=shots / "ready-on-open-dynamics.png", full_page=True)
    page.click("button[role=tab]:has-text('Inspect')")


def test_an_uploaded_heykeetae_checkpoint_opens_and_answers_clicks_in_every_mode(studio_page, shots: Path):
    page = studio_page
    fixture = Path(__file__).parent / "fixtures" / "heykeetae" / "1000_G.pth"
    page.locator("#inspect-upload input[type=file]").set_input_files(str(fixture))
    page.wait_for_function("document.querySelector('#inspect-status').innerText.includes('1000_G.pth')")
    old = page.locator("#inspect-image img").first.get_attribute("src")
    page.click("#inspect-generate")
    wait_for_new_image(page, "#inspect-image", old)
    page.wait_for_function("document.querySelector('#inspect-status').innerText.includes('heykeetae')")
    figure = page.locator("#inspect-figure img").first.get_attribute("src")
    click_image_at(page, "#inspect-image", 0.4, 0.3)
    wait_for_new_image(page, "#inspect-figure", figure)
    assert "max β" in page.locator("#inspect-details").inner_text()
    page.get_by_label("who looks at a position (column of β)").check()
    page.wait_for_function("document.querySelector('#inspect-details').innerText.includes('reverse view')")
    page.screenshot(path=shots / "heykeetae-column-mode.png", full_page=True)
    page.get_by_label("where attention acts (‖γ·o‖ / ‖x‖)").check()
    page.wait_for_function("document.querySelector('#inspect-details').innerText.includes('where attention acts')")
    page.screenshot(path=shots / "heykeetae-effect-mode.png", full_page=True)
    assert "Traceback" not in page.content()
