"""`splat batch`: reconstruct every scene of a benchmark for several view counts and tabulate the scores.

The protocol is InstantSplat's on Tanks & Temples (splat.io.datasets.tnt_split): per scene, 24
frames sorted by name, 12 test views, n training views from the other 12. Each (scene, n) job
fits pose-free on the training views, aligns the test cameras with the Gaussians frozen (pose
and focal, until converged: splat.eval.align), scores the aligned test views and the training
poses (ATE against the scene's COLMAP model). Views whose alignment is flagged are counted, not
scored (results tables: views scored / flagged). A scene whose ground truth does not fit its run
(`splat eval`'s check: training cameras far off after Sim(3)) is recorded as "refused", not scored;
one that fits it poorly (eval.json gt_fit "poor") is scored, marked "gt fit: poor" in the tables and
left out of the split's mean.

    OUT/<scene>/<n>views/          the `splat fit` run folder of that job (+ eval.json)
    OUT/<scene>/<n>views/job.json  the job's record: status, metrics, timings, error
    OUT/results.json|csv|md        every record, and one table per split

A finished job is skipped on the next call unless `force`; an interrupted or failed job is run
again and resumes its fit from the stages it had finished. A failing job is recorded with its
error and does not stop the others. Jobs run one after another in this process, in `jobs`
worker processes, or as Ray tasks on a cluster (`executor="ray"`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from splat.errors import InputError, SplatError
from splat.io.atomic import atomic_write_text
from splat.progress import bar, showing

REFERENCE_FILE = Path(__file__).parent / "data" / "instantsplat_tnt.json"
# what a job's record takes from its eval.json (means over the views scored; flagged: {name: reason};
# all_views_mean: flagged views included, for reference)
EVAL_KEYS = ("psnr", "ssim", "lpips", "psnr_colour_fit", "views_scored", "views_flagged", "flagged",
             "all_views_mean", "ate_rel", "ate_rmse", "gt_fit", "per_view")  # fmt: skip


@dataclass
class BatchScene:
    """One scene folder of the benchmark: its images and (if present) ground-truth model."""

    name: str
    root: Path  # folder holding images/ (and sparse/0)
    image_names: list[str]
    has_gt: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class BatchJob:
    """Fit `train` views of a scene, score `test` views; `fit` holds FitConfig overrides."""

    scene: str
    root: str
    n_views: int
    train: list[str]
    test: list[str]
    has_gt: bool
    out: str
    fit: dict
    refine_steps: int | None  # alignment step cap per test view (None: AlignSettings')
    protocol: str  # "tnt" (24 frames) or "scaled" (other counts: same rule, not comparable)
    notes: list[str] = field(default_factory=list)
    resume: bool = True  # continue the stages a previous attempt finished

    @property
    def key(self) -> str:
        return f"{self.scene}/{self.n_views}views"


def discover_scenes(root: str | Path, names: list[str] | None = None) -> list[BatchScene]:
    """Scene folders under ROOT: every sub-folder holding images/ (or 24_views/images), by name.

    Raises InputError when ROOT holds no scene (or a requested name is missing).
    """
    from splat.io.datasets import TNT_SUBFOLDER, _sparse_dir
    from splat.io.images import list_images

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"benchmark folder {root} does not exist")
    scenes = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        base = folder / TNT_SUBFOLDER if (folder / TNT_SUBFOLDER / "images").is_dir() else folder
        if not (base / "images").is_dir():
            continue
        image_names = sorted(p.name for p in list_images(base / "images"))
        scene = BatchScene(folder.name, base, image_names, _sparse_dir(base) is not None)
        if not scene.has_gt:
            scene.notes.append("no sparse/0: poses and test views not scored")
        if len(image_names) != 24:
            scene.notes.append(f"{len(image_names)} images, not 24: split scaled, not comparable")
        scenes.append(scene)
    if names:
        missing = sorted(set(names) - {s.name for s in scenes})
        if missing:
            raise InputError(f"{root}: no scene folder(s) {', '.join(missing)} with an images/ folder")
        scenes = [s for s in scenes if s.name in names]
    if not scenes:
        raise InputError(
            f"{root}: no scene folders found; expected <Scene>/images (+ sparse/0), Tanks & Temples layout"
        )
    return scenes


def plan_jobs(
    scenes: list[BatchScene],
    views: list[int],
    out: str | Path,
    fit: dict,
    refine_steps: int | None = None,
    resume: bool = True,
) -> tuple[list[BatchJob], list[dict]]:
    """Jobs for every (scene, n views), and records for the pairs that cannot run (with the reason)."""
    from splat.io.datasets import tnt_split

    jobs, skipped = [], []
    for scene in scenes:
        n_frames = len(scene.image_names)
        for n in views:
            key = {"scene": scene.name, "n_views": n}
            try:
                train_idx, test_idx = tnt_split(n_frames, n)
            except ValueError as e:
                skipped.append({**key, "status": "skipped", "error": f"{n_frames} images: {e}"})
                continue
            jobs.append(
                BatchJob(
                    scene=scene.name,
                    root=str(scene.root),
                    n_views=n,
                    train=[scene.image_names[i] for i in train_idx],
                    test=[scene.image_names[i] for i in test_idx],
                    has_gt=scene.has_gt,
                    out=str(Path(out) / scene.name / f"{n}views"),
                    fit=dict(fit),
                    refine_steps=refine_steps,
                    protocol="tnt" if n_frames == 24 else "scaled",
                    notes=list(scene.notes),
                    resume=resume,
                )
            )
    return jobs, skipped


def run_job(job: BatchJob | dict, threads: int | None = None) -> dict:
    """Fit and score one job in this process; returns its record (also written to OUT/job.json).

    Never raises for a failing scene: the record has status "failed" and the error line.
    """
    import torch

    from splat.eval.evaluate import GroundTruthMismatch, evaluate_run
    from splat.io.datasets import _sparse_dir
    from splat.pipeline import FitConfig, fit

    job = job if isinstance(job, BatchJob) else BatchJob(**job)
    if threads:
        torch.set_num_threads(threads)
    out = Path(job.out)
    record = {
        "scene": job.scene,
        "n_views": job.n_views,
        "protocol": job.protocol,
        "train_views": job.train,
        "test_views": job.test,
        "notes": job.notes,
        "run": str(out),
    }
    t0 = time.perf_counter()
    try:
        fit_cfg = dict(job.fit)
        if fit_cfg.get("poses") == "gt":
            if not job.has_gt:
                raise InputError(f"{job.root}: --poses gt needs sparse/0")
            fit_cfg["poses"] = f"given:{_sparse_dir(Path(job.root))}"
        cfg = FitConfig(**{**fit_cfg, "views": job.train})
        metrics = fit(Path(job.root) / "images", out, cfg, resume=job.resume, progress=False)
        record.update(
            fit_seconds=metrics["seconds"],
            gaussians_init=metrics["gaussians_init"],
            gaussians_final=metrics["gaussians_final"],
            pose_method=_pose_method(out),
        )
        if job.has_gt:
            t1 = time.perf_counter()
            ev = evaluate_run(out, job.root, refine_steps=job.refine_steps, test_names=job.test)
            record.update({k: ev[k] for k in EVAL_KEYS})
            record["eval_seconds"] = round(time.perf_counter() - t1, 3)
        record["status"] = "ok"
    except GroundTruthMismatch as e:  # the fit stays; a score against this ground truth would mean nothing
        where = _sparse_dir(Path(job.root))
        record.update(status="refused", error=f"ground truth {where} does not fit this run: {e.reason}")
    except SplatError as e:
        record.update(status="failed", error=str(e))
    except Exception as e:  # a bug or a library failure in one scene must not stop the batch
        record.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    record["seconds"] = round(time.perf_counter() - t0, 3)
    out.mkdir(parents=True, exist_ok=True)
    if record["status"] != "ok":
        # the run's log ends with why, traceback included, next to the stage messages
        from splat.run import RunFolder

        why = f"{record['status']}: {record['error']}\n{record.get('traceback', '')}"
        RunFolder(out).logger("batch")(why.rstrip())
        record["log"] = str(RunFolder(out).log)
    atomic_write_text(out / "job.json", json.dumps(record, indent=2) + "\n")
    return record


def _pose_method(run: Path) -> str:
    from splat.run import RunFolder

    info = RunFolder(run).poses_json
    return json.loads(info.read_text())["method"] if info.exists() else "given"


def finished_record(job: BatchJob) -> dict | None:
    """The stored record of a job that finished successfully before, else None."""
    path = Path(job.out) / "job.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("status") == "ok" else None


def run_batch(
    root: str | Path,
    out: str | Path,
    views: list[int],
    *,
    fit: dict | None = None,
    scenes: list[str] | None = None,
    executor: str = "local",
    jobs: int = 1,
    address: str | None = None,
    cpus_per_job: int | None = None,
    gpus_per_job: float = 0,
    refine_steps: int | None = None,
    force: bool = False,
    progress: bool | None = None,
    say=print,
) -> list[dict]:
    """Run the benchmark; writes OUT/results.json, .csv, .md and returns the records."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan, skipped = plan_jobs(discover_scenes(root, scenes), views, out, fit or {}, refine_steps, not force)
    done = {} if force else {j.key: r for j in plan if (r := finished_record(j)) is not None}
    todo = [j for j in plan if j.key not in done]
    for record in done.values():
        record["reused"] = True
    if done:
        say(f"{len(done)} finished job(s) reused (--force to redo them)")
    say(f"{len(todo)} job(s) to run with the {executor} executor")
    runner = {"local": _run_local, "ray": _run_ray}.get(executor)
    if runner is None:
        raise InputError(f"unknown executor {executor!r}: use local or ray")
    options = {"jobs": jobs, "address": address, "cpus": cpus_per_job, "gpus": gpus_per_job}
    records = list(done.values()) + skipped
    with _BatchProgress(len(todo), progress) as bar:
        for record in runner(todo, options):
            records.append(record)
            bar.advance(record)
            write_results(records, out)
    records = write_results(records, out)
    return records


