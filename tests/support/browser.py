"""The admin in a real headless Chromium (Debian's `chromium`, driven by Playwright): the
browser, a page per test, and an officer's sign-in with password and TOTP code."""

from pathlib import Path

import pytest
from django.conf import settings

from tests.support.admin import code_for, device_of
from tests.support.translations import ensure_compiled_messages
from tests.support.world import OFFICER_PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


@pytest.fixture(scope="module")
def chromium():
    """One Chromium for the module. Playwright's sync API keeps an event loop in this thread,
    so Django's guard against ORM calls from async code is lifted for the tests' own ORM
    calls (the live server answers the browser from its own threads)."""
    from playwright.sync_api import sync_playwright

    ensure_compiled_messages()
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium, request):
    """A fresh browser context (cookies, language) per test."""
    locale = getattr(request, "param", "en-US")
    context = chromium.new_context(locale=locale, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def chinese_page(chromium):
    """The desk as a Chinese-speaking officer sees it: zh-CN, 1400 px wide, downloads kept."""
    context = chromium.new_context(
        locale="zh-CN", viewport={"width": 1400, "height": 1000}, accept_downloads=True
    )
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str, *, full: bool = False) -> None:
    """var/screenshots/NAME.png: the first screen, or the whole page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full)


def fits(page, selector: str) -> bool:
    """The element is no wider than the page: nothing to scroll sideways at 1400 px."""
    return page.evaluate(
        "(s) => { const e = document.querySelector(s);"
        " return e && e.getBoundingClientRect().right <= document.documentElement.clientWidth; }",
        selector,
    )


def sign_in(page, base_url: str, user) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", OFFICER_PASSWORD)
    page.fill("#id_otp_token", code_for(device_of(user)))
    page.click("#login-form input[type=submit]")
    page.wait_for_selector("#dashboard")
