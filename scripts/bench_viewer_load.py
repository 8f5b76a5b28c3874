"""`splat view` under load: several headless Chromium clients at once, rapid camera moves, one client
dropped mid-frame per round (issue #21 item 6; tests/test_viewer_load.py is the short version).

A synthetic scene (splat/viewer/demo.py) is served by a real `splat view` process with "Render with splat"
on, so every camera move makes the server render a frame for that client. Prints the number of
clients, frames served (rendered frames the clients received), the process's RSS after each round
and its peak, and server errors (lines it printed other than its own three, tracebacks included).

    .venv/bin/python scripts/bench_viewer_load.py [--clients 3] [--rounds 3] [--moves 4] [--gaussians 3000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from splat.io.ply import write_ply
from splat.viewer.browser import browser_missing, headless_browser
from splat.viewer.demo import demo_scene
from splat.viewer.stress import SPLATS, ViewProcess, load_round, open_client, server_render_on, wait_for

OWN_LINES = ("viewing ", "open http://", "viewer stopped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=3, help="clients kept to the end of a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--moves", type=int, default=4, help="camera moves per client and round")
    parser.add_argument("--gaussians", type=int, default=3000)
    args = parser.parse_args()
    if why := browser_missing():
        print(f"cannot run: {why}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        server = ViewProcess(write_ply(Path(tmp) / "scene.ply", demo_scene(args.gaussians)))
        rss, frames, late_frames = [server.rss_mib()], 0, 0
        try:
            with headless_browser() as browser:
                page, counter = open_client(browser, server.url)
                wait_for(page, lambda: counter.types[SPLATS] > 0)
                server_render_on(page)
                wait_for(page, lambda: counter.frames > 0)
                frames += counter.frames
                page.close()
                for i in range(args.rounds):
                    r = load_round(browser, server.url, clients=args.clients, moves=args.moves, seed=i)
                    frames += r["frames"]
                    rss.append(server.rss_mib())
                    print(f"round {i + 1}: frames {r['frames_per_client']} (+{r['dropped_frames']} to the "
                          f"dropped client), RSS {rss[-1]:.1f} MiB", flush=True)  # fmt: skip
                late, late_counter = open_client(browser, server.url)
                wait_for(late, lambda: late_counter.frames > 0)
                late_frames = late_counter.frames
                frames += late_frames
            peak = server.peak_rss_mib()
        finally:
            code = server.stop()
    errors = [line for line in server.output if not line.startswith(OWN_LINES)]
    print(f"{args.gaussians:,} Gaussians, {args.rounds} rounds of {args.clients} clients + 1 dropped "
          f"mid-frame, {args.moves} moves each")  # fmt: skip
    print(f"  clients:        {args.rounds * (args.clients + 1) + 2} ({args.clients + 1} at once)")
    print(f"  frames served:  {frames} (a client joining after the load: {late_frames})")
    after = ", ".join(f"{x:.1f}" for x in rss[1:])
    print(f"  RSS:            start {rss[0]:.1f} MiB, after each round {after}")
    print(f"  peak RSS:       {peak:.1f} MiB")
    print(f"  server errors:  {len(errors)} (exit code {code})")
    for line in errors:
        print(f"    {line}")
    return 0 if not errors and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
