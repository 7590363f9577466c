"""Fit time and reconstruction error: genlab's motion programs vs the paper's released code.

    python benchmarks/motion_fit.py [--n 3] [--repeats 1] [--peer PEER_DIR] [--peer-timeout 900]

The peer (github.com/Sumith1896/motion2prog_release, no licence; fetched locally, never committed)
is found at `--peer` or, without it, at `$GENLAB_MOTION_PEER` (a folder holding its `lkeypoints.py`);
with neither, only ours is timed. It runs in a subprocess on the same synthetic sequences (COCO keypoints converted to its 18-joint
dict format), with the settings of its README (`-p 1 -w 20 --no-acc --stat-thres 5 --span-thres 5
-r 1600`, normalised with its own `-c` scaling) and `cores` = 2. Only its primitive search
(`generate_all_primitives`) and tracing are timed, not its visualisation. Errors are mean joint
distances in pixels against the noise-free sequence. Also reports our time for 1,000 frames.

Ours and the peer are timed interleaved on each sequence (ours, peer, ours, peer, ... `--repeats`
times; medians), so a change in machine load between the two does not move the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from genlab.systems.motion import FitConfig, execute, fit_program, make_sequence  # noqa: E402

# COCO-17 -> the peer's 18-joint order (nose, neck, r/l arm, r/l leg, eyes, ears); neck = mid-shoulder
_PEER_ORDER = [0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]

_PEER_DRIVER = r"""
import json, sys, time, numpy as np
sys.path.insert(0, sys.argv[1])
import lglobalvars, lkeypoints
data = json.load(open(sys.argv[2]))
kp = {j: [tuple(p) for p in np.asarray(data['kp'])[:, j]] for j in range(18)}
lglobalvars.center = [(kp[9][0][0] + kp[12][0][0]) // 2, (kp[9][0][1] + kp[12][0][1]) // 2]
lglobalvars.scale = lglobalvars.scale_factor / lkeypoints.get_scale(kp)
norm = lkeypoints.normalize(kp)
synt = {"points_pp": 1, "stat_thres": 5, "span_thres": 5, "r_penalty": False, "no_acc": True,
        "REG": 1600, "cores": int(sys.argv[4]), "window": 20}
lglobalvars.synt_args = synt
class A: normalize = True; no_acc = True
lglobalvars.ARGS = A()
t = time.time()
prims = lkeypoints.generate_all_primitives(norm, "dp_all", synt)
new, _ = lkeypoints.trace_keypoints(prims)
dt = time.time() - t
rec = lkeypoints.unnormalize(new)
out = np.stack([np.asarray(rec[j], dtype=float)[: len(kp[0])] for j in range(18)], 1)
json.dump({"time": dt, "rec": out.tolist(), "segments": len(prims[0])}, open(sys.argv[3], "w"))
"""


def to_peer(kp: np.ndarray) -> np.ndarray:
    neck = 0.5 * (kp[:, 5] + kp[:, 6])
    full = np.concatenate([kp, neck[:, None]], 1)
    return full[:, [17 if i == -1 else i for i in _PEER_ORDER]]


def run_peer(peer: Path, kp: np.ndarray, timeout: float, cores: int):
    with tempfile.TemporaryDirectory() as d:
        inp, out = Path(d) / "in.json", Path(d) / "out.json"
        inp.write_text(json.dumps({"kp": to_peer(kp).tolist()}))
        drv = Path(d) / "drv.py"
        drv.write_text(_PEER_DRIVER)
        env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            r = subprocess.run([sys.executable, str(drv), str(peer), str(inp), str(out), str(cores)], cwd=d,
                               capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout:.0f} s"
        if r.returncode != 0 or not out.exists():
            return None, (r.stderr.strip().splitlines() or ["failed"])[-1][:200]
        res = json.loads(out.read_text())
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds of the driver and its worker processes (includes their imports, ~1-2 s)
        res["cpu"] = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        return res, ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--count", type=int, default=4, help="repetitions per sequence (4 -> about 120 frames)")
    ap.add_argument("--peer", default=os.environ.get("GENLAB_MOTION_PEER"),
                    help="motion2prog_release checkout (default: $GENLAB_MOTION_PEER; none: ours only)")
    ap.add_argument("--peer-timeout", type=float, default=900.0)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="interleaved ours/peer runs per sequence (medians)")
    args = ap.parse_args()
    peer = Path(args.peer) if args.peer else None
    have_peer = peer is not None and (peer / "lkeypoints.py").is_file()
    motions = ("jumping_jack", "arm_circle", "squat", "walk")
    rows = []
    for i in range(args.n):
        seq = make_sequence(motions[i % 4], 1000 + i, count=args.count)
        ours_t, ours_cpu, peer_runs, why = [], [], [], ""
        for _ in range(max(1, args.repeats)):  # interleaved: ours, peer, ours, peer, ...
            t, c = time.perf_counter(), time.process_time()
            prog = fit_program(seq.keypoints, FitConfig())
            ours_t.append(time.perf_counter() - t)
            ours_cpu.append(time.process_time() - c)
            if have_peer:
                res, why = run_peer(peer, seq.keypoints, args.peer_timeout, args.cores)
                if res is None:
                    break
                peer_runs.append(res)
        rec = execute(prog, pixels=True)
        ours_e = float(np.linalg.norm(rec - seq.clean, axis=-1).mean())
        row = dict(seq=f"{seq.motion}#{i}", frames=seq.keypoints.shape[0], ours_s=statistics.median(ours_t),
                   ours_cpu=statistics.median(ours_cpu), ours_px=ours_e, ours_segments=len(list(prog.segments())))
        if peer_runs:
            res = peer_runs[-1]
            prec = np.asarray(res["rec"])
            truth = to_peer(seq.clean)
            row.update(peer_s=statistics.median(r["time"] for r in peer_runs),
                       peer_cpu=statistics.median(r["cpu"] for r in peer_runs),
                       peer_px=float(np.linalg.norm(prec - truth, axis=-1).mean()), peer_segments=res["segments"])
            # our error on the same 18-joint layout (neck = mid-shoulder) for a like-for-like figure
            row["ours_px18"] = float(np.linalg.norm(to_peer(rec) - truth, axis=-1).mean())
        elif have_peer:
            row["peer_note"] = why
        rows.append(row)
    long = make_sequence("jumping_jack", 7, count=60).keypoints[:1000]
    t, c = time.perf_counter(), time.process_time()
    fit_program(long, FitConfig())
    t1000, c1000 = time.perf_counter() - t, time.process_time() - c

    print(f"wall = elapsed seconds, cpu = CPU seconds (all processes); medians of {max(1, args.repeats)} "
          f"interleaved run(s) per sequence; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{'sequence':<16}{'frames':>7}{'ours wall':>10}{'ours cpu':>9}{'peer wall':>10}{'peer cpu':>9}"
          f"{'cpu ratio':>10}{'ours px':>9}{'peer px':>9}{'ours segs':>10}{'peer segs':>10}")
    for r in rows:
        ps = r.get("peer_s")
        peer_s = f"{ps:.1f}" if ps else "-"
        peer_c = f"{r['peer_cpu']:.1f}" if ps else "-"
        ratio = f"{r['peer_cpu'] / r['ours_cpu']:.0f}x" if ps else "-"
        peer_px = f"{r['peer_px']:.2f}" if ps else "-"
        ours_px = r.get("ours_px18", r["ours_px"])
        print(f"{r['seq']:<16}{r['frames']:>7}{r['ours_s']:>10.2f}{r['ours_cpu']:>9.2f}{peer_s:>10}{peer_c:>9}"
              f"{ratio:>10}{ours_px:>9.2f}{peer_px:>9}{r['ours_segments']:>10}{r.get('peer_segments', '-'):>10}")
        if "peer_note" in r:
            print(f"    peer: {r['peer_note']}")
    if not have_peer:
        where = f"no lkeypoints.py in {peer}" if peer else "no --peer and no $GENLAB_MOTION_PEER"
        print(f"peer not run ({where}); the issue quotes ~70 s for a 122-frame AlphaPose clip")
    print(f"ours, 1,000 frames: {t1000:.2f} s wall, {c1000:.2f} s cpu (goal <= 5 s on 2 cores)")


if __name__ == "__main__":
    main()
