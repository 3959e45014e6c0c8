"""`python -m fastcode` runs the same CLI as the `fastcode` console script."""

from fastcode.cli import main

raise SystemExit(main())
