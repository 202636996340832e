"""On the test suite's PYTHONPATH for script runs: SIGUSR1 prints every thread's Python stack to stderr, so a
run that hangs can be asked where it is without being killed (see tests/helpers.py:run_script)."""

import faulthandler
import signal

faulthandler.register(signal.SIGUSR1, all_threads=True)