def _run_local(todo: list[BatchJob], options: dict):
    """Yield records as jobs finish: in this process, or in `jobs` worker processes."""
    n = max(1, int(options["jobs"] or 1))
    if n == 1 or len(todo) <= 1:
        for job in todo:
            yield run_job(job)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // n)
    with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(run_job, asdict(job), threads) for job in todo]
        for future in as_completed(futures):
            yield future.result()


def _run_ray(todo: list[BatchJob], options: dict):
    """Yield records as Ray tasks finish; one task per job with its CPU/GPU needs."""
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'ray>=2.9'") from None
    started_here = not ray.is_initialized()
    if started_here:
        if options["address"]:
            ray.init(address=options["address"], log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count(), log_to_driver=False, include_dashboard=False)
    try:
        cpus = options["cpus"] or 1
        task = ray.remote(num_cpus=cpus, num_gpus=options["gpus"] or 0)(run_job)
        pending = [task.remote(asdict(job), cpus) for job in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])
    finally:
        if started_here:
            ray.shutdown()


class _BatchProgress:
    """A progress bar over jobs (done/total, time left) and a line per finished job (with the time left
    when no bar is drawn)."""

    def __init__(self, total: int, show: bool | None) -> None:
        import sys

        self.total, self.show = total, sys.stderr.isatty() if show is None else show
        self.stack = contextlib.ExitStack()

    def __enter__(self):
        self.stack.enter_context(showing(self.show and self.total > 0))
        self.bar = self.stack.enter_context(bar("batch", self.total))
        return self

    def advance(self, record: dict) -> None:
        line = _record_line(record)
        self.bar.advance(info=line)
        if self.show:
            print(line, flush=True)  # above the bar
        else:
            done = self.bar.done
            eta = self.bar.seconds / done * (self.total - done)
            print(f"[{done}/{self.total}, ETA {eta:.0f} s] {line}", flush=True)

    def __exit__(self, *exc):
        return self.stack.__exit__(*exc)


