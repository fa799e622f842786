"""Print N numbered lines as fast as possible."""

import sys

count = int(sys.argv[1])
sys.stdout.write("".join(f"line {i}\n" for i in range(count)))
