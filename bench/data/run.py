#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""ops/data's CSV and image-folder readers side by side with what users
would otherwise load the same files with, in one run, on data generated
(seeded) in a temporary folder:

  csv     a CSV of ROWS rows: 32 float columns, an int label, a string
          category. Trainyard (bench/data/data_bench: ty_data_csv_open_many
          for the features as float32 [N, 32] and the labels as int64 [N]
          in one pass, as trainrun opens a config's two arrays of one
          file; then the features' read alone) against
          numpy.loadtxt (one call, a structured dtype giving the same
          float32 and int64 arrays) and Python's csv module + numpy.
  images  IMAGES JPEGs and IMAGES PNGs in 4 class folders, half of one size
          (read plain) and half of five sizes (read with Resize(64) +
          CenterCrop(64)). Trainyard (ty_data_imgdir_open, images and class
          ids) against torchvision.datasets.ImageFolder iterated once with
          PILToTensor (plain) or Resize, CenterCrop, PILToTensor; then the
          decode alone against the decode + resize, on both sides, over
          files already in memory, to say where the time goes.

Every measure is timed in-process: one untimed warm-up run, then RUNS runs;
the median and min of the process' CPU time, the median wall time, and the
ratios of the CPU medians (above 1: Trainyard is faster) are printed. CPU
time, because on a shared machine the wall time also counts other
processes' turns on the core; every reader here runs on one thread. The outputs are compared value for value, so that the two
sides did the same work. Builds nothing: give the build folder that holds
bench/data/data_bench (`ninja -C BUILD bench/data/data_bench`).

  nice -n 10 bench/data/run.py [--build BUILD] [--rows N] [--images N]
                               [--runs R] [--only csv|images]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FEATURES = 32
CLASSES = 4
SIZES = [(128, 128), (160, 120), (120, 160), (200, 150), (256, 192)]  # (width, height)


def show(name, items, unit, t):
    """t: (wall seconds, CPU seconds) of each run. The rate is of the CPU
    median: on a shared machine the wall time also counts the other
    processes' turns on the core."""
    wall, cpu = t
    med = statistics.median(cpu)
    print(f"  {name:<44} CPU median {med:7.3f} s  min {min(cpu):7.3f} s  "
          f"(wall {statistics.median(wall):7.3f} s)  {items / med:>9,.0f} {unit}/s")
    return med


def timed(fn, runs):
    """Runs fn once untimed, then runs times; returns ((wall, cpu), last result)."""
    out = fn()
    wall, cpu = [], []
    for _ in range(runs):
        out = None
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return (wall, cpu), out


def driver(build, args):
    """Runs data_bench; returns {measure: (items, (wall, cpu))}."""
    exe = os.path.join(build, "bench", "data", "data_bench")
    res = subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"run.py: data_bench {' '.join(map(str, args))} failed:\n{res.stderr}")
    got = {}
    for line in res.stdout.splitlines():
        f = line.split()
        if f and f[0] in ("time", "cpu"):
            got[(f[0], f[1])] = (int(f[2]), [float(v) for v in f[3:]])
    return {m: (n, (v, got[("cpu", m)][1])) for (k, m), (n, v) in got.items() if k == "time"}


def ratio(line, ty, other):
    print(f"  ratio {line:<38} {other / ty:6.2f}x  (CPU medians; above 1: Trainyard faster)")


# ---- CSV --------------------------------------------------------------------

def make_csv(path, rows, rng):
    import numpy as np
    x = rng.normal(0.0, 10.0, size=(rows, FEATURES))
    y = rng.integers(0, 10, size=rows)
    cats = np.array(["red", "green", "blue", "cyan", "magenta"])[rng.integers(0, 5, size=rows)]
    with open(path, "w") as f:
        f.write(",".join([f"f{i}" for i in range(FEATURES)] + ["label", "category"]) + "\n")
        for i in range(rows):
            f.write(",".join([f"{v:.6g}" for v in x[i]] + [str(y[i]), cats[i]]) + "\n")


def numpy_loadtxt(path):
    import numpy as np
    dt = np.dtype([("x", np.float32, (FEATURES,)), ("y", np.int64)])
    a = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(FEATURES + 1), dtype=dt)
    return np.ascontiguousarray(a["x"]), np.ascontiguousarray(a["y"])


