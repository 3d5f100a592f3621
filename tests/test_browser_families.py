"""A BigGAN-deep model in a real browser: pick a class by typing its name, generate, click, see the map."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, free_port
from sagan_viz.app import LAUNCH_SETTINGS, build_app
from browser_helpers import click_image_at, wait_for_new_image


@pytest.fixture(scope="module")
def biggan_page(tiny_biggan_deep, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    demo = build_app(tmp_path_factory.mktemp("no-bundled-checkpoints"), checkpoint=tiny_biggan_deep, device="cpu")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_SETTINGS)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(30_000)
            page.goto(f"http://127.0.0.1:{port}")
            yield page
            browser.close()
    finally:
        demo.close()


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
    click_image_at(page, "#inspect-image", 0.3, 0.6)
    wait_for_new_image(page, "#inspect-grid", None)
    page.screenshot(path=shots / "biggan-1-class-and-click.png", full_page=True)
    details = page.locator("#inspect-details").inner_text()
    assert "16×16" in details and "8×8" in details and "max β" in details
    page.click("button[role=tab]:has-text('Training dynamics')")
    page.wait_for_function("document.querySelector('#dynamics-note').innerText.includes('no training history')")
    assert "Traceback" not in page.content()
