"""The paper's section 3 claim at toy scale: systematic curation improves the video model at equal training.

1. An uncurated corpus of CORPUS sprite videos made with the toy renderer (data.py), 8 frames at 8 fps,
   shown at 4x (128 px) as H.264 files: clean clips, clips with a hard cut inside (two shots), static clips
   (one frame held, its metadata still says the sprite moves), clips with a text overlay, and clips with a
   fade through black between two shots (fractions in KINDS).
2. `genlab video curate` on it (cuts, motion, text; filters below). The kept clips are the curated set.
3. The toy image-to-video model (the demo's) trained on the kept clips, and on an equal-size random subset
   of the uncurated corpus, with the same steps, schedule and seed; SEEDS seeds (model init, noise, order,
   and which random subset).
4. Scored on HELDOUT held-out clean clips (image-to-video from their first frames, true motion bucket):
   Fréchet distance between the features of a small video classifier trained here on clean clips
   (classifier.py) for samples and the real held-out clips; the rate of samples with a cut and with text,
   found by the curation's own detectors (cut detector on the sample written as a video, the OCR text
   detector on its frames); motion-bucket control error (sprite speed fitted on the sample vs the speed its
   bucket asks for, px/frame).

Every label (sprite class, speed, hence bucket) is the renderer's, for both arms. Sizes, steps and seeds
are fixed here. Prints a markdown table (mean +- std over seeds) and writes it as JSON with --out.

    OMP_NUM_THREADS=1 nice -n 10 timeout 2700 python benchmarks/video_curation_effect.py --out RESULT.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

CORPUS = 400
HELDOUT = 100
SEEDS = (0, 1, 2)
STEPS = 120
BATCH = 8
LR = 2e-3
FRAMES = 8
FPS = 8
SHOW = 4  # the videos are written at 4x the model's 32 px, so the detectors see ordinary text and edges
KINDS = {"clean": 0.4, "cut": 0.15, "static": 0.15, "text": 0.15, "fade": 0.15}
CURATE_ARGS = ["--preset", "tiny", "--min-clip-s", "0.5", "--min", "motion_score=0.5", "--max", "text_ratio=0.01"]
TEXT_FOUND = 0.005  # a sample "has text" when the OCR boxes cover more than this fraction of a frame
SAMPLE_STEPS = 10
CLASSIFIER_STEPS = 100


def classifier_config():
    from genlab.systems.video.classifier import ClassifierConfig

    return ClassifierConfig(steps=CLASSIFIER_STEPS)


def sprite_config():
    from genlab.systems.video.data import SpriteConfig

    return SpriteConfig(frames=FRAMES)


def upscale(video: torch.Tensor) -> np.ndarray:
    """(T, 3, 32, 32) in [-1, 1] -> (T, 128, 128, 3) uint8 BGR (bilinear), what the files show."""
    import torch.nn.functional as F

    x = F.interpolate(video.float(), scale_factor=SHOW, mode="bilinear", align_corners=False)
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(x[..., ::-1])


def downscale(frames: np.ndarray) -> torch.Tensor:
    """(T, 128, 128, 3) uint8 BGR -> (T, 3, 32, 32) in [-1, 1] (area), what the model trains on."""
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames[..., ::-1])).permute(0, 3, 1, 2).float()
    return F.interpolate(x, scale_factor=1 / SHOW, mode="area") / 127.5 - 1


def overlay_text(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    text = "".join(rng.choice(list("ABCDEFGHKMNPRSTUVWXYZ0123456789"), size=int(rng.integers(3, 6))))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.9, 2)
    x = int(rng.integers(2, max(3, frames.shape[2] - tw - 2)))
    y = int(rng.integers(th + 2, frames.shape[1] - 4))
    out = frames.copy()
    for f in out:
        cv2.putText(f, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 5, cv2.LINE_AA)
        cv2.putText(f, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def make_corpus(folder: Path, n: int, seed: int = 100):
    """Writes n videos; returns (kinds, raw (n, T, 3, 32, 32) as the files show them, shot-A labels)."""
    from genlab.systems.video.curation.synthetic import write_video
    from genlab.systems.video.data import make_clips

    cfg = sprite_config()
    rng = np.random.default_rng(seed)
    kinds = rng.choice(list(KINDS), size=n, p=list(KINDS.values()))
    a, b = make_clips(cfg, n, seed=seed), make_clips(cfg, n, seed=seed + 1)
    raw = torch.empty(n, FRAMES, 3, cfg.size, cfg.size)
    half = FRAMES // 2
    for i, kind in enumerate(kinds):
        shot = a.video[i]
        if kind == "cut":
            shot = torch.cat([a.video[i, :half], b.video[i, half:]])
        elif kind == "static":
            shot = a.video[i, :1].expand(FRAMES, -1, -1, -1)
        elif kind == "fade":  # A fades to black, one black frame, B fades in
            gain = torch.tensor([1.0, 1.0, 0.5, 0.15, 0.0, 0.15, 0.5, 1.0])[:FRAMES].view(-1, 1, 1, 1)
            mixed = torch.cat([a.video[i, :half], b.video[i, half:]])
            shot = (mixed + 1) * gain - 1
        frames = upscale(shot)
        if kind == "text":
            frames = overlay_text(frames, rng)
        path = folder / f"v{i:04d}.mp4"
        if not path.is_file():  # the corpus is fixed by its seed: a second run (another seed) reuses the files
            write_video(path, frames, fps=FPS, crf=18)
        raw[i] = downscale(frames)
    return kinds, raw, a


def curate(corpus: Path, out: Path) -> list[dict]:
    """`genlab video curate` (the CLI, as a user runs it) -> the rows of clips.parquet."""
    import pyarrow.parquet as pq

    if (out / "clips.parquet").is_file():  # curated by an earlier run on the same corpus
        return pq.read_table(out / "clips.parquet").to_pylist()
    cmd = [sys.executable, "-m", "genlab", "video", "curate", str(corpus), "--out", str(out), *CURATE_ARGS, "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"curate failed: {done.stderr}")
    print(done.stdout.strip())
    return pq.read_table(out / "clips.parquet").to_pylist()


def training_sets(rows: list[dict], n: int, seed: int):
    """(curated indices, random indices): kept clips spanning a whole window, and as many random videos
    of the uncurated corpus (drawn with `seed`)."""
    kept = sorted({int(Path(r["video_path"]).stem[1:]) for r in rows
                   if r["status"] == "ok" and r["keep"] and r["end_frame"] - r["start_frame"] >= FRAMES})
    g = torch.Generator().manual_seed(1000 + seed)
    random = torch.randperm(n, generator=g)[: len(kept)].tolist()
    return kept, random


def train_model(video: torch.Tensor, bucket: torch.Tensor, ae, seed: int):
    from genlab.systems.video import demo
    from genlab.systems.video.config import stage
    from genlab.systems.video.model import SVDModel
    from genlab.systems.video.train import encode_clips, train_stage

    torch.manual_seed(seed)
    model = SVDModel(demo.full().model)
    st = stage("finetune", steps=STEPS, batch_size=BATCH, lr=LR, frames=FRAMES, size=32, seed=seed)
    train_stage(model, ae, encode_clips(video, bucket, ae, 32, sprite_config().fps_id), st)
    return model


def has_cut(video: torch.Tensor, folder: Path) -> bool:
    """The curation's cut cascade (cuts, fades, dissolves) on the sample written as the corpus videos are."""
    from genlab.systems.video.curation.config import CutConfig
    from genlab.systems.video.curation.cuts import detect_cuts
    from genlab.systems.video.curation.synthetic import write_video

    path = write_video(folder / "sample.mp4", upscale(video), fps=FPS, crf=18)
    return bool(detect_cuts(path, CutConfig(), float(FPS)).cuts)


