"""The `splat` command: parses flags, checks them all (splat.checks), calls the library.

Errors and warnings print as one line each: `splat: error: ...` (exit 2), `splat: warning: ...`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import warnings

from splat import checks
from splat.checks import count, counts, number, port
from splat.config import BACKENDS, DEVICES, REFINE_STEPS, FitConfig
from splat.errors import SplatError
from splat.export import FORMATS
from splat.logs import show_warning

FIT = FitConfig()  # the fit and batch flags' defaults (splat.config loads no torch: `splat --help` is quick)


def _cmd_doctor(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from splat.doctor import doctor_lines

    table = Table(title="splat doctor", show_header=False)
    for label, value in doctor_lines():
        table.add_row(label, value)
    Console().print(table)


def _cmd_info(args: argparse.Namespace) -> None:
    from splat.io.datasets import load_scene

    scene = load_scene(args.path, max_side=args.max_side)
    sizes = sorted({(im.shape[1], im.shape[0]) for im in scene.images.images})
    print(f"{args.path}: {len(scene.images.names)} images, sizes {sizes}")
    if scene.cameras is not None:
        print(f"ground-truth cameras: {len(scene.cameras)} views")


def _cmd_fit(args: argparse.Namespace) -> None:
    from splat.pipeline import fit
    from splat.run import RunFolder

    out = checks.fit_out(args)
    if args.force and RunFolder(out).is_run():
        RunFolder(out).start_over()
    train = {k: v for k, v in {"steps": args.steps, "backend": args.backend}.items() if v is not None}
    cfg = FitConfig(
        max_side=args.max_side,
        poses=args.poses,
        focal=args.focal,
        exif=not args.no_exif,
        accept_unverified=args.accept_unverified,
        init=args.init,
        budget=args.budget,
        budget_rule=args.budget_rule,
        views=args.views.split(",") if args.views else None,
        device=args.device,
        seed=args.seed,
        train=train,
    )
    live = {}

    def start_live_view(gaussians, cameras, images):
        from splat.viewer.live import LiveView

        live["view"] = view = LiveView.start(gaussians, cameras, images, host=args.host, port=args.port)
        return [lambda r: view.on_step(r.step, r.gaussians(), r.loss, r.psnr)]

    try:
        metrics = fit(
            args.images, out, cfg, resume=args.resume, on_train_start=start_live_view if args.view else None
        )
    except KeyboardInterrupt:
        print(
            f"splat: stopped; finished stages and the last checkpoint are in {out}/: add --resume to continue"
        )
        raise
    t = metrics["seconds"]
    print(
        f"done in {metrics['seconds_total']:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in t.items())}); "
        f"{metrics['gaussians_final']} Gaussians"
    )
    print(f"outputs in {out}/ (splat.ply, cameras/, metrics.json); view with: splat view {out}")
    if "view" in live:
        from splat.io.ply import read_ply

        live["view"].finish("training finished", read_ply(RunFolder(out).splat))
        print("the live view stays open; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            live["view"].close()


def _cmd_eval(args: argparse.Namespace) -> None:
    from splat.eval.evaluate import evaluate_run

    r = evaluate_run(args.run, args.gt, refine_steps=args.refine_steps, backend=args.backend)
    counts = f"{len(r['per_view'])} test views, {r['views_scored']} scored, {r['views_flagged']} flagged"
    if r["psnr"] is None:
        scores = "no view aligned, nothing scored"
    else:
        lp = "n/a" if r["lpips"] is None else f"{r['lpips']:.3f}"
        scores = f"PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}, LPIPS {lp}"
    print(f"{counts}: {scores}, ATE {100 * r['ate_rel']:.2f}% of camera spread -> {args.run}/eval.json")
    for name, reason in r["flagged"].items():
        print(f"  flagged {name}: {reason} (not in the means)")


def _cmd_batch(args: argparse.Namespace) -> None:
    from splat.batch import run_batch

    fit = {"max_side": args.max_side, "poses": args.poses, "budget": args.budget, "device": args.device}
    fit["train"] = {"steps": args.steps} if args.steps else {}
    t0 = time.perf_counter()
    records = run_batch(
        args.root,
        args.out,
        args.views,
        fit=fit,
        scenes=args.scenes.split(",") if args.scenes else None,
        executor=args.executor,
        jobs=args.jobs,
        address=args.address,
        cpus_per_job=args.cpus_per_job,
        gpus_per_job=args.gpus_per_job,
        refine_steps=args.refine_steps,
        force=args.force,
    )
    failed = [r for r in records if r["status"] != "ok"]
    print(
        f"{len(records) - len(failed)} of {len(records)} jobs ok in {time.perf_counter() - t0:.0f} s; "
        f"tables in {args.out}/results.md (results.json, results.csv)"
    )


def _cmd_view(args: argparse.Namespace) -> None:
    from splat.viewer import serve

    serve(args.path, host=args.host, port=args.port, say=lambda line: print(line, flush=True))


def _cmd_export(args: argparse.Namespace) -> None:
    from splat.export import export
    from splat.run import RunFolder

    options = {"voxel": args.voxel, "backend": args.backend} if args.format == "mesh" else {}
    out = export(args.run, args.format, args.out, **options)  # splat.checks refused an --out not ours
    size = sum(f.stat().st_size for f in ([out] if out.is_file() else out.rglob("*") if out.is_dir() else []))
    ply, ratio = RunFolder(args.run).splat, ""
    compressed = ("ply-compressed", "splat", "spz", "sog", "glb", "quantized")
    if args.format in compressed and ply.is_file() and size:
        ratio = f", {ply.stat().st_size / size:.1f}x smaller than splat.ply"
    print(f"wrote {out} ({size / 1e6:.2f} MB{ratio})")


def _cmd_render(args: argparse.Namespace) -> None:
    from splat.export.video import render_run_video

    out = render_run_video(args.run, args.video, args.path, args.frames, args.fps, args.scale, args.backend)
    print(f"wrote {out} ({args.frames} frames)")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line, `splat: error: ...`, like every other error (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"splat: error: {message} (see {self.prog} --help)\n")


STEPS = count(1, "give 1 or more training steps")
SIDE = count(checks.MIN_SIDE, f"give {checks.MIN_SIDE} px or more")
REFINE = count(1, f"give 1 or more alignment steps (default {REFINE_STEPS})")
REFINE_HELP = f"step cap of each test view's alignment (default {REFINE_STEPS})"
FORCE = "replace what is at the output path (a file or run not written by this command)"


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; building it imports nothing heavy (`splat --help` loads no torch)."""
    parser = _Parser(prog="splat", description="Photos in, a Gaussian splatting scene out.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="show torch, devices, native kernel, optional weights")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("fit", help="images in, a Gaussian splatting scene out")
    p.add_argument("images", help="folder of photos (JPEG/PNG)")
    p.add_argument("--out", help="run folder (default runs/<folder name>)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out (interrupted or finished)"
    )
    p.add_argument(
        "--force", action="store_true", help="start the run in --out over, or write into a non-empty folder"
    )
    p.add_argument("--poses", default=FIT.poses, help="auto | sparse | colmap | given:DIR (COLMAP model)")
    p.add_argument(
        "--focal",
        type=number(0, fix="give the focal in pixels, > 0"),
        help="focal length in pixels at the loaded size, if known",
    )
    p.add_argument(
        "--no-exif", action="store_true", help="ignore the photos' EXIF focal and estimate it from the images"
    )
    p.add_argument(
        "--accept-unverified",
        action="store_true",
        help="keep a camera solution that fails its verification (marked in poses.json and metrics.json)",
    )
    p.add_argument("--init", default=FIT.init, help="edgs | sparse | given:PATH.ply")
    p.add_argument(
        "--budget",
        type=count(0, "give 0 (no limit) or more Gaussians"),
        default=FIT.budget,
        help=f"max initial Gaussians (default {FIT.budget}; 0: no limit)",
    )
    p.add_argument("--budget-rule", default=FIT.budget_rule, choices=["random", "confidence", "voxel"])
    p.add_argument("--views", help="comma-separated image names to train on (others held out)")
    p.add_argument("--steps", type=STEPS, help="training steps")
    p.add_argument("--max-side", type=SIDE, default=FIT.max_side, help="downscale images to this longer side")
    p.add_argument("--device", default=FIT.device, choices=DEVICES)
    p.add_argument("--backend", choices=BACKENDS, help="rasterizer backend")
    p.add_argument("--seed", type=count(0, "give 0 or more"), default=FIT.seed)
    p.add_argument("--view", action="store_true", help="watch training live in the browser viewer")
    p.add_argument("--host", default="127.0.0.1", help="viewer address (with --view)")
    p.add_argument("--port", type=port, default=8080, help="viewer port (with --view)")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("eval", help="score a run against a scene with ground-truth cameras")
    p.add_argument("run")
    p.add_argument("--gt", required=True, help="scene folder with images/ and sparse/0")
    p.add_argument("--refine-steps", type=REFINE, help=REFINE_HELP)
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("batch", help="reconstruct and score every scene of a benchmark folder")
    p.add_argument("root", help="folder of scenes, each <Scene>/images (+ sparse/0), Tanks & Temples layout")
    p.add_argument("--out", default="results", help="results folder (default results/)")
    p.add_argument("--layout", default="tnt", choices=["tnt"], help="benchmark layout (tnt)")
    p.add_argument("--views", type=counts, default="3,6,12", help="training-view counts, comma-separated")
    p.add_argument("--scenes", help="only these scene folders, comma-separated")
    p.add_argument("--poses", default=FIT.poses, help="auto | sparse | colmap | gt (the scene's own model)")
    p.add_argument("--steps", type=STEPS, help="training steps per fit")
    p.add_argument(
        "--budget",
        type=count(0, "give 0 (no limit) or more Gaussians"),
        default=FIT.budget,
        help=f"max initial Gaussians (default {FIT.budget})",
    )
    p.add_argument("--max-side", type=SIDE, default=FIT.max_side)
    p.add_argument("--refine-steps", type=REFINE, help=REFINE_HELP)
    p.add_argument("--device", default=FIT.device, choices=DEVICES)
    p.add_argument("--executor", default="local", choices=["local", "ray"])
    p.add_argument("--jobs", type=count(1), default=1, help="local executor: worker processes")
    p.add_argument("--address", help="ray executor: cluster address (default: start a local Ray)")
    p.add_argument("--cpus-per-job", type=count(1), help="ray executor: CPUs per task (default 1)")
    p.add_argument(
        "--gpus-per-job",
        type=number(least=0, fix="give 0 or more"),
        default=0,
        help="ray executor: GPUs per task",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="redo jobs that already finished; write into a folder of other files",
    )
    p.set_defaults(func=_cmd_batch)

    p = sub.add_parser("info", help="load a scene folder and print its summary")
    p.add_argument("path")
    p.add_argument("--max-side", type=SIDE, default=None)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("view", help="open a run folder or .ply in the browser viewer")
    p.add_argument("path", help="run folder (splat.ply, cameras/) or a 3DGS .ply file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all interfaces)")
    p.add_argument("--port", type=port, default=8080, help="port (the next free one if taken)")
    p.set_defaults(func=_cmd_view)

    p = sub.add_parser("export", help="write a run as another splat format, COLMAP model, points or mesh")
    p.add_argument("run", help="a finished `splat fit` run folder")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", help="output path (default RUN/export/...)")
    p.add_argument("--force", action="store_true", help=FORCE)
    p.add_argument(
        "--voxel",
        type=number(0, fix="give a voxel size > 0"),
        help="mesh: TSDF voxel (default: median depth / 256)",
    )
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="mesh: rasterizer backend")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("render", help="render a fly-through video of a run")
    p.add_argument("run", help="a finished `splat fit` run folder")
    p.add_argument("--path", default="orbit", choices=["orbit", "interpolate"], help="camera path")
    p.add_argument("--video", help="output .mp4/.mkv/.mov (default RUN/<path>.mp4)")
    p.add_argument("--force", action="store_true", help=FORCE)
    p.add_argument("--frames", type=count(1, "give 1 or more frames"), default=120)
    p.add_argument("--fps", type=count(1, "give 1 or more frames per second"), default=24)
    p.add_argument(
        "--scale",
        type=number(0, fix="give a factor > 0, e.g. 0.5"),
        default=1.0,
        help="frame size relative to the cameras",
    )
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.set_defaults(func=_cmd_render)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # `kill` (SIGTERM, how schedulers stop jobs) stops a command the way Ctrl-C does: training saves its
    # checkpoint at a step boundary, and no native library's crash handler dumps a stack trace
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    previous, warnings.showwarning = warnings.showwarning, show_warning  # one line each
    try:
        checks.check(args)  # every flag, before any work
        args.func(args)
    except SplatError as exc:
        print(f"splat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("splat: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous
    return 0


if __name__ == "__main__":
    sys.exit(main())
