"""Reading and clicking Gradio images in Playwright, for the browser tests."""
from __future__ import annotations


def image_bytes(page, selector: str) -> bytes:
    """The PNG currently shown by a Gradio Image component."""
    source = page.locator(f"{selector} img").first.get_attribute("src")
    return page.request.get(source).body()


def wait_for_new_image(page, selector: str, old_source: str | None) -> str:
    """Wait until the component shows an image other than old_source; return its src."""
    page.wait_for_function(
        """([selector, old]) => {
            const img = document.querySelector(selector + ' img');
            return img && img.complete && img.naturalWidth > 0 && img.src !== old;
        }""",
        arg=[selector, old_source or ""],
    )
    return page.locator(f"{selector} img").first.get_attribute("src")


def click_image_at(page, selector: str, fx: float, fy: float) -> None:
    """Click a Gradio image at a fraction (fx, fy) of its shown width and height."""
    image = page.locator(f"{selector} img").first
    image.scroll_into_view_if_needed()  # a generate may have scrolled the page: a click above it would hit nothing
    box = image.bounding_box()
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
