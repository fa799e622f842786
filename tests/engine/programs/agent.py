"""A scriptable per-input agent: reads its input from stdin (or the last argument).

It prints `started <input>` at once, then acts on the input:
  `gate NAME`  waits until the file $GATE_DIR/NAME exists, then answers
  `sleep S`    sleeps S seconds, then answers
  `exit N`     says so on stderr and exits with code N
  `hang`       sleeps for a minute (until it is killed)
  anything else: answers at once.
The answer is one line, `answer: <input>`.
"""

import os
import sys
import time
from pathlib import Path

text = sys.stdin.read().strip() if len(sys.argv) < 2 else sys.argv[-1]
print(f"started {text}", flush=True)
word, _, rest = text.partition(" ")
if word == "gate":
    gate = Path(os.environ["GATE_DIR"]) / rest
    while not gate.exists():
        time.sleep(0.01)
elif word == "sleep":
    time.sleep(float(rest))
elif word == "exit":
    print(f"exiting with {rest}", file=sys.stderr, flush=True)
    sys.exit(int(rest))
elif word == "hang":
    time.sleep(60)
print(f"answer: {text}", flush=True)
