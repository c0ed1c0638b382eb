"""The web page in a real browser: Debian's chromium, headless, driven by Playwright.

One `tapeline serve` (with its worker and the local engine) serves every test here; each test
opens a fresh browser context, so nothing the page keeps in localStorage leaks between them.
A screenshot of the finished run page is saved under the test's tmp dir and copied to
`test-artifacts/`.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Request,
    Route,
    expect,
    sync_playwright,
)

from tests.server import api_server, env_with, tapeline
from tests.speech import long_recording, spoken_once
from tests.wer import normalized

pytestmark = pytest.mark.timeout(180)

CHROMIUM = Path("/usr/bin/chromium")
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
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN_TOKEN = "admin-secret-for-tests-0123456789abcdef"  # the subprocess_env fixture's ADMIN_TOKEN
# Words of tests.speech's first sentences, as the local engine hears them in flite's voice.
SPOKEN = {"weather", "sunny", "warm", "umbrella", "office", "brother", "guitar", "evening", "train"}
WAIT_MS = 90_000


@dataclass
class Site:
    base: str
    token: str
    recording: Path


@pytest.fixture(scope="module")
def site(
    subprocess_env: dict[str, str], speech_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    # Every run is queued (none inline), so the page follows it over the streams.
    env = env_with(subprocess_env, TRANSCRIBE_SYNC_MAX_DURATION_MS="0")
    created = subprocess.run(
        tapeline("token", "create", "wendy"), env=env, capture_output=True, text=True, timeout=60
    )
    assert created.returncode == 0, created.stderr
    recording, _ = long_recording(speech_dir / "web-page.wav", 0.12, sentences=_SENTENCES)
    logs = tmp_path_factory.mktemp("browser")
    with api_server(env, logs / "serve.log") as base:
        yield Site(base, created.stdout.strip(), recording)


_SENTENCES = (
    "the weather today is sunny and warm",
    "please bring the red umbrella to the office",
    "my brother plays the guitar every evening",
    "the train to the city leaves at seven in the morning",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900})
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


def signed_in(context: BrowserContext, token: str) -> None:
    """Start every page of `context` signed in, as a returning visitor would be."""
    context.add_init_script(f"localStorage.setItem('tapeline.token', {token!r})")


def drop_file(page: Page, selector: str, path: Path, mime: str) -> None:
    """Drop `path` on `selector` the way a drag from the desktop does: a DataTransfer of Files."""
    transfer = page.evaluate_handle(
        """([name, mime, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""",
        [path.name, mime, base64.b64encode(path.read_bytes()).decode()],
    )
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def watch_progress(page: Page) -> None:
    """Record every value the run page's progress bar takes, in `window.seenProgress`."""
    page.evaluate(
        """() => {
            const bar = document.getElementById("run-progress");
            window.seenProgress = [bar.value];
            new MutationObserver(() => window.seenProgress.push(bar.value))
                .observe(bar, { attributes: true, attributeFilter: ["value"] });
        }"""
    )


def tune_uploads(page: Page, **settings: object) -> None:
    """Change upload.js's `settings` in this page (small chunks make a small file take several
    PATCHes). The page's modules share the one instance of upload.js, so they see it too."""
    page.evaluate(
        "async (s) => Object.assign((await import('/web/upload.js')).settings, s)", settings
    )


def save_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    copy = ARTIFACTS / name
    shutil.copyfile(shot, copy)
    print(f"screenshot: {copy}")
    return copy


def test_a_user_signs_in_drops_a_recording_and_reads_its_transcript_live(
    site: Site, context: BrowserContext, tmp_path: Path
) -> None:
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(site.base + "/")

    page.get_by_label("Your API token").fill("tl_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.get_by_label("Your API token").fill(site.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your runs")).to_be_visible()
    expect(page.locator("#runs-live")).to_have_attribute("data-mode", "live")

    drop_file(page, "#dropzone", site.recording, "audio/wav")
    upload = page.locator(".upload").first
    expect(upload).to_have_attribute("data-state", "done")
    assert upload.locator("progress").evaluate("bar => bar.value") == 100
    tus = [u for u in requested if re.search(r"/api/uploads/([0-9a-f-]{36})?$", u)]
    assert tus, "the page uploads through tus"
    assert not [u for u in requested if u.endswith("/api/runs")], "the upload queues the run"
    row = page.locator("#runs tbody tr", has_text=site.recording.name)
    expect(row).to_have_count(1)
    save_screenshot(page, tmp_path, "web-runs.png")

    row.get_by_role("link").click()
    expect(page.locator("#run-title")).to_have_text(site.recording.name)
    watch_progress(page)
    expect(page.locator("#run-live")).to_have_attribute("data-mode", "live")
    expect(page.locator("#run-status")).to_have_text("Done", timeout=WAIT_MS)
    expect(page.locator("#run-percent")).to_have_text("100%")
    seen = page.evaluate("window.seenProgress")
    print(f"progress bar values seen: {seen}")
    assert seen[-1] == 100 and seen == sorted(seen), seen
    assert not [u for u in requested if u.endswith("/progress")], "no polling while SSE works"
    assert [u for u in requested if re.search(r"/api/runs/[0-9a-f-]{36}/events\?", u)]

    segments = page.locator("#segments li")
    expect(segments.first).to_be_visible()
    assert re.fullmatch(r"\d\d:\d\d\.\d", segments.first.locator(".ts").inner_text())
    heard = set(normalized(page.locator("#segments").inner_text()).split())
    assert len(SPOKEN & heard) >= 3, heard
    assert page.locator("#run-elapsed").inner_text() != "–"

    with page.expect_download() as download:
        page.get_by_role("button", name="Download as SRT").click()
    assert download.value.suggested_filename.endswith(".srt")
    srt = Path(download.value.path()).read_text()
    assert re.search(r"^1\n00:00:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n", srt, re.M), srt
    save_screenshot(page, tmp_path, "web-run-page.png")

    page.get_by_role("link", name="← All runs").click()
    expect(page.locator("#runs tbody tr", has_text=site.recording.name)).to_have_attribute(
        "data-status", "succeeded"
    )
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Your API token")).to_be_visible()
    assert page.evaluate("localStorage.getItem('tapeline.token')") is None


def test_the_run_page_shows_the_text_as_each_part_is_transcribed(
    site: Site, context: BrowserContext, speech_dir: Path
) -> None:
    recording, _ = long_recording(speech_dir / "web-partials.wav", 3.0, sentences=_SENTENCES)
    signed_in(context, site.token)
    # Record every state of the transcript list from the page's first script on, so a part
    # that arrives between two of Playwright's polls is still seen.
    context.add_init_script(
        """window.seenTranscript = [];
        new MutationObserver(() => {
            const list = document.getElementById("segments");
            const heading = document.getElementById("transcript-h");
            if (!list || !heading) return;
            const state = [list.dataset.partial || "", list.children.length, heading.textContent];
            const last = window.seenTranscript.at(-1);
            if (!last || last.join() !== state.join()) window.seenTranscript.push(state);
        }).observe(document, { subtree: true, childList: true, attributes: true });"""
    )
    created = httpx.post(
        f"{site.base}/api/transcribe",
        headers={"Authorization": f"Bearer {site.token}"},
        files={"file": recording.read_bytes()},
        data={"engine": "local"},
        timeout=60,
    )
    assert created.status_code == 202, created.text
    page = context.new_page()
    page.goto(f"{site.base}/#/runs/{created.json()['id']}")

    # The text so far is already a place to play from: a word of the first part, clicked while
    # the rest is still being transcribed, moves the player to that word.
    word = page.locator('#segments[data-partial="true"] li .word').first
    word.wait_for()
    page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    word_start = int(word.get_attribute("data-start") or 0)
    word.click()
    clicked = page.evaluate(
        """() => ({ time: document.getElementById("player").currentTime,
                    partial: document.getElementById("segments").dataset.partial })"""
    )
    assert clicked["partial"] == "true", "the run finished before the click: not a partial"
    assert word_start <= clicked["time"] * 1000 <= word_start + 500, (word_start, clicked)

    expect(page.locator("#run-status")).to_have_text("Done", timeout=WAIT_MS)
    expect(page.locator("#segments")).to_have_attribute("data-partial", "false")
    seen = page.evaluate("window.seenTranscript")
    print(f"transcript list states seen: {seen}")
    growing = [count for partial, count, heading in seen if partial == "true"]
    assert growing and growing == sorted(growing), seen
    assert all(h == "Transcript so far" for p, _, h in seen if p == "true"), seen
    final = page.locator("#segments li").count()
    assert final >= growing[-1] and seen[-1][2] == "Transcript"
    heard = set(normalized(page.locator("#segments").inner_text()).split())
    assert len(SPOKEN & heard) >= 3, heard


def test_the_run_page_polls_progress_when_the_streams_fail(
    site: Site, context: BrowserContext, tmp_path: Path
) -> None:
    signed_in(context, site.token)
    page = context.new_page()
    progress_polls: list[str] = []
    page.on(
        "request", lambda r: progress_polls.append(r.url) if r.url.endswith("/progress") else None
    )

    def refuse(route: Route) -> None:
        route.fulfill(status=503, content_type="text/plain", body="streams are down")

    # The global stream answers 503 (EventSource closes for good); every per-run stream
    # connection fails at the network level (EventSource keeps retrying).
    page.route(re.compile(r".*/api/runs/events\?.*"), refuse)
    page.route(re.compile(r".*/api/runs/[0-9a-f-]{36}/events\?.*"), lambda r: r.abort())
    page.goto(site.base + "/")
    expect(page.locator("#runs-live")).to_have_attribute("data-mode", "polling")

    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("this is a shopping list, not a recording\n" * 20)
    page.locator("#file").set_input_files(not_audio)
    expect(page.locator(".upload .problem")).to_contain_text("could not be read as audio")

    page.get_by_label("Engine").select_option("local")
    page.get_by_label("Language").fill("en")
    page.locator("#file").set_input_files(site.recording)
    page.locator(".upload[data-state=done]").get_by_role("link", name="Open its run").click()
    expect(page.locator("#run-live")).to_have_attribute("data-mode", "polling")
    expect(page.locator(".meta")).to_contain_text("Engine: local · Language: en")
    expect(page.locator("#run-status")).to_have_text("Done", timeout=WAIT_MS)
    expect(page.locator("#run-progress")).to_have_js_property("value", 100)
    expect(page.locator("#segments li").first).to_be_visible()
    assert progress_polls, "the page fell back to GET /progress"


def test_the_admin_stops_and_starts_the_worker_while_a_user_cancels_and_retries(
    site: Site, browser: Browser, context: BrowserContext, tmp_path: Path
) -> None:
    signed_in(context, ADMIN_TOKEN)
    admin = context.new_page()
    admin.goto(site.base + "/")
    admin.get_by_role("link", name="Workers").click()
    own = admin.locator("#own-worker")
    expect(own).to_have_attribute("data-state", "running")
    first_id = own.get_attribute("data-worker-id")
    assert first_id
    row = admin.locator(f'#workers tr[data-worker-id="{first_id}"]')
    expect(row).to_have_attribute("data-state", "running")
    expect(row.locator("time")).to_have_text(re.compile(r"^(now|\d+ sec\. ago)$"))
    state = httpx.get(
        f"{site.base}/api/admin/worker", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()
    expect(admin.locator("#queue dd[data-status=succeeded]")).to_have_text(
        str(state["queue"]["succeeded"])
    )

    admin.get_by_role("button", name="Stop worker").click()
    expect(own).to_have_attribute("data-state", "stopped")
    expect(row).to_have_attribute("data-state", "stopped")

    # With no worker, a user's run waits: they cancel it, then retry it.
    created = httpx.post(
        f"{site.base}/api/transcribe",
        headers={"Authorization": f"Bearer {site.token}"},
        files={"file": site.recording.read_bytes()},
        timeout=60,
    )
    assert created.status_code == 202, created.text
    user_context = browser.new_context()
    user_context.set_default_timeout(WAIT_MS)
    signed_in(user_context, site.token)
    user = user_context.new_page()
    user.goto(f"{site.base}/#/runs/{created.json()['id']}")
    expect(user.locator("#run-status")).to_have_text("Waiting")
    expect(user.locator("#run-remaining")).to_have_text("Waiting for a worker")
    user.get_by_role("button", name="Cancel").click()
    expect(user.locator("#run-status")).to_have_text("Cancelled")
    expect(user.locator("#run-problem")).to_contain_text("You cancelled this run")
    expect(user.get_by_role("button", name="Cancel")).to_be_hidden()
    user.get_by_role("button", name="Retry").click()
    expect(user.locator("#run-status")).to_have_text("Waiting")
    expect(user.locator("#run-problem")).to_be_hidden()

    admin.get_by_role("button", name="Start worker").click()
    expect(own).to_have_attribute("data-state", "running")
    second_id = own.get_attribute("data-worker-id")
    assert second_id and second_id != first_id
    expect(admin.locator(f'#workers tr[data-worker-id="{second_id}"]')).to_have_attribute(
        "data-state", "running"
    )
    save_screenshot(admin, tmp_path, "web-admin.png")

    expect(user.locator("#run-status")).to_have_text("Done", timeout=WAIT_MS)
    expect(user.locator("#run-live")).to_have_attribute("data-mode", "live")
    expect(user.locator("#segments li").first).to_be_visible()
    user_context.close()


def test_a_dropped_upload_resumes_from_where_the_server_stands(
    site: Site, context: BrowserContext
) -> None:
    signed_in(context, site.token)
    page = context.new_page()
    answered: list[tuple[str, str, int]] = []
    page.on("response", lambda r: answered.append((r.request.method, r.url, r.status)))
    patches: list[str] = []

    def drop_the_second_patch(route: Route) -> None:
        if route.request.method == "PATCH":
            patches.append(route.request.url)
            if len(patches) == 2:
                route.abort("connectionreset")
                return
        route.continue_()

    page.route(re.compile(r".*/api/uploads/[0-9a-f-]{36}$"), drop_the_second_patch)
    page.goto(site.base + "/")
    expect(page.get_by_role("heading", name="Your runs")).to_be_visible()
    chunk = 64 * 1024
    size = site.recording.stat().st_size
    assert size > 3 * chunk, size
    tune_uploads(page, chunkSize=chunk)

    page.locator("#file").set_input_files(site.recording)
    done = page.locator(".upload[data-state=done]")
    expect(done).to_be_visible()

    created = [url for method, url, status in answered if method == "POST" and status == 201]
    heads = [url for method, url, status in answered if method == "HEAD" and status == 200]
    assert len(created) == 1 and heads, answered
    (upload_url,) = set(patches)
    assert len(patches) == -(-size // chunk) + 1, patches  # every chunk, and one sent again
    state = httpx.get(upload_url, headers={"Authorization": f"Bearer {site.token}"}).json()
    assert (state["status"], state["offset"], state["length"]) == ("completed", size, size)
    assert state["runId"]
    kept = page.evaluate(
        "Object.keys(localStorage).filter((k) => k.startsWith('tapeline.upload:'))"
    )
    assert kept == [], "a finished upload is forgotten"

    done.get_by_role("link", name="Open its run").click()
    expect(page).to_have_url(re.compile(f"#/runs/{state['runId']}$"))
    expect(page.locator("#run-status")).to_have_text("Done", timeout=WAIT_MS)


def test_an_upload_cut_off_by_a_reload_resumes_when_the_file_is_dropped_again(
    site: Site, context: BrowserContext
) -> None:
    signed_in(context, site.token)
    page = context.new_page()
    sent: list[tuple[str, str, str | None]] = []  # method, url, Upload-Offset

    def note(request: Request) -> None:
        if "/api/uploads/" in request.url:
            sent.append((request.method, request.url, request.headers.get("upload-offset")))

    page.on("request", note)
    chunk = 64 * 1024

    def only_the_first_patch(route: Route) -> None:
        patched = [m for m, _, _ in sent if m == "PATCH"]
        if route.request.method == "PATCH" and len(patched) > 1:
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route(re.compile(r".*/api/uploads/[0-9a-f-]{36}$"), only_the_first_patch)
    page.goto(site.base + "/")
    expect(page.get_by_role("heading", name="Your runs")).to_be_visible()
    tune_uploads(page, chunkSize=chunk, retryDelays=[0])
    page.locator("#file").set_input_files(site.recording)
    failed = page.locator(".upload[data-state=failed] .problem")
    expect(failed).to_contain_text("could not be reached")
    kept = page.evaluate("Object.values(localStorage).filter((v) => v.startsWith('/api/uploads/'))")
    assert len(kept) == 1, kept

    page.unroute(re.compile(r".*/api/uploads/[0-9a-f-]{36}$"))
    page.reload()
    expect(page.get_by_role("heading", name="Your runs")).to_be_visible()
    tune_uploads(page, chunkSize=chunk)
    sent.clear()
    page.locator("#file").set_input_files(site.recording)
    expect(page.locator(".upload[data-state=done]")).to_be_visible()
    assert [m for m, _, _ in sent if m == "POST"] == [], "no second upload was started"
    assert sent[0][:2] == ("HEAD", site.base + kept[0]), sent
    assert [(m, offset) for m, _, offset in sent[1:2]] == [("PATCH", str(chunk))], sent
    state = httpx.get(site.base + kept[0], headers={"Authorization": f"Bearer {site.token}"}).json()
    assert (state["status"], state["offset"]) == ("completed", site.recording.stat().st_size)


def test_stop_terminates_the_upload_on_the_server(site: Site, context: BrowserContext) -> None:
    signed_in(context, site.token)
    page = context.new_page()
    held: list[Route] = []  # PATCHes that never get an answer: the upload hangs at 0%

    def hold_patches(route: Route) -> None:
        if route.request.method == "PATCH":
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(r".*/api/uploads/[0-9a-f-]{36}$"), hold_patches)
    page.goto(site.base + "/")
    expect(page.get_by_role("heading", name="Your runs")).to_be_visible()
    with page.expect_request(lambda r: r.method == "PATCH"):
        page.locator("#file").set_input_files(site.recording)
    item = page.locator(".upload")
    with page.expect_response(lambda r: r.request.method == "DELETE") as terminated:
        item.get_by_role("button", name="Stop").click()
    expect(item.locator(".problem")).to_have_text("Upload stopped.")
    assert terminated.value.status == 204
    gone = httpx.get(terminated.value.url, headers={"Authorization": f"Bearer {site.token}"})
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "deleted"), gone.text
    assert held and page.evaluate("Object.keys(localStorage).length") == 1  # the token only


def test_the_pages_helpers_read_times_errors_and_progress_right(
    site: Site, context: BrowserContext
) -> None:
    page = context.new_page()
    page.goto(site.base + "/")
    results = page.evaluate(
        """async () => {
            const f = await import("/web/format.js");
            const m = await import("/web/messages.js");
            const a = await import("/web/api.js");
            const processing = { status: "processing", attempts: 1, progress: 50 };
            const tick = { status: "processing", progress: 10 };
            return {
                durations: [f.duration(0), f.duration(65_000), f.duration(3_723_000)],
                stamps: [f.timestamp(61_250), f.timestamp(3_661_000)],
                known: m.errorText({ code: "job_timeout", message: "JOB_TIMEOUT_MS" }),
                proxyPage: m.errorText(
                    a.errorFromBody(502, "<html><h1>502 Bad Gateway</h1></html>").error),
                ago: [f.ago(new Date(Date.now() - 5_000).toISOString()),
                      f.ago(new Date(Date.now() - 180_000).toISOString())],
                unknown: m.errorText({ code: "engine_not_configured", message: "Available: x." }),
                tickBehind: m.nextProgress(processing, tick),
                nextAttempt: m.nextProgress(processing, { ...tick, attempts: 2 }),
                requeued: m.nextProgress(processing, { status: "queued", progress: 0 }),
            };
        }"""
    )
    assert results["durations"] == ["0:00", "1:05", "1:02:03"]
    assert results["stamps"] == ["01:01.2", "1:01:01.0"]
    assert results["known"].startswith("Transcribing took longer than this server allows")
    assert results["unknown"] == "Available: x."
    assert "HTTP 502" in results["proxyPage"] and "<" not in results["proxyPage"]
    assert results["ago"] == ["5 sec. ago", "3 min. ago"]
    assert (results["tickBehind"], results["nextAttempt"], results["requeued"]) == (50, 10, 0)


def test_the_sign_in_link_signs_in_and_the_signed_out_page_offers_no_navigation(
    site: Site, context: BrowserContext
) -> None:
    page = context.new_page()
    page.goto(site.base + "/")
    expect(page.get_by_label("Your API token")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    expect(page.get_by_role("link", name="Runs")).to_have_count(0)

    page.goto(f"{site.base}/#token={site.token}")
    expect(page.get_by_role("heading", name="Your runs")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert page.url == f"{site.base}/#/", "the token left the address bar"
    assert page.evaluate("localStorage.getItem('tapeline.token')") == site.token
    assert page.evaluate("history.length") == 1 or "#token" not in page.evaluate("location.href")


def transcribed(base: str, token: str, path: Path) -> str:
    """Queue `path` and wait until its run succeeded; returns the run id."""
    headers = {"Authorization": f"Bearer {token}"}
    created = httpx.post(
        f"{base}/api/transcribe",
        headers=headers,
        files={"file": (path.name, path.read_bytes(), "audio/wav")},
        timeout=60,
    )
    assert created.status_code in (200, 202), created.text
    return str(created.json()["id"])


def wait_succeeded(base: str, token: str, run_ids: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        runs = [httpx.get(f"{base}/api/runs/{r}", headers=headers).json() for r in run_ids]
        if all(run["status"] == "succeeded" for run in runs):
            return
        assert not any(run["status"] in ("failed", "cancelled") for run in runs), runs
        time.sleep(0.3)
    raise AssertionError("the recordings were not transcribed in time")


def audio_state(page: Page) -> dict[str, float]:
    return dict(
        page.evaluate(
            """() => {
                const audio = document.getElementById("player");
                const current = document.querySelector("#segments li.current");
                return { time: audio.currentTime, paused: audio.paused,
                         start: current ? Number(current.dataset.start) : -1 };
            }"""
        )
    )


def test_search_opens_the_moment_and_the_player_follows_the_transcript(
    site: Site,
    context: BrowserContext,
    speech_dir: Path,
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    # A user of her own, so the other tests' recordings do not match her searches.
    token = subprocess.run(
        tapeline("token", "create", "sam"), env=subprocess_env, capture_output=True, text=True
    ).stdout.strip()
    # "guitar" comes late (after 15 s, the longest line), so it is never on the first line, even
    # when the model leaves out the punctuation that ends sentences.
    recordings = {
        "guitar.wav": (
            "the weather today is sunny and warm",
            "we planted tomatoes and carrots in the garden",
            "the doctor said i should drink more water",
            "the museum opens on sunday afternoon",
            "she bought fresh bread and cheese at the market",
            "my brother plays the guitar",
        ),
        "umbrella.wav": ("please bring the red umbrella to the office",),
        "train.wav": ("the train to the city leaves at seven in the morning",),
    }
    run_ids = {
        name: transcribed(site.base, token, spoken_once(speech_dir / name, lines))
        for name, lines in recordings.items()
    }
    wait_succeeded(site.base, token, list(run_ids.values()))

    signed_in(context, token)
    page = context.new_page()
    page.goto(site.base + "/")
    page.get_by_role("searchbox", name="Search your transcripts").fill("guitar")
    page.get_by_role("button", name="Search").click()
    results = page.locator("#search-results > li")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("guitar.wav")
    expect(results.first.locator("mark")).to_have_text(re.compile("guitar", re.I))
    moment = results.first.locator("a.moment").first
    at_ms = int(re.sub(r".*\?t=", "", moment.get_attribute("href") or ""))
    assert at_ms > 1000, "guitar is said in the second sentence"
    moment.click()

    expect(page.locator("#run-title")).to_have_text("guitar.wav")
    expect(page.locator("#segments li.current")).to_have_count(1)
    expect(page.locator("#segments li.current")).to_contain_text("guitar")
    page.wait_for_function(
        "(at) => Math.abs(document.getElementById('player').currentTime * 1000 - at) < 300",
        arg=at_ms,
    )

    # Play from a clicked line: the time lands in it. Then from the last word before the match:
    # playback crosses into the matching line, and the mark follows.
    first = page.locator("#segments li").first
    first_start = int(first.get_attribute("data-start") or 0)
    first_end = int(first.get_attribute("data-end") or 0)
    first.locator(".text").click()
    state = audio_state(page)
    assert first_start <= state["time"] * 1000 <= first_end, state
    assert state["start"] == first_start, state
    page.wait_for_function("() => !document.getElementById('player').paused")
    previous = page.locator(f'#segments li:has(+ li[data-start="{at_ms}"])')
    previous_start = int(previous.get_attribute("data-start") or 0)
    previous.locator(".word").last.click()
    assert audio_state(page)["time"] * 1000 < at_ms
    page.wait_for_function(
        "(at) => document.querySelector('#segments li.current')?.dataset.start === String(at)",
        arg=at_ms,
        timeout=WAIT_MS,
    )
    assert audio_state(page)["time"] * 1000 >= at_ms
    save_screenshot(page, tmp_path, "web-player.png")

    # Keyboard: space pauses, arrows step to the line before and back.
    page.locator("#run-title").click()
    page.keyboard.press(" ")
    page.wait_for_function("() => document.getElementById('player').paused")
    page.keyboard.press("ArrowUp")
    assert audio_state(page)["start"] == previous_start
    page.keyboard.press("ArrowDown")
    assert audio_state(page)["start"] == at_ms

    # A word plays from its own time, and its line is the one marked.
    word = page.locator("#segments li .word", has_text=re.compile("^guitar", re.I)).first
    word_start = int(word.get_attribute("data-start") or 0)
    assert word_start >= at_ms
    word.click()
    state = audio_state(page)
    assert word_start <= state["time"] * 1000 <= word_start + 500, (word_start, state)
    assert state["start"] == at_ms, state

    # Rename, then delete with confirmation.
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("New name").fill("brother's guitar.wav")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#run-title")).to_have_text("brother's guitar.wav")
    headers = {"Authorization": f"Bearer {token}"}
    audio_id = httpx.get(f"{site.base}/api/runs/{run_ids['guitar.wav']}", headers=headers).json()[
        "audioId"
    ]
    audio_url = f"{site.base}/api/audio/{audio_id}"
    assert httpx.get(audio_url, headers=headers).json()["filename"] == "brother's guitar.wav"
    messages: list[str] = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Delete recording").click()
    expect(page.get_by_role("heading", name="Your runs")).to_be_visible()
    assert messages and "brother's guitar.wav" in messages[0]
    assert httpx.get(audio_url, headers=headers).status_code == 404


def test_the_page_speaks_simplified_chinese_to_a_chinese_browser(
    site: Site, browser: Browser
) -> None:
    context = browser.new_context(locale="zh-CN")
    try:
        page = context.new_page()
        page.goto(site.base + "/")
        expect(page.get_by_role("heading", name="登录")).to_be_visible()
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        page.get_by_label("你的 API 令牌").fill(site.token)
        page.get_by_role("button", name="登录").click()
        expect(page.get_by_role("heading", name="你的转写任务")).to_be_visible()
        expect(page.get_by_role("button", name="退出登录")).to_be_visible()
        ago = page.evaluate(
            """async () => (await import("/web/format.js"))
                .ago(new Date(Date.now() - 180_000).toISOString())"""
        )
        assert ago == "3分钟前"
    finally:
        context.close()
