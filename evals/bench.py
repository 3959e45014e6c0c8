"""`python evals/bench.py` = `fastcode bench`: the speed figures (see README, "Speed")."""

import sys

from fastcode.commands.bench import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
