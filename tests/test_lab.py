"""Chapter 4b's control panel in a live JupyterLab, driven through the page.

Starts ``jupyter lab`` (the one the ``book`` extra installs) on a free local port with its
own token and settings, opens a copy of chapter 4b in headless Chromium, runs the cells the
panel needs (set-up, the prompt, the panel: the whole chapter runs under nbval already), and
then works the panel as a reader does: the widgets render, the method menu switches the knobs
and back, two sliders move, Run with θ_low ≥ θ_high prints the config's error, and Run with
valid values prints the decoded text, ``identical_to_ar: True`` and a plotly tree. Browser
console errors fail the test. The server and its kernel are stopped by the test's own
process group. ``DYNATREE_LAB_SCREENSHOTS=dir`` saves the panel before and after Run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser import CHROMIUM, browser_or_skip

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "04b_playground.ipynb"
# Console messages that are not errors of the lab page: requests outside 127.0.0.1 are
# blocked on purpose (the lab's news/update check, fonts).
CONSOLE_ALLOW = [re.compile(p) for p in (
    r"Failed to load resource: net::ERR_FAILED",
)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _code_cells(notebook: Path) -> dict[str, int]:
    """Index (among all cells, as the lab counts them) of the cells the panel needs."""
    cells = json.loads(notebook.read_text())["cells"]
    wanted = {"install": "Install dynatree_lib where it is missing", "pair": "pair = dt.load_pair()",
              "prompt": "ids = dt.prompt_set(", "panel": "ControlPanel(pair"}
    found = {}
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        for name, marker in wanted.items():
            if cell["cell_type"] == "code" and marker in source and name not in found:
                found[name] = i
    assert set(found) == set(wanted), f"chapter 4b lost a cell the panel needs: {set(wanted) - set(found)}"
    return found


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free port, serving a copy of chapter 4b; stopped afterwards."""
    sync_playwright = browser_or_skip()
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent))
    if jupyter is None or subprocess.run([jupyter, "lab", "--version"], capture_output=True).returncode:
        message = "jupyter lab is not installed (the book extra installs it: pip install -e '.[book]')"
        if os.environ.get("DYNATREE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("lab")
    work = home / "work"
    work.mkdir()
    shutil.copy(ROOT / "book" / CHAPTER, work / CHAPTER)
    shutil.copytree(ROOT / "book" / "img", work / "img")  # the chapter's images, as in book/
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # No news or update check (offline), so no notification covers the panel.
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "HF_HUB_OFFLINE": "1"}
    # The kernel must be this interpreter: JUPYTER_DATA_DIR above hides any user kernelspec,
    # and the server's own "python3" kernel runs sys.executable.
    port, token = _free_port(), secrets.token_hex(16)
    log = open(home / "server.log", "w")  # closed below
    command = [jupyter, "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={work}",
               "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run a cell and await it
               *(["--allow-root"] if os.geteuid() == 0 else [])]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (home / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "jupyter lab did not start in 120 s"
            time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            yield {"url": url, "token": token, "browser": browser, "work": work, "log": home / "server.log"}
            browser.close()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and its kernel, by our process group
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()


def _run_cell(page, index: int) -> None:
    """Select cell ``index`` of the open notebook and run it; returns when it has finished."""
    ok = page.evaluate("""async (index) => {
        const panel = window.jupyterapp.shell.currentWidget;
        panel.content.activeCellIndex = index;
        await window.jupyterapp.commands.execute('notebook:run-cell');
        const cell = panel.content.widgets[index];
        return cell.model.executionCount !== null
            && !cell.model.outputs.toJSON().some(o => o.output_type === 'error');
    }""", index)
    assert ok, f"cell {index} of chapter 4b failed in the lab"


def _slider(panel, label: str):
    return panel.locator(f".widget-slider:has(label:text-is('{label}'))")


def _set_slider(panel, label: str, value: str) -> None:
    """Type ``value`` into the slider's readout and press Enter, as a reader can."""
    readout = _slider(panel, label).locator(".widget-readout")
    readout.click()
    readout.press("Control+A")
    readout.type(value)
    readout.press("Enter")
    assert readout.inner_text().strip() == value


def test_control_panel_in_jupyterlab(lab):
    errors: list[str] = []
    page = lab["browser"].new_page(viewport={"width": 1200, "height": 1800})
    page.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{lab['url']}/lab/tree/{CHAPTER}?reset&token={lab['token']}")
    page.wait_for_function("""() => {
        const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
            && w.sessionContext.session.kernel.status === 'idle';
    }""", timeout=120_000)

    cells = _code_cells(lab["work"] / CHAPTER)
    for name in ("install", "pair", "prompt", "panel"):
        _run_cell(page, cells[name])

    cell = page.locator(".jp-Notebook .jp-Cell").nth(cells["panel"])
    cell.scroll_into_view_if_needed()
    panel = cell.locator(".jp-OutputArea-output .jupyter-widgets").first
    panel.wait_for(timeout=60_000)
    text = cell.locator(".jp-Cell-outputArea").first.inner_text()
    assert "Error displaying widget" not in text and "Loading widget" not in text, text[:500]

    # The method menu switches the knobs: fixed shows D and B, not θ_high; and back.
    menu = panel.locator(".widget-dropdown:has(label:text-is('method')) select")
    assert menu.input_value() == "dynatree"
    assert _slider(panel, "θ_high").is_visible() and not _slider(panel, "B").is_visible()
    menu.select_option("fixed")
    _slider(panel, "B").wait_for(state="visible", timeout=10_000)
    assert not _slider(panel, "θ_high").is_visible()
    menu.select_option("dynatree")
    _slider(panel, "θ_high").wait_for(state="visible", timeout=10_000)
    assert not _slider(panel, "B").is_visible()

    # Two sliders move; θ_low above θ_high is refused with the config's own message.
    _set_slider(panel, "new tokens", "24")
    _set_slider(panel, "θ_low", "0.95")
    run = panel.locator("button", has_text="Run")
    output = panel.locator(".widget-output")
    run.click()
    output.get_by_text("invalid setting").wait_for(timeout=30_000)
    assert "theta_low" in output.inner_text()

    # Valid again: the run decodes, stays exact and draws the first tree.
    _set_slider(panel, "θ_low", "0.40")
    if os.environ.get("DYNATREE_LAB_SCREENSHOTS"):
        shots = Path(os.environ["DYNATREE_LAB_SCREENSHOTS"])
        shots.mkdir(parents=True, exist_ok=True)
        panel.screenshot(path=str(shots / "lab_panel_before_run.png"))
    run.click()
    output.get_by_text("identical_to_ar").wait_for(timeout=180_000)
    result = output.inner_text()
    assert "identical_to_ar: True" in result, result
    output.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    status = panel.locator(".widget-label", has_text="done:")
    assert status.inner_text().startswith("done: 24 tokens")
    if os.environ.get("DYNATREE_LAB_SCREENSHOTS"):
        output.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        panel.screenshot(path=str(shots / "lab_panel_after_run.png"))

    print("browser console errors (allow-listed ones included):", errors)
    ours = [e for e in errors if not any(p.search(e) for p in CONSOLE_ALLOW)]
    assert not ours, f"browser console errors in the lab: {ours}"
    page.close()
