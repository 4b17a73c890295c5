"""``python -m ppcmk_sandbox up [--port N] [--state FILE] [--scenario NAME|DIR] [--clock-speed X]``."""

from __future__ import annotations

import argparse

from ppcmk_sandbox.serve import serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ppcmk_sandbox",
                                     description="The ppcmk offline sandbox cloud.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the sandbox and print its endpoints as one JSON line")
    up.add_argument("--port", type=int, default=0, help="main port (0 = any free port; fixed with --state)")
    up.add_argument("--state", default=None, help="JSON file the world is saved to and restored from")
    up.add_argument("--scenario", default="default", help="scenario name or directory")
    up.add_argument("--clock-speed", type=float, default=0.0, help="0 = manual clock; N = real time x N")
    args = parser.parse_args(argv)
    if args.clock_speed < 0:
        parser.error("--clock-speed must be >= 0")
    serve_forever(port=args.port, state_file=args.state, scenario=args.scenario, clock_speed=args.clock_speed)


if __name__ == "__main__":
    main()
