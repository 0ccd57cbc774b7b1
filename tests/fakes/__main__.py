"""`python -m tests.fakes <provider> [--port N] [--delay S]`: run one fake provider standalone.

Prints (to stderr) the environment variables that point context-server at it.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from tests.fakes import FAKES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes", description=__doc__)
    parser.add_argument("provider", choices=sorted(FAKES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each generation takes")
    args = parser.parse_args(argv)
    fake = FAKES[args.provider]()
    fake.delay = args.delay
    base = f"http://{args.host}:{args.port}"
    for name, value in fake.env(base).items():
        print(f"export {name}={value}", file=sys.stderr)
    uvicorn.run(fake.app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