def csv_module(path):
    import csv
    import numpy as np
    with open(path, newline="") as f:
        r = csv.reader(f)
        next(r)
        rows = list(r)
    x = np.array([[float(v) for v in row[:FEATURES]] for row in rows], dtype=np.float32)
    y = np.array([int(row[FEATURES]) for row in rows], dtype=np.int64)
    return x, y


def bench_csv(a, tmp, rng):
    import numpy as np
    path = os.path.join(tmp, "data.csv")
    make_csv(path, a.rows, rng)
    mib = os.path.getsize(path) / 2**20
    print(f"CSV: {a.rows:,} rows x ({FEATURES} float32 + int64 label + string category), "
          f"{mib:.1f} MiB, {a.runs} runs after a warm-up")
    d = driver(a.build, ["csv", path, a.runs, f"0..{FEATURES - 1}", "label", tmp])
    ty = show("Trainyard ty_data_csv_open_many (features, labels)", a.rows, "rows", d["csv"][1])
    t_np, (nx, ny) = timed(lambda: numpy_loadtxt(path), a.runs)
    show("  of which the features' read (float32 [N, 32])", a.rows, "rows", d["csv_features"][1])
    npm = show("numpy.loadtxt (one pass, structured dtype)", a.rows, "rows", t_np)
    t_csv, (cx, cy) = timed(lambda: csv_module(path), a.runs)
    cm = show("csv module + numpy", a.rows, "rows", t_csv)
    ratio("vs numpy.loadtxt", ty, npm)
    ratio("vs csv module + numpy", ty, cm)
    tx = np.fromfile(os.path.join(tmp, "features.f32"), dtype=np.float32).reshape(a.rows, FEATURES)
    tl = np.fromfile(os.path.join(tmp, "labels.i64"), dtype=np.int64)
    same = (np.array_equal(tx, nx) and np.array_equal(tl, ny) and np.array_equal(nx, cx)
            and np.array_equal(ny, cy))
    print(f"  outputs: {'identical' if same else 'DIFFER'} (float32 features and int64 labels, "
          f"all three readers)")
    return same


# ---- image folders ------------------------------------------------------------