def _record_line(r: dict) -> str:
    head = f"{r['scene']} {r['n_views']} views:"
    if r["status"] != "ok":
        return f"{head} {r['status']}: {r.get('error', '')}" + (f" (log: {r['log']})" if r.get("log") else "")
    if r.get("views_scored") is None and r.get("psnr") is None:
        return f"{head} fitted in {r['seconds']:.0f} s (no ground truth, not scored)"
    flagged = f", {r['views_flagged']} test view(s) flagged" if r.get("views_flagged") else ""
    if r.get("psnr") is None:
        return f"{head} no test view aligned{flagged}, ATE {100 * r['ate_rel']:.2f}% in {r['seconds']:.0f} s"
    scores = f"PSNR {r['psnr']:.2f} SSIM {r['ssim']:.3f} ATE {100 * r['ate_rel']:.2f}%"
    poor = f", ground truth fits poorly ({r['gt_fit']['reason']}), not in the mean" if gt_fit_poor(r) else ""
    return f"{head} {scores}{flagged}{poor} in {r['seconds']:.0f} s"


def gt_fit_poor(r: dict) -> bool:
    """Whether the job's ground truth fits its run poorly (scored, but not in the means)."""
    return (r.get("gt_fit") or {}).get("status") == "poor"


# ---------------------------------------------------------------- results tables

COLUMNS = ["scene", "n_views", "status", "psnr", "ssim", "lpips", "psnr_colour_fit", "views_scored",
           "views_flagged", "gt_fit", "ate_rel", "ate_rmse", "seconds", "gaussians_init", "gaussians_final",
           "pose_method", "protocol", "error"]  # fmt: skip


POOR_FIT_NOTE = (
    "gt fit: poor: scored but left out of the mean; the ground truth's training cameras sit far off "
    "the run's after Sim(3), so those scores measure that mismatch as much as the scene."
)


def load_reference(path: Path = REFERENCE_FILE) -> dict:
    """Published InstantSplat figures: {"source": {...}, "splits": {"3": {scene: {metric: value}}}}."""
    if not path.exists():
        return {"source": {}, "splits": {}}
    return json.loads(path.read_text())


