"""Host probe: CPU, memory, swap, disks, inodes, load and processes of the machine
vigild runs on.

psutil's calls block (``statvfs`` on a dead NFS mount can hang), so they all
run together in one worker thread, bounded by the target's timeout; and the
filesystems watched by default are local ones only (``real_mounts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import Literal

import psutil
from pydantic import Field, field_validator

from vigild.config import TargetConfig, ThresholdSpec
from vigild.fields import Name
from vigild.model import Observation
from vigild.plugins import Options
from vigild.probes.base import Probe, ProbeContext

__all__ = ["HostProbe"]

_NO_DISK = frozenset({"disk_percent"})
_PER_MOUNT = ("disk_percent", "inode_percent")
_NO_SWAP = frozenset({"swap_percent"})
_NO_LOAD = frozenset({"load1"})
_MISSING_WHY = {
    "disk_percent": "none of the watched mounts could be read",
    "load1": "this system has no load average",
}
_GONE = frozenset({psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD})
_STILL_READING = "the previous reading has not finished (a mount that does not answer?)"

CPU_MIN_WINDOW = 0.25
"""Shortest span CPU use is measured over: the kernel counts in 10 ms ticks, so a
window of a few ms reads as 0 or 100 %. Only a first probe right after start
(``--once``) waits for it, and never for more than half the probe's timeout."""


PSEUDO_FS_TYPES = frozenset(
    {
        # node_exporter's default --collector.filesystem.fs-types-exclude (Linux) ...
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs",
        "devpts", "devtmpfs", "erofs", "fusectl", "hugetlbfs", "iso9660", "mqueue",
        "nsfs", "overlay", "proc", "procfs", "pstore", "rpc_pipefs", "securityfs",
        "selinuxfs", "squashfs", "sysfs", "tracefs",
        # ... and memory, which is no disk to fill.
        "tmpfs", "ramfs",
    }
)  # fmt: skip
"""Filesystem types never watched by default. Most never reach the list:
``disk_partitions(all=False)`` keeps only types backed by a device (and zfs),
which leaves out every ``nodev`` type of /proc/filesystems, network ones (nfs,
cifs, fuse) included, so a dead NFS server cannot hang the default probe."""