def text_ratio(video: torch.Tensor) -> float:
    """The curation's OCR text stage (its ratio, first / middle / last frame) on the sample at 4x."""
    from genlab.systems.video.curation.config import TextConfig
    from genlab.systems.video.curation.stages import TextStage

    frames, stage = upscale(video), TextStage(TextConfig())
    return float(np.mean([stage.ratio(frames[i]) for i in (0, len(frames) // 2, len(frames) - 1)]))


def evaluate(model, ae, test, judge, real_stats, tmp: Path, seed: int) -> dict:
    from genlab.core.eval.frechet import GaussianStats, frechet_distance
    from genlab.systems.video.data import fit_motion
    from genlab.systems.video.pipeline import SamplingConfig, sample_i2v

    cfg = SamplingConfig(num_frames=FRAMES, steps=SAMPLE_STEPS, min_guidance=1.0, max_guidance=1.0, sigma_max=80.0,
                         fps_id=sprite_config().fps_id)
    video = sample_i2v(model, ae, test.video[:, 0], cfg, generator=torch.Generator().manual_seed(seed + 1),
                       motion_bucket_id=test.bucket).video.clamp(-1, 1)
    fit = fit_motion(video, test.colour)
    return {
        "frechet": frechet_distance(GaussianStats.of(judge.embed(video).numpy()), real_stats),
        "cut_rate": float(np.mean([has_cut(v, tmp) for v in video])),
        "text_rate": float(np.mean([text_ratio(v) > TEXT_FOUND for v in video])),
        "motion_error": float((fit.speed - test.speed).abs().mean()),
    }


METRICS = {"frechet": "Fréchet distance (classifier features, lower is better)",
           "cut_rate": "samples with a cut (cut detector)", "text_rate": "samples with text (OCR detector)",
           "motion_error": "motion-bucket control error (px/frame)"}


def table(results: dict) -> str:
    lines = ["| metric | curated | random subset |", "|---|---|---|"]
    for key, name in METRICS.items():
        cells = []
        for arm in ("curated", "random"):
            v = np.array([r[key] for r in results[arm]])
            cells.append(f"{v.mean():.3f} +- {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def combine(paths: list[str], out: str | None) -> None:
    parts = [json.loads(Path(p).read_text()) for p in paths]
    merged = dict(parts[0])
    merged["seeds"] = sorted(s for p in parts for s in p["seeds"])
    merged["results"] = {arm: [r for p in parts for r in p["results"][arm]] for arm in ("curated", "random")}
    merged["seconds"] = [p["seconds"] for p in parts]
    merged["training_clips"] = [p["training_clips"] for p in parts]
    print(table(merged["results"]))
    if out:
        from genlab.core.io import atomic_write_text

        atomic_write_text(Path(out), json.dumps(merged, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--work", default=None, help="folder for the corpus and curation (default: a temporary one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), choices=SEEDS,
                        help="run these of the fixed seeds only (to run seeds as parallel processes sharing --work)")
    parser.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                        help="print the table of several --out files (one per seed) and write their union to --out")
    args = parser.parse_args()
    if args.combine:
        return combine(args.combine, args.out)
    from genlab.systems.video import demo
    from genlab.systems.video.classifier import train_classifier
    from genlab.systems.video.data import make_clips

    sys.path.insert(0, str(Path(__file__).parent))
    from _timing import threads_line

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        work = Path(args.work) if args.work else Path(tmp_name)
        kinds, raw, labels = make_corpus(work / "corpus", CORPUS)
        rows = curate(work / "corpus", work / "curated")
        times = {"corpus_and_curate_s": time.perf_counter() - t0}
        cfg = demo.full()
        ae = demo.toy_autoencoder(cfg, demo.training_clips(cfg))
        judge, judge_acc = train_classifier(sprite_config(), classifier_config())
        test = make_clips(sprite_config(), HELDOUT, seed=424242)
        from genlab.core.eval.frechet import GaussianStats

        real_stats = GaussianStats.of(judge.embed(test.video).numpy())
        bucket = labels.speed * sprite_config().bucket_per_px
        results: dict[str, list] = {"curated": [], "random": []}
        sizes = {}
        for seed in args.seeds:
            kept, random = training_sets(rows, len(raw), seed)
            sizes = {"curated": len(kept), "random": len(random),
                     "random_kinds": {k: int((kinds[random] == k).sum()) for k in KINDS}}
            for arm, idx in (("curated", kept), ("random", random)):
                t1 = time.perf_counter()
                model = train_model(raw[idx], bucket[idx], ae, seed)
                results[arm].append(evaluate(model, ae, test, judge, real_stats, Path(tmp_name), seed))
                print(f"seed {seed} {arm}: {results[arm][-1]} ({time.perf_counter() - t1:.0f} s)", flush=True)
        kept_kinds = {k: int(sum(1 for i in kept if kinds[i] == k)) for k in KINDS}
    summary = {"corpus": {k: int((kinds == k).sum()) for k in KINDS}, "kept_windows_by_kind": kept_kinds,
               "training_clips": sizes, "steps": STEPS, "batch": BATCH, "seeds": list(args.seeds),
               "classifier_heldout_accuracy": judge_acc, "results": results,
               "seconds": {**times, "total_s": time.perf_counter() - t0}, "threads": threads_line()}
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}, indent=1))
    print(table(results))
    if args.out:
        from genlab.core.io import atomic_write_text

        atomic_write_text(Path(args.out), json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
