"""``python -m bench [scenario ...]``: run benchmark scenarios, print and record them.

Scenarios are modules of this package listed in ``SCENARIOS``; each has
``async def run(quick: bool) -> Section``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

from bench.report import write_section

#: scenario name -> module under bench/
SCENARIOS: dict[str, str] = {
    "append": "bench.append",
    "read": "bench.read",
    "memory": "bench.memory",
    "postgres": "bench.postgres",
    "http": "bench.http",
    "fanout": "bench.fanout",
    "delivery": "bench.delivery",
    "delivery-pg": "bench.delivery_pg",
    "shared": "bench.shared",
    "scale": "bench.scale",
    "peers-redis": "bench.peers.redis_streams",
    "peers-jetstream": "bench.peers.jetstream",
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenarios", nargs="*", help=f"any of: {', '.join(SCENARIOS)} (all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--large", action="store_true", help="scale: also 20,000,000 events (long; ~8 GB in /tmp)"
    )
    parser.add_argument(
        "--streams",
        type=int,
        nargs="+",
        default=[1, 1000],
        help="scale: the layouts, as stream counts (default: 1 1000)",
    )
    args = parser.parse_args()
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    for name in names:
        module = importlib.import_module(SCENARIOS[name])
        if name == "scale":
            options = {"large": args.large, "streams": tuple(args.streams)}
            section = asyncio.run(module.run(args.quick, **options))
        else:
            section = asyncio.run(module.run(args.quick))
        section.print()
        if not args.no_write:
            write_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
