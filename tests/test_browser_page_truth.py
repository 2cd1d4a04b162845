"""The page never lies (Architecture and Complexity tabs), in headless Chromium: a refused
value leaves every control and result as it was, controls and numbers agree, a depth brings
its setting, a link restores a network, narrow screens stack, dark mode stays readable."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def glance(page):
    return page.locator(".rx-cards").first


def number_box(page, label: str):
    """The number box of a slider (the box a person types into)."""
    return page.get_by_label(label, exact=True).locator("visible=true").first


def toast(page):
    return page.locator(".toast-body")


def no_error_badges(page) -> None:
    # Gradio marks every output of a failed event with an "Error" badge; none may appear.
    expect(page.locator(".error").filter(has_text=re.compile(r"^\s*Error\s*$"))).to_have_count(0)


def first_paint(page) -> None:
    expect(glance(page)).to_contain_text("25,028,904", timeout=30_000)


def test_invalid_json_shows_a_message_and_keeps_every_control(page):
    first_paint(page)
    page.get_by_text("Config as JSON").click()
    page.get_by_label("Paste a config JSON").fill("{oops")
    page.get_by_role("button", name="Load pasted config").click()
    expect(toast(page)).to_contain_text("not valid JSON", timeout=20_000)
    no_error_badges(page)
    expect(page.get_by_role("spinbutton", name="Cardinality C")).to_have_value("32")
    expect(page.get_by_label("Blocks per stage")).to_have_value("3, 4, 6, 3")
    expect(page.get_by_label("Classes")).to_have_value("1000")
    expect(glance(page)).to_contain_text("25,028,904")


def test_a_typed_value_is_used_everywhere_or_refused_and_put_back(page):
    first_paint(page)
    box = page.get_by_role("spinbutton", name="Cardinality C")
    box.fill("1000")
    box.press("Enter")
    # 1000 is a valid cardinality (the library's limit is 1024): the numbers are its numbers.
    expect(page.locator(".rx-title").first).to_contain_text("ResNeXt-50 (1000x4d)", timeout=20_000)
    expect(page.get_by_label("Preset")).to_have_value("custom")
    box.fill("2000")
    box.press("Enter")
    expect(toast(page)).to_contain_text("cardinality C must be an integer in [1, 1024], got 2000",
                                        timeout=20_000)
    expect(box).to_have_value("1000")  # back to the value in use
    expect(page.locator(".rx-title").first).to_contain_text("ResNeXt-50 (1000x4d)")
    blocks = page.get_by_label("Blocks per stage")
    blocks.fill("3,,4")
    blocks.press("Enter")
    expect(toast(page).filter(has_text="has an empty entry")).to_have_count(1, timeout=20_000)
    expect(blocks).to_have_value("3, 4, 6, 3")
    no_error_badges(page)


def test_depth_29_brings_the_papers_cifar_setting_and_a_link_restores_it(page, app_url):
    first_paint(page)
    page.get_by_label("29", exact=True).check()
    expect(page.locator(".rx-title").first).to_contain_text("32×32 input · 10 classes",
                                                            timeout=20_000)
    expect(page.get_by_label("Classes")).to_have_value("10")
    expect(toast(page)).to_contain_text("CIFAR network (Sec. 5.2")
    link = page.get_by_role("link", name="Link to this network")
    href = link.get_attribute("href")
    assert href and href.startswith("?config=")
    page.goto(app_url + href)
    expect(page.locator(".rx-title").first).to_contain_text("ResNeXt-29 (32x4d) · 32×32 input",
                                                            timeout=30_000)
    expect(page.get_by_label("Classes")).to_have_value("10")


def test_a_ninth_pin_is_refused_and_the_eight_stay(page):
    first_paint(page)
    box = page.get_by_role("spinbutton", name="Cardinality C")
    for cardinality in range(1, 10):
        page.get_by_role("tab", name="Architecture").click()
        box.fill(str(cardinality))
        box.press("Enter")
        expect(page.locator(".rx-title").first).to_contain_text(f"({cardinality}x4d)",
                                                                timeout=20_000)
        page.get_by_role("tab", name="Complexity").click()
        page.get_by_role("button", name="Pin current config").click()
        if cardinality <= 8:
            expect(page.get_by_text(f"Pinned #{cardinality} ")).to_be_visible(timeout=20_000)
    expect(toast(page)).to_contain_text("at most 8 configs can be pinned", timeout=20_000)
    no_error_badges(page)
    table = page.locator(".rx-table").filter(has_text="#8")
    expect(table.first).to_contain_text("#1")
    expect(page.get_by_text("Pinned #8 ")).to_be_visible()
    # Removing #2 keeps the others' numbers (no renumbering).
    page.get_by_label("Pins to remove").click()
    page.get_by_role("option", name=re.compile(r"^#2 ")).click()
    page.get_by_role("button", name="Remove", exact=True).click()
    expect(page.get_by_text("Removed 1 pin(s).")).to_be_visible(timeout=20_000)
    expect(table.first).to_contain_text("#3")
    expect(table.first).not_to_contain_text("#2 ")


def test_narrow_screen_stacks_columns_and_keeps_headers_whole(browser, app_url):
    context = browser.new_context(viewport={"width": 800, "height": 1000})
    page = context.new_page()
    page.goto(app_url)
    first_paint(page)
    controls = page.get_by_label("Preset").bounding_box()
    cards = glance(page).bounding_box()
    assert cards["y"] > controls["y"] + controls["height"], "columns did not stack"
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    # Every stage-table header lays out on whole words: no word split over two lines.
    broken = page.evaluate("""() => [...document.querySelectorAll('.rx-table th')]
        .filter(th => th.offsetParent !== null)
        .map(th => {
            // Line boxes of the header's text itself (not of its sort icons).
            const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
            const tops = new Set();
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                if (!node.textContent.trim()) continue;
                const range = document.createRange(); range.selectNodeContents(node);
                for (const r of range.getClientRects()) if (r.width > 0) tops.add(Math.round(r.top));
            }
            const words = th.innerText.trim().split(/\\s+/).filter(Boolean).length;
            return {text: th.innerText.trim(), lines: tops.size, words};
        }).filter(h => h.text && h.lines > h.words)""")
    assert broken == []
    context.close()


def test_dark_mode_charts_use_light_text_on_transparent_backgrounds(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app_url + "?__theme=dark")
    first_paint(page)
    # The plots draw after the numbers; on a loaded machine well after 1.5 s.
    page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    colours = page.evaluate("""() => {
        const svg = document.querySelector('.js-plotly-plot .main-svg');
        const texts = [...document.querySelectorAll('.js-plotly-plot text')].slice(0, 40);
        return {background: svg && getComputedStyle(svg).backgroundColor,
                fills: texts.map(t => getComputedStyle(t).fill)};
    }""")
    assert colours["background"] in ("rgba(0, 0, 0, 0)", "transparent")
    for fill in colours["fills"]:
        red, green, blue = (int(v) for v in re.findall(r"\d+", fill)[:3])
        luminance = (0.299 * red + 0.587 * green + 0.114 * blue) / 255
        assert luminance > 0.35, f"dark text {fill} on a dark page"
    context.close()
