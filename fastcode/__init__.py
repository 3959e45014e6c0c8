"""fastcode: a terminal coding agent tuned for speed.

This module stays import-light: `fastcode --version` reads only `__version__`.
"""

__version__ = "0.1.0"
