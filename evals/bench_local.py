"""`python evals/bench_local.py [--repeats N]`: the embedded model's TTFT, cold vs warm prefix (also in
`fastcode bench`)."""

import sys

from fastcode.launcher.bench_local import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
