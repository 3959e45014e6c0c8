"""`python -m fastcode` runs the same CLI as the `fastcode` console script."""

from fastcode.cli.main import main

raise SystemExit(main())
