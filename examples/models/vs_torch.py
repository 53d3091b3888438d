# SPDX-License-Identifier: Apache-2.0
"""What the *_vs_torch.py comparisons share: skipping when a tool is
missing, writing a TrainConfig from text with protoc, and running trainrun
for its per-step losses.

Each caller passes its own program name (`prog`) so that messages say which
comparison spoke.
"""
import os
import re
import shutil
import subprocess
import sys

SKIP = 77


def need(prog, module):
    """Imports module, or exits 77 (skipped) naming it."""
    try:
        return __import__(module)
    except ImportError:
        print("%s: skipped: python3 module %s is missing (python3-torch, python3-onnx)" % (prog, module),
              file=sys.stderr)
        sys.exit(SKIP)


def need_protoc(prog):
    """protoc's path, or exits 77 (skipped)."""
    path = shutil.which("protoc")
    if not path:
        print("%s: skipped: protoc is missing" % prog, file=sys.stderr)
        sys.exit(SKIP)
    return path


def run_trainrun(prog, a, model, config_text, work, name):
    """Encodes config_text to work/NAME.config.pb, trains model with
    a.trainrun on a.threads threads and returns the logged losses."""
    cfg = os.path.join(work, name + ".config.pb")
    with open(cfg, "wb") as f:
        f.write(subprocess.run([a.protoc, "--encode=trainyard.TrainConfig", "--proto_path=" + a.proto,
                                "train_config.proto"], input=config_text.encode(), capture_output=True,
                               check=True).stdout)
    cmd = [a.trainrun, "--model", model, "--config", cfg, "--threads", str(a.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("%s: %s failed (%d):\n%s\n%s" % (prog, " ".join(cmd), out.returncode, out.stdout, out.stderr))
    return [float(v) for v in re.findall(r"^step \d+/\d+ loss (\S+)", out.stdout, re.M)]
