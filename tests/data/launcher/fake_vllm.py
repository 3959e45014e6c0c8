"""A stand-in for the `vllm` command in tests (vLLM itself needs a GPU and weights).

`serve --help` / `serve --help=all` print the recorded help (tests/data/vllm_help.txt). `serve MODEL ...` rejects any
flag that help does not list (exit 2, like argparse), records its argv in $FAKE_VLLM_ARGV when set, then serves the
OpenAI API with fastcode's scripted server on `--port`, listing `--served-model-name`. $FAKE_VLLM_MODE: `hang`
(never listens) or `crash` (exits 1 at once).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

HELP = Path(__file__).resolve().parent.parent / "vllm_help.txt"


def main(argv: list[str]) -> int:
    if argv[:1] != ["serve"]:
        print("usage: vllm [-h] {serve} ...", file=sys.stderr)
        return 2
    args = argv[1:]
    if args and args[0].startswith("--help"):
        print(HELP.read_text())
        return 0
    known = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", HELP.read_text()))
    unknown = [a for a in args[1:] if a.startswith("-") and a not in known]
    if unknown:
        print(f"vllm serve: error: unrecognized arguments: {' '.join(unknown)}", file=sys.stderr)
        return 2
    if record := os.environ.get("FAKE_VLLM_ARGV"):
        Path(record).write_text(json.dumps(argv))
    mode = os.environ.get("FAKE_VLLM_MODE", "")
    print(f"INFO fake vllm: loading {args[0]}", flush=True)
    if mode == "crash":
        print("ERROR fake vllm: CUDA out of memory", flush=True)
        return 1
    if mode == "hang":
        time.sleep(3600)
    name = args[args.index("--served-model-name") + 1] if "--served-model-name" in args else args[0]
    script = Path(tempfile.mkdtemp(prefix="fake-vllm-")) / "script.json"
    script.write_text(json.dumps({"model": name}))
    from fastcode.testing.scripted_server import main as serve

    return serve(["--script", str(script), "--port", args[args.index("--port") + 1]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
