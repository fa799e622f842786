"""Echo stdin lines to stdout and stderr, list argv; exit with $EXIT_CODE (default 0)."""

import os
import sys

for arg in sys.argv[1:]:
    print(f"arg: {arg}")
for line in sys.stdin:
    print(f"out: {line.rstrip()}")
    print(f"err: {line.rstrip()}", file=sys.stderr)
print(f"run: {os.environ.get('AGENTDECK_RUN_ID')} extra: {os.environ.get('EXTRA', '')}")
sys.stdout.flush()
if os.environ.get("EXIT_CODE", "0") != "0":
    print("something went wrong", file=sys.stderr)
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