_PSEUDO_MOUNTS = re.compile(
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
"""node_exporter's default ``--collector.filesystem.mount-points-exclude``: a
container's own layers and the kernel's trees are not disks a person fills."""

MAX_MOUNTS = 50
"""The most filesystems one host target watches by default (the first, in path
order): a host with hundreds of mounts would otherwise cost hundreds of
``statvfs`` calls and alerts per cycle."""


def real_mounts() -> tuple[str, ...]:
    """The mount points of every real local filesystem, one per device, sorted.

    A device mounted at several places (bind mounts, btrfs subvolumes of one
    pool) shows the same use at each: only its shortest mount point is watched,
    so a full disk is one alert. A mount point that is not a directory is a
    file bind-mounted into a container (``/etc/hosts``), not a filesystem.
    """
    by_device: dict[str, str] = {}
    for part in psutil.disk_partitions(all=False):
        mount = part.mountpoint
        if part.fstype in PSEUDO_FS_TYPES or _PSEUDO_MOUNTS.match(mount):
            continue
        if not os.path.isdir(mount):
            continue
        known = by_device.get(part.device)
        if known is None or len(mount) < len(known):
            by_device[part.device] = mount
    return tuple(sorted(by_device.values())[:MAX_MOUNTS])


class ProcessCheck(Options):
    """``processes = [{ name = "postgres", min = 1 }]``: at least ``min`` running."""

    name: Name
    min: int = Field(default=1, ge=1)

    @property
    def metric(self) -> str:
        return f"processes:{self.name}"


class HostTarget(TargetConfig):
    """The host vigild runs on: CPU, memory, swap, disks, inodes, load and processes."""

    REPORTED = frozenset(
        {
            "up",
            "cpu_percent",
            "memory_percent",
            "swap_percent",
            "disk_percent",
            "inode_percent",
            "load1",
            "processes",
        }
    )

    type: Literal["host"] = "host"
    disks: list[str] | None = None
    """Mount points to watch; unset: every real local filesystem (``real_mounts``)."""
    processes: list[ProcessCheck] = []

    @field_validator("processes")
    @classmethod
    def _distinct(cls, value: list[ProcessCheck]) -> list[ProcessCheck]:
        names = [check.name for check in value]
        if len(set(names)) != len(names):
            raise ValueError("each process name may be listed once")
        return value

    def implied_thresholds(
        self, defaults: Mapping[str, ThresholdSpec]
    ) -> Iterable[tuple[tuple[str | int, ...], str, ThresholdSpec]]:
        """One per process check, keyed by its qualified metric: fewer than ``min``
        running is critical. ``thresholds.processes`` may add ``for`` and a runbook."""
        timing = self.thresholds.get("processes", defaults.get("processes", ThresholdSpec()))
        for i, check in enumerate(self.processes):
            spec = timing.model_copy(
                update={"critical": check.min, "warning": None, "direction": "below"}
            )
            yield ("processes", i), check.metric, spec

    def watched_mounts(self) -> tuple[str, ...]:
        """The mount points a probe reads now: ``disks``, or what ``real_mounts`` finds."""
        return real_mounts() if self.disks is None else tuple(self.disks)

    def notes(self) -> tuple[tuple[str, str], ...]:
        """The filesystems watched, as found now on this host."""
        how = "every real filesystem" if self.disks is None else "from disks"
        return (("disks", f"{self.name}: {', '.join(self.watched_mounts()) or 'none'} ({how})"),)


class HostProbe(Probe):
    """Reports ``cpu_percent``, ``memory_percent``, ``swap_percent``, ``load1``,
    ``disk_percent:<mount>`` and ``inode_percent:<mount>`` per mount and
    ``processes:<name>`` per process check.

    Memory and swap use are as ``free`` shows them: memory counts what the
    kernel could not hand out (total - available), so page cache is not "used".
    A host without swap has no ``swap_percent`` (``no_data``: not a fault).
    ``load1`` is the 1-minute load average per logical CPU, so one threshold
    fits hosts of any size.

    The mounts are ``disks``, or, without it, every real local filesystem as
    found at each probe (a disk plugged in later is watched from then on).
    Both percentages are as ``df`` and ``df -i`` show them; a filesystem without
    an inode table (btrfs, vfat report none) has no ``inode_percent``.
    A mount that cannot be read (missing, no permission) is left out, and the
    host stays up: one bad path in ``disks`` must not hide the others.
    ``missing`` holds ``disk_percent`` only when no mount could be read,
    because thresholds look ``missing`` up by base name: naming a qualified
    ``disk_percent:/nope`` there would never reach a verdict.

    ``processes:<name>`` counts the running processes whose psutil name is
    ``name``: the kernel's (``comm``), or argv[0]'s base name where the kernel
    cut that at 15 characters. Zombies have exited and do not count.
    """

    Options = HostTarget
    target: HostTarget

    def __init__(
        self, target: HostTarget, timeout: float, _context: ProbeContext | None = None
    ) -> None:
        super().__init__(target, timeout)
        self._processes = {check.name: check.metric for check in target.processes}
        self._cpus = os.cpu_count() or 1
        self._timeout_error = f"timeout after {timeout:g}s"
        self._reading: asyncio.Future[tuple[dict[str, float], bool]] | None = None
        self._seen: set[str] = set()
        """Mount points read since start: one read before and not now has no data, so
        an alert on a disk that was unmounted resolves instead of staying open."""
        # CPU use is a rate between two samples: take the first now, so the
        # first cycle already reports a real value.
        self._cpu_times = psutil.cpu_times()
        self._cpu_sampled = time.monotonic()
        self._cpu_window = min(CPU_MIN_WINDOW, timeout / 2)

    async def probe(self, now: float) -> tuple[Observation]:
        name = self.target.name
        if self._reading is not None and not self._reading.done():
            # A thread still stuck in a read (a mount that stopped answering) is not
            # joined by another each cycle: they would fill the shared thread pool.
            return (Observation(name, now, False, _STILL_READING),)
        self._reading = asyncio.ensure_future(asyncio.to_thread(self._read))
        try:
            metrics, no_disk = await asyncio.wait_for(asyncio.shield(self._reading), self.timeout)
        except TimeoutError:
            # The thread cannot be stopped; it finishes on its own, its result unused.
            return (Observation(name, now, False, self._timeout_error),)
        missing = _NO_DISK if no_disk else frozenset()
        if "load1" not in metrics:
            missing |= _NO_LOAD
        no_data = _NO_SWAP if "swap_percent" not in metrics else frozenset()
        why = {metric: _MISSING_WHY[metric] for metric in missing}
        read = {m.partition(":")[2] for m in metrics if m.startswith("disk_percent:")}
        self._seen |= read
        if gone := self._seen - read:
            lost = {f"{base}:{mount}" for mount in gone for base in _PER_MOUNT}
            no_data |= lost
            why.update(dict.fromkeys(lost, "no longer mounted or readable"))
        return (
            Observation(
                name, now, True, None, metrics, missing=missing, no_data=no_data, reasons=why
            ),
        )

    def _read(self) -> tuple[dict[str, float], bool]:
        """The readings, and whether there were mounts to read but none could be."""
        # psutil's memory ``percent`` is (total - available) / total, which is ``free``'s
        # view; its ``used`` field subtracts buffers and cache and would read lower.
        metrics = {
            "cpu_percent": self._cpu_percent(),
            "memory_percent": psutil.virtual_memory().percent,
        }
        swap = psutil.swap_memory()
        if swap.total > 0:
            metrics["swap_percent"] = swap.percent
        # No /proc/loadavg is a reading vigild cannot give, not a fault of the host.
        with contextlib.suppress(OSError):
            metrics["load1"] = os.getloadavg()[0] / self._cpus
        mounts = self.target.watched_mounts()
        for mount in mounts:
            try:
                fs = os.statvfs(mount)
            except OSError:
                continue
            metrics[f"disk_percent:{mount}"] = _disk_percent(fs)
            if fs.f_files > 0:
                metrics[f"inode_percent:{mount}"] = _percent(fs.f_files - fs.f_ffree, fs.f_files)
        no_disk = bool(mounts) and not any(f"disk_percent:{m}" in metrics for m in mounts)
        if self._processes:
            metrics.update(self._count_processes())
        return metrics, no_disk

    def _count_processes(self) -> dict[str, float]:
        counts = dict.fromkeys(self._processes.values(), 0.0)
        # One pass over /proc: name and status both come from /proc/<pid>/stat, read once.
        for process in psutil.process_iter(attrs=["name", "status"]):
            metric = self._processes.get(process.info["name"])
            if metric is not None and process.info["status"] not in _GONE:
                counts[metric] += 1
        return counts

    def _cpu_percent(self) -> float:
        """``psutil.cpu_percent(interval=None)``'s number, since this probe's last sample.

        psutil keeps its "last call" per thread, and ``to_thread`` gives no
        stable thread: its own function would compare against whatever sample
        that pool thread took last, or none (0.0). So this probe keeps its own
        sample and computes the same figure as psutil does.
        """
        wait = self._cpu_sampled + self._cpu_window - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # in the probe's worker thread, never on the event loop
        before, after = self._cpu_times, psutil.cpu_times()
        self._cpu_times, self._cpu_sampled = after, time.monotonic()
        deltas: dict[str, float] = {
            f: max(0.0, getattr(after, f) - getattr(before, f)) for f in after._fields
        }
        # Linux counts guest time inside user/nice, and iowait apart from idle.
        total = sum(deltas.values()) - deltas.get("guest", 0.0) - deltas.get("guest_nice", 0.0)
        idle = deltas["idle"] + deltas.get("iowait", 0.0)
        if total <= 0:
            return 0.0
        return round(min(100.0, max(0.0, (total - idle) / total * 100)), 1)


def _disk_percent(fs: os.statvfs_result) -> float:
    """``psutil.disk_usage``'s percent, from the one ``statvfs`` both metrics share:
    used over what an unprivileged user could use (the root reserve left out), as df."""
    used = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
    return _percent(used, used + fs.f_bavail * fs.f_frsize)


def _percent(part: float, whole: float) -> float:
    return round(part / whole * 100, 1) if whole > 0 else 0.0
