"""A throwaway single-node Slurm (Debian's slurm-wlm + munge) in a temporary folder, for recipe tests.

Everything lives under one folder: the munge key and socket, slurm.conf, state, spool and logs. The
daemons listen on loopback ports chosen free at start, so two clusters (or a system Slurm) do not
meet. The one node declares 32 CPUs whatever the machine has (`SlurmdParameters=config_overrides`),
so that job scripts written for real nodes (`--cpus-per-task=8`) run unchanged on a small machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd")
CLIENTS = ("sbatch", "scontrol", "sinfo")
NODE = "ssdeval1"
PARTITION = "ssdevaltest"
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED")


class SlurmUnavailable(Exception):
    """Slurm cannot start here; the message says why."""


def unavailable_reason() -> str | None:
    """Why a single-node Slurm cannot be started on this machine, or None."""
    if os.name != "posix" or os.geteuid() != 0:
        return "slurmd must run as root (it starts jobs as their user); run the test as root"
    missing = [d for d in DAEMONS if not os.access(d, os.X_OK)] + [c for c in CLIENTS if not shutil.which(c)]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _conf(root: Path, ctld_port: int, slurmd_port: int) -> str:
    return f"""\
ClusterName=ssdevaltest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
KillWait=2
MinJobAge=3600
NodeName={NODE} NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1 CPUs=32 RealMemory=4000 State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass(frozen=True)
class SlurmCluster:
    """A running single-node Slurm: its folder and the environment its clients need (SLURM_CONF)."""

    root: Path
    env: dict[str, str]

    def command(self, *args: str, cwd: Path | None = None, timeout: float = 30) -> str:
        """Run a Slurm client (or any command) against this cluster; its stdout."""
        done = subprocess.run(
            args, env=self.env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def job(self, job: str) -> dict[str, str]:
        """`scontrol show job` as a dict (the first record: an array task or a plain job)."""
        text = self.command("scontrol", "show", "job", "--oneliner", job).splitlines()[0]
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def wait_done(self, job: str, *, timeout: float) -> dict[str, str]:
        """Wait until `job` has ended; its record (JobState, ExitCode ...)."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.job(job)
            if record["JobState"] in (
                "COMPLETED",
                "FAILED",
                "CANCELLED",
                "TIMEOUT",
                "NODE_FAIL",
                "OUT_OF_MEMORY",
            ):
                return record
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job} still {record['JobState']} ({record.get('Reason')}) after {timeout} s"
                )
            time.sleep(0.2)

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.root / "log" / name
            if path.is_file():
                out.append(
                    f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                )
        return "\n".join(out)


def _wait_idle(cluster: SlurmCluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            last = cluster.command("sinfo", "--noheader", "--format=%t", timeout=10).strip()
            if last in ("idle", "mix", "alloc"):
                return
        time.sleep(0.3)
    raise SlurmUnavailable(
        f"the Slurm node did not come up (state {last or 'unknown'!r}):\n{cluster.log_tail()}"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(root: Path, env: dict[str, str]) -> None:
    """Stop this cluster's jobs and daemons (only them: by the pid files its daemons wrote)."""
    pids: dict[str, int] = {}
    for name, pid_file in (
        ("slurmd", "slurmd.pid"),
        ("slurmctld", "slurmctld.pid"),
        ("munged", "munge/munged.pid"),
    ):
        with contextlib.suppress(OSError, ValueError):
            pids[name] = int((root / pid_file).read_text().strip())
    for argv in (["scancel", "--full", f"--partition={PARTITION}"], ["scontrol", "shutdown"]):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(argv, env=env, capture_output=True, timeout=15, check=False)
    if "munged" in pids:  # `scontrol shutdown` stops the Slurm daemons, not munged
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids["munged"], signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids.values():
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def single_node_slurm(root: Path, *, timeout: float = 30) -> Iterator[SlurmCluster]:
    """Start munged, slurmctld and slurmd under `root`; stop them on exit. SlurmUnavailable if it cannot."""
    why = unavailable_reason()
    if why is not None:
        raise SlurmUnavailable(why)
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "munge", 0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o600)
    conf = root / "slurm.conf"
    conf.write_text(_conf(root, _free_port(), _free_port()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    env.pop("SLURM_JOB_ID", None)  # a test run inside a Slurm job must not talk to that job's cluster
    cluster = SlurmCluster(root, env)
    try:
        started = [
            [
                DAEMONS[0],
                "--force",
                f"--socket={root}/munge/socket",
                f"--key-file={key}",
                f"--pid-file={root}/munge/munged.pid",
                f"--seed-file={root}/munge/seed",
                f"--log-file={root}/log/munged.log",
            ],
            [DAEMONS[1], "-f", str(conf)],
            [DAEMONS[2], "-f", str(conf), "-N", NODE],
        ]
        for argv in started:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
            if done.returncode != 0:
                raise SlurmUnavailable(
                    f"{Path(argv[0]).name} did not start (exit {done.returncode}): "
                    f"{done.stderr.strip()}\n{cluster.log_tail()}"
                )
        _wait_idle(cluster, timeout)
        yield cluster
    finally:
        _stop(root, env)
