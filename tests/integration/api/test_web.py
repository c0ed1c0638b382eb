"""The web page's routes on a real `tapeline serve`: the page, its files, nothing shadowed."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.api.web import STATIC_DIR
from tests.server import api_server

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def server(
    subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    log = tmp_path_factory.mktemp("logs") / "web.log"
    with api_server(subprocess_env, log, "--no-worker") as base:
        yield base


def test_the_page_is_served_at_the_root_locked_to_its_own_origin(server: str) -> None:
    page = httpx.get(f"{server}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert '<script type="module" src="/web/main.js">' in page.text


def test_every_file_the_page_loads_is_served_with_its_type(server: str) -> None:
    """From index.html through every `import ... from "./x.js"`: a missing module breaks the
    whole page in a browser, so each one is fetched here."""
    wanted = re.findall(r'(?:src|href)="/web/([^"]+)"', httpx.get(f"{server}/").text)
    seen: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        response = httpx.get(f"{server}/web/{name}")
        assert response.status_code == 200, name
        assert response.headers["cache-control"] == "no-cache"
        if name.endswith(".js"):
            assert "javascript" in response.headers["content-type"], name
            wanted += re.findall(r'from "\./([^"]+)"', response.text)
    assert {"main.js", "upload.js", "live.js", "tapeline.css"} <= seen
    assert seen == {p.name for p in STATIC_DIR.iterdir()} - {"index.html"}


def test_the_page_shadows_no_api_or_health_route(server: str) -> None:
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    refused = httpx.get(f"{server}/api/runs")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    missing = httpx.get(f"{server}/web/no-such-file.js")
    assert missing.status_code == 404
    outside = httpx.get(f"{server}/web/..%2F..%2Fapp.py")
    assert outside.status_code == 404 and "create_app" not in outside.text
    assert httpx.post(f"{server}/").status_code == 405


def test_an_installed_package_carries_the_page() -> None:
    """setuptools ships only files matched by package-data: every page file must match."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["service"]
    package = ROOT / "service"
    shipped = {path for pattern in globs for path in package.glob(pattern)}
    assert set(STATIC_DIR.iterdir()) <= shipped
