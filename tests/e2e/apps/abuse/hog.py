"""After 3 s (past the deploy's checks), allocates memory in 16 MiB steps up to 1 GiB and holds
it: an OOM kill waiting to happen under a small limit."""

import time

time.sleep(3)
chunks = []
for _ in range(64):
    chunks.append(b"x" * (16 << 20))  # written, so the pages are really used
    time.sleep(0.05)
print("allocated 1 GiB", flush=True)
time.sleep(3600)
