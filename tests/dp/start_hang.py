#!/usr/bin/env python3
"""A rank that hangs before the first collective (found by benchmarks/chaos.py: a SIGSTOP during
start-up left its peer in MPI_Init forever, where no collective watchdog runs yet): the others
give up after --comm-timeout with exit 70 (docs/ARCHITECTURE.md, Signals and exit codes), which
ruche-run restarts.

usage: start_hang.py RUCHE_BINARY MPIEXEC WORKDIR
"""
import os
import signal
import subprocess
import time

from dp_common import ENV, MPI_FLAGS, MPIEXEC, RUCHE, WORK, check, finish, write_data, write_net

data = str(write_data(WORK / "data.npz", 200, 20))
net = str(write_net("net.prototxt"))
# Rank 1 stops itself before it execs ruche: it never reaches MPI_Init.
cmd = [MPIEXEC, *MPI_FLAGS, "-np", "2", "sh", "-c",
       'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then kill -STOP $$; fi; exec "$@"', "sh",
       RUCHE, "train", "--out", str(WORK / "run"), "--data", data, "--net", net,
       "--max-steps", "5", "--comm-timeout", "3"]
start = time.monotonic()
p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                     start_new_session=True)
try:
    out, err = p.communicate(timeout=90)
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    out, err = p.communicate()
seconds = time.monotonic() - start
check(p.returncode == 70 and "did not all start in 3 s" in err,
      f"a rank stopped before MPI_Init: its peer gives up with exit {p.returncode} (70) after "
      f"{seconds:.1f} s")
if p.returncode != 70:
    print(out[-2000:], err[-2000:])
finish()