def write_results(records: list[dict], out: str | Path, reference: dict | None = None) -> list[dict]:
    """Sort the records and write OUT/results.json, results.csv, results.md atomically."""
    out = Path(out)
    records = sorted(records, key=lambda r: (r["n_views"], r["scene"]))
    reference = load_reference() if reference is None else reference
    atomic_write_text(out / "results.json", json.dumps({"records": records}, indent=2) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({**r, "gt_fit": (r.get("gt_fit") or {}).get("status", "")} for r in records)
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.md", results_markdown(records, reference))
    return records


def _fmt(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _row(cells: list) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def _our_cells(r: dict) -> list[str]:
    ate = None if r.get("ate_rel") is None else 100 * r["ate_rel"]
    views = "n/a" if r.get("views_scored") is None else f"{r['views_scored']} / {r['views_flagged']}"
    return [_fmt(r.get("psnr"), 2), _fmt(r.get("ssim"), 3), _fmt(r.get("lpips"), 3), _fmt(ate, 2), views]


def _published_cells(pub: dict) -> list[str]:
    return [_fmt(pub.get("psnr"), 2), _fmt(pub.get("ssim"), 3), _fmt(pub.get("lpips"), 3)]


def _mean_record(scored: list[dict]) -> dict:
    mean = {k: sum(r[k] for r in scored) / len(scored) for k in ("psnr", "ssim", "ate_rel", "seconds")}
    lpips = [r.get("lpips") for r in scored]
    mean["lpips"] = None if None in lpips else sum(lpips) / len(lpips)
    if all(r.get("views_scored") is not None for r in scored):  # totals over the jobs
        mean["views_scored"] = sum(r["views_scored"] for r in scored)
        mean["views_flagged"] = sum(r["views_flagged"] for r in scored)
    return mean


def results_markdown(records: list[dict], reference: dict) -> str:
    """One table per split: our metrics, the published ones where the scene name matches, means."""
    lines = ["# splat batch results", ""]
    source = reference.get("source", {})
    header = ["scene", "PSNR", "SSIM", "LPIPS", "ATE (% spread)", "views scored / flagged", "time (s)",
              "Gaussians", "poses", "InstantSplat PSNR", "SSIM", "LPIPS", "status"]  # fmt: skip
    for n in sorted({r["n_views"] for r in records}):
        rows = [r for r in records if r["n_views"] == n]
        ref = {k.lower(): v for k, v in reference.get("splits", {}).get(str(n), {}).items()}
        lines += [f"## {n} training views", "", _row(header), _row(["---"] * len(header))]
        for r in rows:
            status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('error', '')}"
            if gt_fit_poor(r):
                status += f"; gt fit: poor ({r['gt_fit']['reason']})"
            if r.get("notes"):
                status += " (" + "; ".join(r["notes"]) + ")"
            timing = [_fmt(r.get("seconds"), 0), r.get("gaussians_final", "n/a"), r.get("pose_method", "n/a")]
            pub = _published_cells(ref.get(r["scene"].lower(), {}))
            lines.append(_row([r["scene"], *_our_cells(r), *timing, *pub, status]))
        scored = [r for r in rows if r["status"] == "ok" and r.get("psnr") is not None and not gt_fit_poor(r)]
        if scored:
            mean = _mean_record(scored)
            timing = [_fmt(mean["seconds"], 0), "", ""]
            pub = _published_cells(ref.get("mean", {}))
            lines.append(_row([f"**mean ({len(scored)} scored)**", *_our_cells(mean), *timing, *pub, ""]))
        matched = sorted(r["scene"] for r in rows if r["scene"].lower() in ref)
        lines += ["", _comparability(matched, bool(ref)), ""]
        if any(gt_fit_poor(r) for r in rows):
            lines += [POOR_FIT_NOTE, ""]
    if source:  # one line: the paper and its table; how the figures were copied stays in the data file
        paper, table = source.get("title", "").split(":")[0], source.get("table", "").split(".")[0]
        where = f"{paper} ({source.get('url', '')}), {table}"
        lines += [f"Published figures: {where}; provenance in splat/data/{REFERENCE_FILE.name}.", ""]
    return "\n".join(lines)


def _comparability(matched: list[str], have_reference: bool) -> str:
    if not have_reference:
        return "Comparable: no published figures on record for this split."
    if not matched:
        return (
            "Comparable: none; no scene here has a published InstantSplat figure (names differ), "
            "so the published columns stay n/a."
        )
    return (
        f"Comparable: PSNR and SSIM of {', '.join(matched)} (same scenes and Tanks & Temples split; "
        "our images at the fitted max side). LPIPS only when local weights exist. "
        "ATE is not comparable: ours is relative to the camera spread."
    )
