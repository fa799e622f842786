"""Write invalid UTF-8 to both streams."""

import sys

sys.stdout.buffer.write(b"caf\xc3\xa9 \xff\xfe ok\n")
sys.stderr.buffer.write(b"bad \xc3\x28 byte\n")
