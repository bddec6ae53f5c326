"""Serve the Pinecone stand-in in the foreground, for manual runs (e.g. a migration by hand).

    python -m tests.pinecone_standin --port 8787 [--index querio] [--dimension 384]
        [--metric cosine] [--api-key standin-key]

Then point Querio at it: ``QUERIO_PINECONE_HOST=http://127.0.0.1:8787
QUERIO_PINECONE_INDEX=querio QUERIO_PINECONE_API_KEY=standin-key``. State lives in memory
and is lost when the process stops (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys

from tests.pinecone_standin.server import StandinIndex, StandinServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.pinecone_standin")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--index", default="querio")
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--metric", default="cosine")
    parser.add_argument("--api-key", default="standin-key")
    args = parser.parse_args(argv)
    server = StandinServer(StandinIndex(args.index, args.dimension, args.metric), api_key=args.api_key,
                           port=args.port)
    print(f"pinecone stand-in: index {args.index!r} ({args.dimension}-d {args.metric}) on {server.url}",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
