"""The `splat` command: parses flags, checks them all (splat.checks), calls the library.

Errors and warnings print as one line each: `splat: error: ...` (exit 2), `splat: warning: ...`.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import time
import warnings

from splat import checks
from splat.checks import count, counts, number, port
from splat.config import BACKENDS, EvalConfig, FitConfig, TrainFlags
from splat.errors import SplatError
from splat.export import FORMATS
from splat.logs import show_warning

BATCH_FIT = ("max_side", "poses", "quality", "budget", "device")  # the FitConfig fields `splat batch` sets


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


def fit_config(args: argparse.Namespace) -> FitConfig:
    """The FitConfig of parsed `splat fit` flags (the TrainFlags given go into its train overrides)."""
    return FitConfig(**flag_values(args, FitConfig), train=_train(args))


def _train(args: argparse.Namespace, only: tuple[str, ...] | None = None) -> dict:
    """The TrainFlags given: a flag left at its default (None, or a switch not given) overrides nothing."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainFlags)}
    given = flag_values(args, TrainFlags, only)
    return {k: v for k, v in given.items() if v is not None and v != defaults[k]}


def _cmd_fit(args: argparse.Namespace) -> None:
    from splat.pipeline import fit
    from splat.run import RunFolder

    out = checks.fit_out(args)
    if args.force and RunFolder(out).is_run():
        RunFolder(out).start_over()
    cfg = fit_config(args)
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

    r = evaluate_run(args.run, args.gt, **flag_values(args, EvalConfig))
    counts = f"{len(r['per_view'])} test views, {r['views_scored']} scored, {r['views_flagged']} flagged"
    if r["psnr"] is None:
        scores = "no view aligned, nothing scored"
    else:
        lp = "n/a" if r["lpips"] is None else f"{r['lpips']:.3f}"
        scores = (
            f"PSNR {r['psnr']:.2f} dB ({r['psnr_colour_fit']:.2f} after a per-view colour fit), "
            f"SSIM {r['ssim']:.3f}, LPIPS {lp}"
        )
    fit = r["gt_fit"]
    poor = " (ground truth fits poorly: scores not of the scene alone)" if fit["status"] == "poor" else ""
    if poor:
        from splat.pipeline import warn

        warn(
            f"--gt {args.gt} fits this run's cameras poorly ({fit['reason']}); the scores measure the "
            "mismatch between the run's cameras and the ground truth as much as the scene"
        )
    print(f"{counts}: {scores}, ATE {100 * r['ate_rel']:.2f}% of camera spread{poor} -> {args.run}/eval.json")
    for name, reason in r["flagged"].items():
        print(f"  flagged {name}: {reason} (not in the means)")


def _cmd_batch(args: argparse.Namespace) -> None:
    from splat.batch import run_batch

    fit = {**flag_values(args, FitConfig, BATCH_FIT), "train": _train(args, ("steps",))}
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


def add_flags(
    parser: argparse.ArgumentParser, settings, only: tuple[str, ...] | None = None, help: dict | None = None
) -> None:
    """Add one flag per field of the dataclass `settings` made by splat.config.setting (or per field in
    `only`): its name, help (help[field] where given), type, choices and the field's default."""
    fields = _setting_fields(settings)
    for name in only or fields:
        meta, default = fields[name].metadata, fields[name].default
        flag, text = meta["flag"] or f"--{name.replace('_', '-')}", (help or {}).get(name, meta["help"])
        if isinstance(default, bool):  # a switch: giving it sets the other value
            parser.add_argument(flag, dest=name, action="store_false" if default else "store_true", help=text)
        else:
            parser.add_argument(
                flag, dest=name, type=meta["type"], choices=meta["choices"], default=default, help=text
            )


def flag_values(args: argparse.Namespace, settings, only: tuple[str, ...] | None = None) -> dict:
    """{field: value} of the flags add_flags(parser, settings, only) added, as parsed into `args`."""
    return {name: getattr(args, name) for name in only or _setting_fields(settings)}


def _setting_fields(settings) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(settings) if "help" in f.metadata}


FORCE = "replace what is at the output path (a file or run not written by this command)"


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; building it imports nothing heavy (`splat --help` loads no torch)."""
    parser = _Parser(prog="splat", description="Photos in, a Gaussian splatting scene out.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="show torch, devices, native kernel, optional weights")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("fit", help="images in, a Gaussian splatting scene out")
    p.add_argument("images", help="folder of photos (JPEG/PNG), or a video (.mp4, .mov, .webm, .mkv, ...)")
    p.add_argument("--out", help="run folder (default runs/<folder name>)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out (interrupted or finished)"
    )
    p.add_argument(
        "--force", action="store_true", help="start the run in --out over, or write into a non-empty folder"
    )
    add_flags(p, FitConfig)
    add_flags(p, TrainFlags)
    p.add_argument("--view", action="store_true", help="watch training live in the browser viewer")
    p.add_argument("--host", default="127.0.0.1", help="viewer address (with --view)")
    p.add_argument("--port", type=port, default=8080, help="viewer port (with --view)")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("eval", help="score a run against a scene with ground-truth cameras")
    p.add_argument("run")
    p.add_argument("--gt", required=True, help="scene folder with images/ and sparse/0")
    add_flags(p, EvalConfig)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("batch", help="reconstruct and score every scene of a benchmark folder")
    p.add_argument("root", help="folder of scenes, each <Scene>/images (+ sparse/0), Tanks & Temples layout")
    p.add_argument("--out", default="results", help="results folder (default results/)")
    p.add_argument("--layout", default="tnt", choices=["tnt"], help="benchmark layout (tnt)")
    p.add_argument("--views", type=counts, default="3,6,12", help="training-view counts, comma-separated")
    p.add_argument("--scenes", help="only these scene folders, comma-separated")
    add_flags(p, FitConfig, BATCH_FIT, help={"poses": "auto | sparse | colmap | gt (the scene's own model)"})
    add_flags(p, TrainFlags, ("steps",), help={"steps": "training steps per fit"})
    add_flags(p, EvalConfig, ("refine_steps",))
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
    p.add_argument("--max-side", type=checks.side, help="downscale images to this longer side")
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
