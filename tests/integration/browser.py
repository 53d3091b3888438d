#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Headless Chromium for the web console's tests, in real time, driven over
the DevTools protocol on a pipe (--remote-debugging-pipe: no port, nothing
to install beyond Debian's chromium). Loads URL, waits until the
JavaScript expression WAIT is true (polled every 50 ms), writes the DOM to
OUT and, with --screenshot, a PNG. What the page's Content-Security-Policy
refused is in the DOM as <html data-csp-violations="...">. With --ready FILE it first waits for
--ready-when and creates FILE, so a test can change the cluster while the
page is open and see the page follow.

    browser.py URL OUT --wait EXPR [--timeout S] [--screenshot PNG]
               [--ready FILE --ready-when EXPR] [--profile DIR]

Exit status: 0, or 2 when WAIT (or --ready-when) was not true in time (the
DOM is written anyway, for the test's message).

Why not --dump-dom: the console keeps an event stream open, and headless
Chromium's virtual time (--virtual-time-budget) stands still while a
request is pending.
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


# What the page's Content-Security-Policy refused (an inline style or
# script the console must not use), as the attribute data-csp-violations of
# <html>, so that it shows in the DOM written out (web_client.c fails on it).
CSP_RECORDER = """
document.addEventListener("securitypolicyviolation", e => {
  const html = document.documentElement, seen = html.dataset.cspViolations;
  html.dataset.cspViolations = (seen ? seen + "; " : "") + e.violatedDirective + " " + (e.blockedURI || "inline");
});
"""


class Browser:
    def __init__(self, profile):
        r1, self.w = os.pipe()  # our commands -> chromium's fd 3
        self.r, w2 = os.pipe()  # chromium's fd 4 -> us
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                 "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=1280,1000", "about:blank"]

        def fds():  # via fds above both, so neither dup2 clobbers the other's source
            a, b = os.dup(r1) + 100, os.dup(w2) + 100
            os.dup2(r1, a)
            os.dup2(w2, b)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen([os.environ.get("TY_CHROMIUM") or "chromium"] + flags,
                                     preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                                     stderr=open(os.environ.get("TY_BROWSER_LOG", os.devnull), "w"))
        os.close(r1)
        os.close(w2)
        self.buf = b""
        self.next_id = 0
        self.session = None

    def call(self, method, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buf:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium went away")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url):
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Page.addScriptToEvaluateOnNewDocument", source=CSP_RECORDER)
        self.call("Page.navigate", url=url)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r.get("result", {}).get("value")

    def wait(self, expr, deadline):
        while time.time() < deadline:
            try:
                if self.eval(f"!!({expr})"):
                    return True
            except RuntimeError:
                pass  # the page is between documents
            time.sleep(0.05)
        return False

    def close(self):
        self.proc.kill()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("--wait", required=True)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--screenshot")
    ap.add_argument("--ready")
    ap.add_argument("--ready-when", default="true")
    ap.add_argument("--profile")
    a = ap.parse_args()
    profile = a.profile or tempfile.mkdtemp(prefix="trainyard-browser-")
    b = Browser(profile)
    ok = False
    try:
        b.open(a.url)
        deadline = time.time() + a.timeout
        ok = True
        if a.ready:
            ok = b.wait(a.ready_when, deadline)
            open(a.ready, "w").close()
        ok = ok and b.wait(a.wait, deadline)
        with open(a.out, "w") as f:
            f.write(b.eval("document.documentElement.outerHTML") or "")
        if a.screenshot:
            png = b.call("Page.captureScreenshot", format="png")["data"]
            with open(a.screenshot, "wb") as f:
                f.write(base64.b64decode(png))
    finally:
        b.close()
        if not a.profile:
            shutil.rmtree(profile, ignore_errors=True)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
