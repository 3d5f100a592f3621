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


def marker_fractions(page, selector: str, count: int) -> list[list[float]]:
    """Once a clickable image shows `count` markers, their centres as fractions of its shown picture."""
    page.wait_for_function("([selector, count]) => document.querySelectorAll(selector + ' circle').length === count",
                           arg=[selector, count])
    return page.evaluate("""(selector) => {
        const box = document.querySelector(selector + ' img').getBoundingClientRect();
        return [...document.querySelectorAll(selector + ' circle')].map(c => {
            const r = c.getBoundingClientRect();
            return [(r.x + r.width / 2 - box.x) / box.width, (r.y + r.height / 2 - box.y) / box.height];
        });
    }""", selector)


def near(points, expected, tolerance: float = 0.01) -> bool:
    """Whether each point (x, y) is within tolerance of its expected one, on both axes."""
    return len(points) == len(expected) and all(abs(a - b) < tolerance for point, want in zip(points, expected)
                                                for a, b in zip(point, want))
