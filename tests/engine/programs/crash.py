"""A session program that dies at once."""

import sys

print("cannot work today", file=sys.stderr, flush=True)
sys.exit(3)
