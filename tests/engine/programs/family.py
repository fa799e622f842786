"""Start a grandchild; print both pids; both sleep until killed."""

import os
import subprocess
import sys
import time

child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(f"pids {os.getpid()} {child.pid}", flush=True)
time.sleep(60)
