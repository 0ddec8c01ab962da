"""Memory a conversation freed goes back to the system (service/memory.py), in a fresh
process so that nothing else moves its resident size meanwhile."""

import json
import subprocess
import sys

PROBE = """
import json
from pispeaker.service.memory import give_back_free_memory

def resident_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

# 64 MB in 1 KB pieces (malloc's, not Python's small-object arenas), then a piece after them
# that keeps the top of the heap in use: freeing the rest leaves it inside the heap, free.
pieces = [bytes(1024) + bytes([i % 256]) for i in range(64 * 1024)]
pin = [bytes(1024) for _ in range(16)]
del pieces
freed = resident_kb()
give_back_free_memory()
print(json.dumps({"freed": freed, "given_back": resident_kb()}))
"""


def test_freed_memory_goes_back_to_the_system() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    sizes = json.loads(result.stdout)
    assert sizes["freed"] - sizes["given_back"] > 32 * 1024  # most of the 64 MB
