"""Print numbered lines as fast as possible for SECONDS seconds (argv[1])."""

import sys
import time

end = time.monotonic() + float(sys.argv[1])
block = "".join(f"line {i}\n" for i in range(1000))
while time.monotonic() < end:
    sys.stdout.write(block)
sys.stdout.flush()
