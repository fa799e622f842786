"""A session agent: answer each stdin line, end each answer with the turn-end line."""

import os
import sys

TURN_END = os.environ.get("TURN_END", "<<<end>>>")
for line in sys.stdin:
    text = line.rstrip("\n")
    if text == "die":
        print("dying on request", file=sys.stderr, flush=True)
        sys.exit(7)
    print(f"thinking about {text}", file=sys.stderr, flush=True)
    print(f"pid {os.getpid()} answers {text}")
    print(f"second line for {text}")
    print(TURN_END, flush=True)