def make_images(root, n, rng):
    """n JPEGs and n PNGs: ROOT/{jpeg,png}/{fixed,mixed}/cK/NNNN.ext."""
    import numpy as np
    from PIL import Image
    for fmt, ext in (("jpeg", "jpg"), ("png", "png")):
        for kind in ("fixed", "mixed"):
            for k in range(CLASSES):
                os.makedirs(os.path.join(root, fmt, kind, f"c{k}"))
            for i in range(n // 2):
                w, h = SIZES[0] if kind == "fixed" else SIZES[i % len(SIZES)]
                # A smooth picture (an 8x8 random image enlarged) with some
                # noise: compresses as a photo does, unlike pure noise.
                small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
                px = np.asarray(small.resize((w, h), Image.BICUBIC), dtype=np.int16)
                px = px + rng.integers(-12, 13, px.shape)
                im = Image.fromarray(np.clip(px, 0, 255).astype(np.uint8))
                p = os.path.join(root, fmt, kind, f"c{i % CLASSES}", f"{i:05d}.{ext}")
                im.save(p, quality=90) if fmt == "jpeg" else im.save(p)


def tv_folder(path, resize):
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder
    tf = [T.PILToTensor()]
    if resize:
        tf = [T.Resize(resize), T.CenterCrop(resize)] + tf
    ds = ImageFolder(path, transform=T.Compose(tf))
    xs, ys = [], []
    for x, y in ds:
        xs.append(x)
        ys.append(y)
    return xs, ys


def pil_decode(blobs, resize):
    import io
    import torchvision.transforms as T
    from PIL import Image
    rs = T.Resize(resize) if resize else None
    for b in blobs:
        im = Image.open(io.BytesIO(b)).convert("RGB")
        if rs:
            im = rs(im)


def compare(dump, xs, ys):
    import numpy as np
    c, h, w = xs[0].shape
    t = np.fromfile(dump, dtype=np.uint8).reshape(len(xs), c, h, w)
    tl = np.fromfile(dump + ".labels", dtype=np.int64)
    v = np.stack([x.numpy() for x in xs])
    diff = np.abs(t.astype(np.int16) - v.astype(np.int16))
    same = int((diff.reshape(len(xs), -1).max(axis=1) == 0).sum())
    ok = same == len(xs) and np.array_equal(tl, np.array(ys))
    print(f"  outputs: {same}/{len(xs)} images byte-identical, max |diff| {diff.max()}, labels "
          f"{'identical' if np.array_equal(tl, np.array(ys)) else 'DIFFER'}")
    return ok


def bench_images(a, tmp, rng):
    root = os.path.join(tmp, "img")
    make_images(root, a.images, rng)
    print(f"Image folders: {a.images} JPEGs (quality 90) and {a.images} PNGs, {CLASSES} classes; "
          f"'fixed' {SIZES[0][0]}x{SIZES[0][1]}, 'mixed' of sizes "
          f"{', '.join(f'{w}x{h}' for w, h in SIZES)}; {a.runs} runs after a warm-up")
    ok = True
    for fmt in ("jpeg", "png"):
        for kind, resize in (("fixed", 0), ("mixed", 64)):
            d = os.path.join(root, fmt, kind)
            n = a.images // 2
            what = "plain" if not resize else f"Resize({resize}) + CenterCrop({resize})"
            print(f" {fmt} {kind}, {n} images, {what}:")
            dump = os.path.join(tmp, f"{fmt}-{kind}.u8")
            r = driver(a.build, ["images", d, a.runs, resize, 1 if resize else 0, dump])
            ty = show("Trainyard ty_data_imgdir_open (images, ids)", n, "images",
                      r["images_resized" if resize else "images"][1])
            t_tv, (xs, ys) = timed(lambda: tv_folder(d, resize), a.runs)
            tv = show("torchvision ImageFolder + transforms", n, "images", t_tv)
            ratio("vs torchvision", ty, tv)
            ok = compare(dump, xs, ys) and ok
    print(" where the time goes (files already in memory, no listing, no copy into the array):")
    for fmt in ("jpeg", "png"):
        d = os.path.join(root, fmt, "mixed")
        blobs = []
        for c in sorted(os.listdir(d)):
            for f in sorted(os.listdir(os.path.join(d, c))):
                with open(os.path.join(d, c, f), "rb") as fh:
                    blobs.append(fh.read())
        n = len(blobs)
        for resize in (0, 64):
            what = "decode" if not resize else f"decode + Resize({resize})"
            r = driver(a.build, ["decode", d, a.runs, resize])
            ty = show(f"{fmt} mixed, {what}: Trainyard", n, "images",
                      r["decode_resize" if resize else "decode"][1])
            t_pil, _ = timed(lambda: pil_decode(blobs, resize), a.runs)
            pil = show(f"{fmt} mixed, {what}: PIL", n, "images", t_pil)
            ratio(f"{fmt} {what} vs PIL", ty, pil)
    return ok


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), load average {os.getloadavg()[0]:.1f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"),
                   help="the build folder holding bench/data/data_bench (default: ROOT/build)")
    p.add_argument("--rows", type=int, default=200000, help="CSV rows (default 200000)")
    p.add_argument("--images", type=int, default=2000,
                   help="JPEGs, and as many PNGs, half fixed-size, half mixed (default 2000)")
    p.add_argument("--runs", type=int, default=5, help="timed runs of each measure (default 5)")
    p.add_argument("--only", choices=["csv", "images"], help="one of the two benchmarks")
    p.add_argument("--seed", type=int, default=25, help="seed of the generated data")
    a = p.parse_args()
    if not 1 <= a.runs <= 50:
        p.error(f"--runs {a.runs}: 1 to 50")
    if a.rows < 1 or a.images < 2 * CLASSES:
        p.error(f"--rows {a.rows} / --images {a.images}: at least 1 row and {2 * CLASSES} images")
    exe = os.path.join(a.build, "bench", "data", "data_bench")
    if not os.access(exe, os.X_OK):
        p.error(f"--build {a.build}: no {exe} (ninja -C {a.build} bench/data/data_bench)")
    import numpy as np
    rng = np.random.default_rng(a.seed)
    print(f"machine: {machine()}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="trainyard-data-") as tmp:
        if a.only in (None, "csv"):
            ok = bench_csv(a, tmp, rng) and ok
        if a.only in (None, "images"):
            ok = bench_images(a, tmp, rng) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
