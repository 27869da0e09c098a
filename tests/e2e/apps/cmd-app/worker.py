import itertools
import os
import time

for n in itertools.count():
    print(f"worker tick {n} from {os.environ.get('DYNO')}", flush=True)
    time.sleep(0.5)
