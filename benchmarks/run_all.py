"""`make bench`: the speed suite, one line per figure, every figure a ratio measured in one run.

Runs each benchmark in its own single-threaded process, in this order: simulator vs lenstronomy, LensMAE vs
ViTMAE train step, data loading vs training consumption, train-step FLOP/s vs the machine's matmul peak, the app's
answer time (bench_app.py sets its own 2 threads: its target is on 2 cores).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITE = ["bench_simulation.py", "bench_model.py", "bench_data.py", "bench_flops.py", "bench_app.py", "bench_scaling.py"]


def main() -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    failures = 0
    for name in SUITE:
        script = HERE / name
        if not script.exists():
            print(f"# {name}: missing")
            failures += 1
            continue
        print(f"# {name}", flush=True)
        start = time.time()
        result = subprocess.run([sys.executable, str(script)],
                                env=env, capture_output=True, text=True)
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        print("\n".join(lines), flush=True)
        if result.returncode != 0:
            failures += 1
            print(f"# {name} FAILED ({result.returncode}):\n{result.stderr[-2000:]}", flush=True)
        print(f"# {name} took {time.time() - start:.0f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
