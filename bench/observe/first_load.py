#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The web console's first load in headless Chromium, in real time: starts
a fresh browser per load, navigates over the DevTools protocol and waits for
the page to record when its first view had its data on screen
(document.body.dataset.firstRenderMs, ms since navigation start). Prints
one line per URL with the times of each load.

    first_load.py LOADS URL...
"""
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets  # Debian: python3-websockets

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--remote-debugging-port=0", "--window-size=1280,1000", "about:blank"]


async def load(ws_url, url):
    async with websockets.connect(ws_url, max_size=None) as ws:
        ids = iter(range(1, 1 << 30))

        async def call(method, **params):
            i = next(ids)
            await ws.send(json.dumps({"id": i, "method": method, "params": params}))
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("id") == i:
                    return msg.get("result", {})

        await call("Page.enable")
        await call("Page.navigate", url=url)
        deadline = time.time() + 60
        while time.time() < deadline:
            r = await call("Runtime.evaluate", expression="document.body && document.body.dataset.firstRenderMs",
                           returnByValue=True)
            v = r.get("result", {}).get("value")
            if v:
                return int(v)
            await asyncio.sleep(0.02)
        return None


def one(url):
    prof = tempfile.mkdtemp(prefix="trainyard-chromium-")
    proc = subprocess.Popen(["chromium", f"--user-data-dir={prof}"] + FLAGS,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(prof, "DevToolsActivePort")
        for _ in range(500):
            if os.path.exists(port_file) and os.path.getsize(port_file) > 0:
                break
            time.sleep(0.02)
        with open(port_file) as f:
            port = f.read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
        page = next(t for t in targets if t["type"] == "page")
        return asyncio.run(load(page["webSocketDebuggerUrl"], url))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(prof, ignore_errors=True)


def main(argv):
    loads = int(argv[1])
    for url in argv[2:]:
        times = [one(url) for _ in range(loads)]
        print(url, " ".join("?" if t is None else str(t) for t in times))


if __name__ == "__main__":
    main(sys.argv)
