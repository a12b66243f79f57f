"""Drives florenced's page (GET /) in headless Chromium as a user would:
chooses the image file, picks the task, types the text and the API key,
presses Run, waits for the answer, and screenshots the picture.

    page_check.py URL IMAGE TASK TEXT KEY SCREENSHOT.png

Prints one JSON line: the answer shown on the page, the status line, and the
page's own console errors. Chromium is Debian's (/usr/bin/chromium, installed
by scripts/setup.sh); Playwright drives it over the DevTools protocol.
"""

import json
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    url, image, task, text, key, screenshot = sys.argv[1:7]
    errors = []
    with sync_playwright() as p:
        # As root (CI), Chromium runs only without its sandbox.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 1000}, device_scale_factor=1)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.set_input_files("#image", image)
        page.select_option("#task", task)
        page.fill("#text", text)
        page.fill("#key", key)
        page.click("#run")
        # The answer, or the status line turning into an error (selectors:
        # the page's Content-Security-Policy forbids evaluating strings).
        page.locator("body[data-answered], #status.error").first.wait_for(timeout=120_000)
        # The canvas sits at a fractional offset below the form's text;
        # Chromium paints it on whole pixels, which the rounded clip takes.
        box = page.locator("#picture").bounding_box()
        clip = {k: round(box[k]) for k in ("x", "y", "width", "height")}
        page.screenshot(path=screenshot, clip=clip)
        answer = page.locator("#answer").text_content() or "null"
        status = page.locator("#status").text_content()
        browser.close()
    print(json.dumps({"answer": json.loads(answer), "status": status, "errors": errors}))


if __name__ == "__main__":
    main()
