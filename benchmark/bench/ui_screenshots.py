"""The MLflow UI as a user sees it: ``python -m benchmark.bench.ui_screenshots`` (not part of CI).

Runs a small defense sweep (``+experiment=defense_sweep`` on FAST-like synthetic data; ``--full``
for all 76 jobs) into a temporary store, starts ``mlflow server`` on 127.0.0.1 at a free port,
and takes headless-Chromium screenshots of

- ``runs.png``: the experiment's run list as the harness's compare view opens it
  (:mod:`benchmark.tracking.ui_view`): configuration runs, strongest leakage first;
- ``run.png``: a configuration run's page (description = the summary, metrics, tags, lineage);
- ``run_metrics.png``: the same run's model-metrics tab, searched for ``train/``: the per-epoch
  training curves (mean over the models; each model's own is in its target run);
- ``charts.png``: the parallel-coordinates chart over defense, strength (``defense_option``) and
  ``privacy/strongest/tpr_at_fpr_0.001`` of every configuration run;
- ``compare.png``: MLflow's compare page of the sweep's configuration runs, its parallel
  coordinates set to the same axes (that page keeps no view: the script picks them).

Chromium is driven through its DevTools protocol (aiohttp's websocket client, an MLflow
dependency): the UI is a JavaScript app, so each page is waited for until its text stops
changing. The last line is JSON: the files, the configuration runs and how many carry every
parallel-coordinates axis (params ``defense``, ``strength``; the strongest TPR, test accuracy).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from mlflow.tracking import MlflowClient
from PIL import Image

from benchmark.tracking.ui_view import AXES_METRICS, AXES_PARAMS, page

#: The reduced sweep: one defense per family at two strengths, and the baselines.
REDUCED = (
    "none,strength/weight_decay_high,strength/relaxloss_low,strength/relaxloss_high,"
    "strength/dpsgd_low,strength/dpsgd_high,strength/topk_mid,label_only"
)
FAST = [
    "protocol.n_models=4",
    "training.epochs=3",
    "data=synthetic",
    "data.n_samples=200",
    "data.n_classes=5",
    "data.n_features=20",
]
WINDOW = (1400, 900)
CHROMIUM = "/usr/bin/chromium"


def run_sweep(store: Path, full: bool) -> None:
    """The sweep, as a user launches it, into ``store``."""
    command = [sys.executable, "-m", "benchmark.cli", "-m", "+experiment=defense_sweep", *FAST]
    if not full:
        command += [f"defense={REDUCED}", "protocol.canaries=0"]
    command += [
        f"tracking.uri=sqlite:///{store}/mlflow.db",
        f"tracking.artifact_location={store}/mlartifacts",
        f"hydra.sweep.dir={store}/sweep",
    ]
    print("sweep:", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(store: Path) -> Iterator[str]:
    """``mlflow server`` on the store, on 127.0.0.1; its base URL once /health answers."""
    port = free_port()
    log = open(store / "server.log", "w")  # noqa: SIM115 (closed below, after the server)
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri"]
        + [f"sqlite:///{store}/mlflow.db", "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                subprocess.run(["curl", "-sf", f"{base}/health"], check=True, capture_output=True)
                break
            except subprocess.CalledProcessError:
                time.sleep(0.5)
        else:
            raise RuntimeError(f"mlflow server did not answer; see {store / 'server.log'}")
        yield base
    finally:
        os.killpg(server.pid, 15)  # the server and its uvicorn worker, which it started
        server.wait()
        log.close()


class Browser:
    """Headless Chromium, one tab, driven through the DevTools protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.calls = ws, 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.calls += 1
        await self.ws.send_json({"id": self.calls, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json()
            if message.get("id") == self.calls:
                return message.get("result", {})

    async def js(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def settle(self, ready: str, timeout: float = 90) -> None:
        """Wait until ``ready`` (JS) is true and the page's text stopped changing."""
        last, deadline = None, time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            text = await self.js(f"({ready}) ? document.body.innerText : null")
            if text is not None and text == last and "Loading" not in text:
                return
            last = text
        print(f"  (page not settled after {timeout:.0f} s: screenshot anyway)", flush=True)

    async def open(self, url: str, ready: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.settle(ready)
        # The assistant side panel and the shared-view banner hide part of the page.
        for label in ("Close", "Hide banner"):
            await self.js(f"document.querySelector('button[aria-label=\"{label}\"]')?.click()")
        await asyncio.sleep(2)

    async def click_text(self, text: str) -> bool:
        """Click the innermost element whose own text is ``text`` (a tab, a button)."""
        return bool(
            await self.js(
                "(() => { const all = [...document.querySelectorAll('button,[role=tab],a,span')]"
                f".filter(e => e.innerText && e.innerText.trim() === {json.dumps(text)});"
                " if (!all.length) return false; all[all.length - 1].click(); return true; })()"
            )
        )

    async def choose(self, select: int, values: tuple[str, ...]) -> None:
        """Pick ``values`` in the page's ``select``-th multi-select (typed, then the option of
        exactly that name clicked: typing alone would pick the first partial match)."""
        box = f"document.querySelectorAll('.du-bois-light-select-selection-search-input')[{select}]"
        for value in values:
            await self.js(
                f"(() => {{ const i = {box}; i.closest('.du-bois-light-select-selector')"
                ".dispatchEvent(new MouseEvent('mousedown', {bubbles: true})); i.focus(); })()"
            )
            await self.call("Input.insertText", text=value)
            await asyncio.sleep(1.5)
            await self.js(
                "[...document.querySelectorAll('.du-bois-light-select-item-option')]"
                f".find(o => o.getAttribute('title') === {json.dumps(value)})?.click()"
            )
            await asyncio.sleep(1)
        await self.js("document.activeElement.blur(); document.querySelector('h1,h2')?.click()")
        await asyncio.sleep(2)

    async def shot(self, path: Path) -> None:
        data = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))
        # 128 colours: a UI screenshot stays legible at a third of the size (committed files).
        image = Image.open(path).convert("RGB")
        image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        print(f"  {path} ({path.stat().st_size // 1024} KB)", flush=True)


@contextmanager
def chromium(profile: Path) -> Iterator[int]:
    """Chromium with its DevTools port (read from the profile once it listens)."""
    shutil.rmtree(profile, ignore_errors=True)  # a previous call's port file would mislead
    profile.mkdir(parents=True)
    browser = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        + ["--remote-debugging-port=0", f"--user-data-dir={profile}"]
        + [f"--window-size={WINDOW[0]},{WINDOW[1]}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"
    try:
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.2)
        yield int(port_file.read_text().split()[0])
    finally:
        browser.terminate()
        browser.wait()


RUNS_READY = "/[1-9][0-9]* matching runs/.test(document.body.innerText)"


async def screenshots(base: str, store: Path, out: Path, port: int) -> dict[str, Any]:
    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    experiment = client.get_experiment_by_name("mia-bench-defense-sweep")
    eid = experiment.experiment_id
    runs = client.search_runs([eid], "params.defense_option LIKE '%'")
    chosen = max(runs, key=lambda r: r.data.metrics.get(AXES_METRICS[0], 0))
    async with aiohttp.ClientSession() as session:
        tabs = await (await session.get(f"http://127.0.0.1:{port}/json")).json()
        tab = next(t for t in tabs if t["type"] == "page")
        async with session.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            browser = Browser(ws)
            await browser.call(
                "Emulation.setDeviceMetricsOverride",
                width=WINDOW[0],
                height=WINDOW[1],
                deviceScaleFactor=1,
                mobile=False,
            )
            await browser.open(f"{base}/{page(eid)}", RUNS_READY)
            await browser.shot(out / "runs.png")
            await browser.open(f"{base}/{page(eid, charts=True)}", RUNS_READY)
            await browser.shot(out / "charts.png")
            run_page = page(eid, chosen.info.run_id)
            await browser.open(f"{base}/{run_page}", "true")
            await browser.shot(out / "run.png")
            metrics_page = run_page.replace("?", "/model-metrics?")
            await browser.open(f"{base}/{metrics_page}", "true")
            await browser.js(
                "document.querySelector('input[placeholder^=\"Search metric\"]').focus()"
            )
            await browser.call("Input.insertText", text="train/")  # the per-epoch curves
            await browser.settle("true")
            await browser.shot(out / "run_metrics.png")
            ids = json.dumps([r.info.run_id for r in runs]).replace(" ", "")
            compare = f'#/compare-runs?runs={ids}&experiments=["{eid}"]'
            await browser.open(
                f"{base}/{compare}&workflowType=machine_learning",
                "/Parallel Coord/.test(document.body.innerText)",
            )
            await browser.click_text("Clear All")
            await browser.choose(0, AXES_PARAMS)
            await browser.choose(1, AXES_METRICS)
            await browser.shot(out / "compare.png")
    with_axes = [
        r
        for r in runs
        if all(k in r.data.params for k in AXES_PARAMS)
        and all(k in r.data.metrics for k in AXES_METRICS)
    ]
    return {"runs": len(runs), "runs_with_every_axis": len(with_axes), "run": chosen.info.run_name}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/ui"))
    parser.add_argument("--full", action="store_true", help="the whole 76-job standard sweep")
    parser.add_argument("--store", type=Path, help="reuse a store a previous call left (--keep)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.store or Path(tempfile.mkdtemp(prefix="mia-ui-"))
    try:
        if args.store is None:
            run_sweep(store, args.full)
        with mlflow_server(store) as base, chromium(store / "chromium") as port:
            found = asyncio.run(screenshots(base, store, args.out, port))
    finally:
        if args.keep or args.store:
            print(f"store kept: {store}")
        else:
            shutil.rmtree(store, ignore_errors=True)
    found["files"] = sorted(p.name for p in args.out.glob("*.png"))
    print(json.dumps(found))


if __name__ == "__main__":
    main()
