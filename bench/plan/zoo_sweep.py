#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Runs the model zoo under parallel plans against one process: every
model of examples/models/zoo_vs_torch.py, zoo2_vs_torch.py,
zoo3_vs_torch.py and zoo4_vs_torch.py (their definitions, batches and export, imported, not
copied), exported as those scripts export it, trained N steps by one
trainrun process and by trainrun ranks under each plan, on the same
global batch from the same initial weights; the final weights are
compared.

    zoo_sweep.py [--build build] [--trainrun PATH] [--steps 3] [--batch 4] [--only NAME,...]
                 [--zoo zoo,zoo2,zoo3,zoo4] [--plans data,tensor,grid,pipe,automem,accum]
                 [--jobs 1] [--timeout 180] [--tsv FILE] [--dropout P]

Plans (the cost model's rates fixed, as tests/integration/test_plan.c
fixes them, so plans do not depend on this machine):
  data     --parallelism data   --mesh 1x2, 2 ranks
  tensor   --parallelism tensor --mesh 1x2, 2 ranks
  grid     --parallelism grid   --mesh 2x2, 4 ranks
  pipe     pipeline_stages "2", micro_batches "2", --parallelism auto
           --mesh 1x2, 2 ranks (where the planner can cut the graph)
  automem  --parallelism auto --mesh 1x2 with --device-mem 5% above the
           smallest plan's memory (asked of --write-plan), which forces
           the planner's most memory-saving (model-parallel) plan
  accum    micro_batches "2" without pipeline stages, --parallelism auto
           --mesh 1x2, 2 ranks: gradient accumulation as a plan of one
           stage on the whole mesh

