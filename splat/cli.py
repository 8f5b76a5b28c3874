"""The `splat` command: parses flags and calls the library. Errors print as one line."""

from __future__ import annotations

import argparse
import sys

from splat.errors import SplatError


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="splat", description="Photos in, a Gaussian splatting scene out.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="show torch, devices, native kernel, optional weights")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("info", help="load a scene folder and print its summary")
    p.add_argument("path")
    p.add_argument("--max-side", type=int, default=None)
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SplatError as exc:
        print(f"splat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("splat: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
