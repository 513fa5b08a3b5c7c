"""The interactive API docs work with no internet: a real browser renders them from assets the API serves.

The browser may reach only the API under test: every other request is refused and recorded, as it would
fail on a machine without internet. The page must then still list every operation of the schema.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, Response, Route, sync_playwright

from tests.e2e.stack import TEST_LIMITS, migrate
from tests.support.services import embedded_env, pagemill_api

pytestmark = pytest.mark.e2e

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# Debian's chromium (scripts/install-system-deps.sh installs it); Playwright never downloads a browser.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `pagemill api` process in embedded mode; its base URL."""
    env = {**TEST_LIMITS, **embedded_env(tmp_path_factory.mktemp("docs-data"))}
    migrate(env)
    with pagemill_api(env) as (_, base_url):
        yield base_url


@dataclass
class Traffic:
    """What the page asked for: local requests with their statuses, and refused outside requests."""

    origin: str
    local: dict[str, int] = field(default_factory=dict)
    external: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def route(self, route: Route, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == self.origin:
            route.continue_()
        else:
            self.external.append(request.url)
            route.abort("internetdisconnected")

    def response(self, response: Response) -> None:
        if response.url.startswith(self.origin):
            self.local[response.url] = response.status


def _operation_count(api_url: str) -> int:
    schema = httpx.get(f"{api_url}/api/v1/openapi.json", timeout=30).json()
    # Both UIs render the OpenAPI 3.1 `webhooks` (the payloads Pagemill POSTs) as operations too.
    items = [*schema["paths"].values(), *schema.get("webhooks", {}).values()]
    return sum(method in HTTP_METHODS for item in items for method in item)


def _render(api_url: str, path: str, selector: str) -> tuple[Traffic, int, str]:
    """Open ``path`` offline in chromium, wait for ``selector``; the traffic, its match count, the HTML."""
    assert CHROMIUM, "chromium is missing: run scripts/install-system-deps.sh (Debian package chromium)"
    traffic = Traffic(origin=api_url)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page: Page = browser.new_page()
            page.route("**/*", traffic.route)
            page.on("response", traffic.response)
            page.on("console", lambda message: traffic.console.append(message.text))
            page.on("pageerror", lambda error: traffic.console.append(f"pageerror: {error}"))
            response = page.goto(f"{api_url}{path}", wait_until="load")
            assert response is not None and response.status == 200
            # The page may load nothing from elsewhere, even if its scripts try (see api/routes/docs.py).
            assert "default-src 'self'" in response.headers["content-security-policy"]
            html = response.text()
            try:
                page.wait_for_selector(selector, timeout=30_000)
            except Exception as exc:
                raise AssertionError(
                    f"{path} rendered no {selector!r} offline; refused outside requests: {traffic.external}"
                ) from exc
            page.wait_for_load_state("networkidle")
            count = page.locator(selector).count()
        finally:
            browser.close()
    return traffic, count, html


def _assert_offline(traffic: Traffic, html: str) -> None:
    assert traffic.external == [], f"the page asked for outside URLs: {traffic.external}"
    not_ok = {url: status for url, status in traffic.local.items() if status != 200}
    assert not not_ok, f"local assets not served: {not_ok}"
    # Nothing in the page itself points outside (a favicon or a font would fail later, quietly).
    assert not re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", html), html


@pytest.mark.parametrize(
    ("path", "selector"),
    [("/api/v1/docs", ".opblock"), ("/api/v1/redoc", "[data-section-id^='operation/']")],
    ids=["swagger-ui", "redoc"],
)
def test_docs_render_every_operation_offline(api_url: str, path: str, selector: str) -> None:
    traffic, count, html = _render(api_url, path, selector)
    _assert_offline(traffic, html)
    assert not [text for text in traffic.console if text.startswith("pageerror")], traffic.console
    # Only a decorative image may be refused by the policy (ReDoc's "powered by" logo); never a script,
    # style or the schema fetch that the page needs.
    refused = [text for text in traffic.console if "Content Security Policy" in text]
    assert all('"img-src ' in text for text in refused), refused
    assert count == _operation_count(api_url)
    # The page fetched the schema and its scripts from the API itself.
    fetched = {urlsplit(url).path for url in traffic.local}
    assert "/api/v1/openapi.json" in fetched
    assert any(name.endswith(".js") for name in fetched), fetched


def test_docs_and_their_assets_need_no_key(api_url: str) -> None:
    pages = ["/api/v1/docs", "/api/v1/redoc", "/api/v1/openapi.json"]
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for path in pages:
            assert client.get(path).status_code == 200, path
        html = client.get("/api/v1/docs").text + client.get("/api/v1/redoc").text
        assets = set(re.findall(r"""(?:src|href)=["']?(/[^"' >]+)""", html))
        assert assets, html
        for asset in assets:
            response = client.get(asset)
            assert response.status_code == 200, (asset, response.text[:200])
        # Opening the docs must not open anything else: a path that only starts like one stays protected.
        assert client.post("/api/v1/documents").status_code == 401
        assert client.get("/api/v1/docsx").status_code == 401