The zoo's models with Dropout (textcnn_pool, mobilenetv2) define it with
p = 0 (so the torch comparisons of the zoo scripts hold): --dropout P sets
every nn.Dropout's p before the export, so the plans' ranks draw masks
(that each plan draws one process's masks is what this checks).

CI has no torch: tests/unit/ops/train/zoo carries five of these models
as exported here (its export.py, which imports export() below) and
test_pipeline_zoo.c trains them under the accum plan.

Ranks form their Open MPI world through a traind this script starts on
loopback (port 0) and stops by PID, each with the rendezvous token
bench/plan/rdv_token signs, as bench/plan/exec.sh does.

Each (model, plan) is one of: ok (max relative weight error <= --tol,
relative to max(1, |one process's weight|), over every float
initializer, BatchNorm statistics included), mismatch (the error),
refused (exit 2: trainrun's message), bn-micro (a pipeline of a model
with BatchNormalization that ends elsewhere: each micro-batch is
normalised with its own statistics, as docs/planner.md says), hang (past --timeout), crash (a
signal) or fail (another exit code: the last line of its log).
Prints one line per model and a Markdown table at the end. Exit status
0 when every run is ok or refused, 1 otherwise, 77 when torch, onnx,
numpy or protoc is missing.
"""
import argparse
import concurrent.futures
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "examples", "models"))
import vs_torch  # noqa: E402

PROG = "zoo_sweep.py"
# Slow devices and free links: splitting an op always pays, so the tensor,
# grid and automem plans split every op a rule lets them split (with
# test_plan.c's rates these tiny models run replicated: no collective pays).
RATES = ["--device-flops", "1e6", "--intra-gbps", "1000", "--inter-gbps", "1000", "--latency-us", "0",
         "--inter-latency-us", "0", "--launch-us", "0"]
PLANS = {  # name: (ranks, trainrun options, extra config text)
    "data": (2, ["--parallelism", "data", "--mesh", "1x2"], ""),
    "tensor": (2, ["--parallelism", "tensor", "--mesh", "1x2"], ""),
    "grid": (4, ["--parallelism", "grid", "--mesh", "2x2"], ""),
    "pipe": (2, ["--parallelism", "auto", "--mesh", "1x2"], 'pipeline_stages: "2"\nmicro_batches: "2"\n'),
    "automem": (2, ["--parallelism", "auto", "--mesh", "1x2"], ""),
    "accum": (2, ["--parallelism", "auto", "--mesh", "1x2"], 'micro_batches: "2"\n'),
}
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


class Sweep:
    """The controller, the job counter and the paths a run needs."""

    def __init__(self, a, work):
        self.a, self.work = a, work
        self.trainrun = a.trainrun or os.path.join(a.build, "ops", "trainrun", "trainrun")
        self.token = os.path.join(a.build, "bench", "plan", "rdv_token")
        self.job = random.randrange(1, 1 << 20) * 64
        self.lock = threading.Lock()
        st = os.path.join(work, "st")
        ports = os.path.join(work, "ports")
        self.ctl = subprocess.Popen([os.path.join(a.build, "daemon", "traind"), "--listen", "127.0.0.1:0",
                                     "--auth", "none", "--metrics-listen", "127.0.0.1:0", "--state-dir", st,
                                     "--port-file", ports],
                                    stdout=open(os.path.join(work, "traind.log"), "w"), stderr=subprocess.STDOUT)
        for _ in range(400):
            if os.path.exists(os.path.join(st, "attach.key")) and os.path.exists(ports) and os.path.getsize(ports):
                break
            if self.ctl.poll() is not None:
                break
            threading.Event().wait(0.05)
        rpc = re.search(r"^rpc=(\d+)", open(ports).read() if os.path.exists(ports) else "", re.M)
        if not rpc:
            sys.exit("%s: traind wrote no rpc port (%s)" % (PROG, os.path.join(work, "traind.log")))
        self.state, self.controller = st, "127.0.0.1:" + rpc.group(1)

    def stop(self):
        self.ctl.terminate()
        self.ctl.wait()

    def next_job(self):
        with self.lock:
            self.job += 1
            return self.job

    def run(self, args, world, log, timeout):
        """Runs `world` trainrun ranks (one process, no world, when world
        is 0) with args; returns (outcome, message)."""
        job, procs = self.next_job(), []
        for r in range(max(world, 1)):
            env = dict(os.environ)
            for k in ("RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "TRAINYARD_JOB_ID"):
                env.pop(k, None)
            if world:
                tok = subprocess.run([self.token, self.state, str(job), str(r)], capture_output=True, text=True,
                                     check=True).stdout.strip()
                env.update(RANK=str(r), WORLD_SIZE=str(world), TRAINYARD_JOB_ID=str(job),
                           TRAINYARD_CONTROLLER=self.controller, TRAINYARD_RENDEZVOUS_TOKEN=tok)
            f = open("%s.rank%d.log" % (log, r), "w")
            procs.append(subprocess.Popen(["nice", self.trainrun] + args, env=env, stdout=f, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        outcome = []
        for r, p in enumerate(procs):
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                for q in procs:
                    if q.poll() is None:
                        os.killpg(q.pid, signal.SIGKILL)
                for q in procs:
                    q.wait()
                return "hang", "past %d s" % timeout
            outcome.append(p.returncode)
        text = [open("%s.rank%d.log" % (log, r)).read() for r in range(len(procs))]
        for r, code in enumerate(outcome):  # a signal first: the others may have died of it
            if code < 0 or code >= 128:
                return "crash", "rank %d: signal %d: %s" % (r, -code if code < 0 else code - 128, last(text[r]))
        for r, code in enumerate(outcome):
            if code == 2:
                return "refused", "rank %d: %s" % (r, last(text[r], "trainrun"))
        for r, code in enumerate(outcome):
            if code:
                return "fail", "rank %d: exit %d: %s" % (r, code, last(text[r]))
        m = re.search(r"^plan: mesh .*?\((the [^)]*plan)\)", text[0], re.M)
        return "ran", m.group(1) if m else ""


def last(text, prefix=""):
    """The log's last line (starting with prefix when one does)."""
    lines = [x for x in text.strip().splitlines() if x.strip()]
    pick = [x for x in lines if prefix and x.startswith(prefix)]
    return (pick or lines or [""])[-1][:300]


def weight_error(np, onnx, ref, out):
    """Max over float initializers of |out - ref| / max(1, |ref|), and the tensor."""
    from onnx import numpy_helper
    a = {i.name: numpy_helper.to_array(i) for i in onnx.load(ref).graph.initializer}
    b = {i.name: numpy_helper.to_array(i) for i in onnx.load(out).graph.initializer}
    worst, name = 0.0, ""
    for k, v in a.items():
        if v.dtype != np.float32:
            continue
        if k not in b or b[k].shape != v.shape:
            return float("inf"), k + " (missing or reshaped)"
        d = float(np.max(np.abs(b[k] - v) / np.maximum(1.0, np.abs(v)))) if v.size else 0.0
        if not d <= worst:
            worst, name = d, k
    return worst, name


def has_batch_norm(onnx, model):
    """Whether the model normalises batches: a pipeline normalises each
    micro-batch on its own by design, so its weights are not one
    whole-batch process's."""
    return any(n.op_type == "BatchNormalization" for n in onnx.load(model).graph.node)


def export(torch, np, a, mod, name, spec, work):
    """Exports the model's initial weights as the zoo scripts do and
    writes its data; returns (model path, config text with CKPT and EXTRA
    left to fill)."""
    cls, kind, lr = spec[:3]
    b = argparse.Namespace(batch=a.batch, steps=a.steps, opset=17, frozen=[], trainable=[], outputs=1,
                           loss="ce")
    b.__dict__.update({k: v for k, v in (spec[3] if len(spec) > 3 else {}).items() if k != "batch"})
    torch.manual_seed(sum(map(ord, name)))
    m = cls()
    if a.dropout is not None:  # the zoo's Dropout(0.0) made to draw masks
        for d in m.modules():
            if isinstance(d, torch.nn.Dropout):
                d.p = a.dropout
    m.train()
    xs, ys = mod.batches(np, kind, a.steps * a.batch, np.random.default_rng(len(name)))
    if ys is not None:
        ys = ys.astype("float32" if b.loss == "output" and ys.dtype.kind == "f" else "int64")
        np.save(os.path.join(work, "y.npy"), ys)
    path = os.path.join(work, name + ".onnx")
    vs_torch.zoo_export(torch, m, tuple(v[:a.batch] for _, v in vs_torch.zoo_inputs(xs)),
                        None if ys is None else ys[:a.batch], path, b.opset, b.loss, b.outputs)
    return path, vs_torch.zoo_config(np, b, lr, xs, work, "@CKPT@")


def config(s, work, text, tag, extra):
    """Writes work/TAG.pb from the text with its checkpoint path; returns (pb, ckpt)."""
    ckpt = os.path.join(work, tag + ".ckpt.onnx")
    pb = os.path.join(work, tag + ".pb")
    with open(pb, "wb") as f:
        f.write(subprocess.run([s.a.protoc, "--encode=trainyard.TrainConfig",
                                "--proto_path=" + os.path.join(ROOT, "proto"), "train_config.proto"],
                               input=(text.replace("@CKPT@", ckpt) + extra).encode(), capture_output=True,
                               check=True).stdout)
    return pb, ckpt


def smallest_memory(s, model, pb, work):
    """The smallest plan's memory per device on 1x2 (bytes), or None with --write-plan's words."""
    out = subprocess.run(["nice", s.trainrun, "--model", model, "--config", pb, "--threads", "1", "--parallelism",
                          "auto", "--mesh", "1x2", "--device-mem", "1K", "--write-plan",
                          os.path.join(work, "probe.plan")] + RATES, capture_output=True, text=True)
    m = re.search(r"smallest plan needs ([\d.]+) (B|KiB|MiB|GiB)", out.stdout + out.stderr)
    if not m:
        return None, last(out.stdout + out.stderr)
    return int(float(m.group(1)) * UNITS[m.group(2)] * 1.05) + 1024, ""


def sweep_model(s, np, onnx, name, model, text, work):
    """Every plan of one exported model; {plan: (outcome, detail)}."""
    a, res = s.a, {}
    pb, ref = config(s, work, text, "ref", "")
    base = ["--model", model, "--threads", "1"]
    got = s.run(base + ["--config", pb], 0, os.path.join(work, "ref"), a.timeout)
    if got[0] != "ran":
        return {p: ("no reference",) + (got[0] + ": " + got[1],) for p in a.plans}
    for plan in a.plans:
        world, opts, extra = PLANS[plan]
        pb, out = config(s, work, text, plan, extra)
        opts = opts + RATES
        if plan == "automem":
            mem, why = smallest_memory(s, model, pb, work)
            if mem is None:
                res[plan] = ("refused", why)
                continue
            opts = opts + ["--device-mem", str(mem)]
        got = s.run(base + ["--config", pb] + opts, world, os.path.join(work, plan), a.timeout)
        if got[0] != "ran":
            res[plan] = got
            continue
        err, worst = weight_error(np, onnx, ref, out)
        if err > a.tol and plan in ("pipe", "accum") and has_batch_norm(onnx, model):
            res[plan] = ("bn-micro", "%.1e %s: BatchNormalization per micro-batch (GPipe, docs/planner.md)"
                         % (err, worst))
            continue
        res[plan] = ("ok" if err <= a.tol else "mismatch",
                     "%.1e %s%s" % (err, worst, " (" + got[1] + ")" if got[1] else ""))
    return res


def cell(r):
    if r[0] == "ok":
        return "ok"
    if r[0] == "mismatch":
        return "mismatch " + r[1].split()[0]
    return r[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--trainrun", help="this trainrun instead of the build's (an older one, for a before table)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--only", help="comma-separated model names")
    ap.add_argument("--zoo", default="zoo,zoo2,zoo3,zoo4")
    ap.add_argument("--plans", default=",".join(PLANS))
    ap.add_argument("--jobs", type=int, default=1, help="models run at once")
    ap.add_argument("--timeout", type=int, default=180, help="seconds one run may take")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--tsv", help="also write model, plan, outcome, detail here")
    ap.add_argument("--dropout", type=float, help="every nn.Dropout's p (the zoo's are 0)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    a = ap.parse_args()
    a.plans = a.plans.split(",")
    for p in a.plans:
        if p not in PLANS:
            sys.exit("%s: --plans: no plan %s (%s)" % (PROG, p, ", ".join(PLANS)))
    if a.batch % 4:
        sys.exit("%s: --batch %d: must be a multiple of 4 (the 2 x 2 grid, 2 micro-batches)" % (PROG, a.batch))
    torch, np, onnx = (vs_torch.need(PROG, m) for m in ("torch", "numpy", "onnx"))
    a.protoc = vs_torch.need_protoc(PROG)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # the exporter's, as many as models
    models = []
    for z in a.zoo.split(","):
        mod = __import__(z + "_vs_torch")
        for n, spec in mod.zoo(torch).items():  # a name two zoos use is told apart by its zoo
            key = n if n not in [m[2] for m in models] else "%s.%s" % (z, n)
            models.append((z, mod, key, spec))
    if a.only:
        want = a.only.split(",")
        miss = [n for n in want if n not in [m[2] for m in models]]
        if miss:
            sys.exit("%s: --only: no model %s" % (PROG, ", ".join(miss)))
        models = [m for m in models if m[2] in want]
    top = tempfile.mkdtemp(prefix="ty_zoo_sweep.")
    try:
        s = Sweep(a, top)
    except BaseException:
        shutil.rmtree(top, ignore_errors=True)
        raise
    results, ready = {}, []
    try:
        for z, mod, name, spec in models:  # exports one at a time: torch is not thread-safe
            work = os.path.join(top, name)
            os.mkdir(work)
            try:
                ready.append((name, work) + export(torch, np, a, mod, name.split(".")[-1], spec, work))
            except Exception as e:  # noqa: BLE001: an export failure is a result too
                results[name] = {p: ("no export", str(e).splitlines()[0][:200]) for p in a.plans}

        def one(item):
            name, work, model, text = item
            r = sweep_model(s, np, onnx, name, model, text, work)
            print("%-18s %s" % (name, "  ".join("%s=%s" % (p, cell(r[p])) for p in a.plans)), flush=True)
            for p in a.plans:
                if r[p][0] != "ok":
                    print("    %s %s: %s" % (name, p, r[p][1]), flush=True)
            return name, r

        with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as ex:
            for name, r in ex.map(one, ready):
                results[name] = r
    finally:
        s.stop()
        if a.keep:
            print("%s: logs in %s" % (PROG, top))
        else:
            shutil.rmtree(top, ignore_errors=True)
    names = [m[2] for m in models]
    print("\n| model | " + " | ".join(a.plans) + " |")
    print("| --- |" + " --- |" * len(a.plans))
    for n in names:
        print("| %s | %s |" % (n, " | ".join(cell(results[n][p]) for p in a.plans)))
    counts = {}
    for n in names:
        for p in a.plans:
            counts[results[n][p][0]] = counts.get(results[n][p][0], 0) + 1
    print("\n%d models x %d plans: %s" % (len(names), len(a.plans),
                                           ", ".join("%d %s" % (v, k) for k, v in sorted(counts.items()))))
    if a.tsv:
        with open(a.tsv, "w") as f:
            for n in names:
                for p in a.plans:
                    f.write("%s\t%s\t%s\t%s\n" % (n, p, results[n][p][0], results[n][p][1].replace("\t", " ")))
    bad = [1 for n in names for p in a.plans if results[n][p][0] not in ("ok", "refused", "bn-micro")]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
