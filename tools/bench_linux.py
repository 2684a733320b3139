"""`python -m tools.bench_linux` (`make bench-linux`): the entry paths of issue 11 measured on
Linux 6.1 under the same QEMU and flags as our kernel's bench (docs/performance.md).

Debian's `linux-image-cloud-amd64` is resolved to the package it depends on (the real
`linux-image-6.1.*-cloud-amd64`) and fetched with `apt-get download` into build/linux/ (kept:
a second run needs no network); its vmlinuz is taken out with dpkg-deb.  Our /init
(tools/linux_bench/init.c, built with `gcc -static -O2`) is packed alone in a newc initramfs
written here.  QEMU boots it with `-icount shift=0,sleep=off` (one TSC tick per retired
instruction), `-smp 2` and `mitigations=off`; the init prints the guest bench's lines,

    # bench: calibration expected=<int> measured=<int> ok=<0|1>
    # bench: <op> median=<int> min=<int> n=<int> unit=<insns|ticks|insns_per_cb>
    # bench: pages_free start=<int> end=<int>

which parse_bench() reads (tools/bench_format.py: one format for this and our kernel's
`selftest=bench`), and powers off.
The results go to build/linux/bench.json, which `make bench` reads.

Exit status: 0 measured; 1 the boot or its figures failed (calibration refused, a row
missing); 4 a tool is missing (gcc, dpkg-deb, QEMU); 75 the package mirror cannot be reached
(nothing cached), so `make bench` goes on without Linux's column.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kbuild.paths import ROOT
from tools.bench_format import (
    ICOUNT,
    BenchFormatError,
    BenchRow,
    Calibration,
    PagesFree,
    checked_calibration,
    read_lines,
)
from tools.cli import positive_seconds

OUT = ROOT / "build" / "linux"
INIT_SOURCE = ROOT / "tools" / "linux_bench" / "init.c"
META_PACKAGE = "linux-image-cloud-amd64"
IMAGE_PACKAGE_RE = re.compile(r"linux-image-6\.1\.[0-9][^\s,]*-cloud-amd64")
SMP = 2  # the reschedule-IPI row needs a second CPU
# maxcpus=1: Linux 6.1 hangs bringing up CPU 1 at boot under -icount; /init onlines it later
APPEND = "console=ttyS0 mitigations=off quiet panic=-1 rdinit=/init maxcpus=1"
BOOT_TIMEOUT = 300.0  # host seconds: TCG under -icount, on a loaded 2-core machine
APT_OPTIONS: tuple[str, ...] = ()  # extra `-o` options for apt-get (a test points it nowhere)
QUICK_OPS = ("syscall_null", "syscall_getppid", "int80_null")  # what bench=quick measures
RESULTS = "bench.json"
CONSOLE = "console.log"

EXIT_FAILED = 1
EXIT_SETUP = 4
EXIT_NO_NETWORK = 75  # sysexits' EX_TEMPFAIL: try again with network

# The rows Linux's /init measures (the last three are Linux-only detail: getppid beside the
# ENOSYS round trip, the grace period in instructions beside ticks).
LINUX_OPS = (
    "syscall_null", "int80_null", "user_fault_first_touch", "kernel_fault_extable",
    "timer_tick_user", "resched_ipi_roundtrip", "context_switch_pingpong", "sched_yield",
    "synchronize_rcu_latency", "syscall_getppid", "synchronize_rcu_latency_insns",
)  # fmt: skip
# Rows of our bench that Linux's user space cannot drive honestly, and why.
NOT_MEASURABLE = {
    "int3_kernel": "a kernel-mode int3 cannot be raised from user space",
    "idt_floor": "a vector that only does iretq does not exist in Linux",
    "call_rcu_cost": "no user-space call runs call_rcu() alone",
}

INFO_RE = re.compile(r"^# bench-linux: (.*?)\s*$", re.M)


class BenchError(Exception):
    """The bench cannot give figures; the message says why in one line."""

    status = EXIT_FAILED


class ToolMissingError(BenchError):
    status = EXIT_SETUP


class NoNetworkError(BenchError):
    """The package cannot be fetched and nothing is cached."""

    status = EXIT_NO_NETWORK


@dataclass
class BenchRun:
    """What one bench console says: its rows by op, the calibration, the free pages."""

    rows: dict[str, BenchRow] = field(default_factory=dict)
    calibration: Calibration | None = None
    pages_free: PagesFree | None = None
    info: list[str] = field(default_factory=list)


def parse_bench(console: str) -> BenchRun:
    """The `# bench:` lines of a console (tools.bench_format.read_lines) and its
    `# bench-linux:` notes; a row printed twice, a row in an unknown unit or a second
    calibration line is an error, other lines are ignored."""
    try:
        lines = read_lines(console)
    except BenchFormatError as e:
        raise BenchError(str(e)) from None
    run = BenchRun(calibration=lines.calibration, pages_free=lines.pages_free,
                   info=INFO_RE.findall(console.replace("\r\n", "\n")))  # fmt: skip
    for row in lines.rows:
        if row.op in run.rows:
            raise BenchError(f"the bench printed row {row.op} twice")
        run.rows[row.op] = row
    return run


def check_run(run: BenchRun, required: tuple[str, ...] = LINUX_OPS) -> BenchRun:
    """`run` if its calibration held and every required row is there with n > 0; else a
    BenchError that says what is wrong (the figures of a failed calibration are refused)."""
    try:
        checked_calibration(run.calibration)
    except BenchFormatError as e:
        raise BenchError(str(e)) from None
    missing = [op for op in required if op not in run.rows]
    if missing:
        problems = [i for i in run.info if not re.match(r"\w+=|done$", i)]
        why = f" ({'; '.join(problems)})" if problems else ""
        raise BenchError(f"the bench printed no row for {', '.join(missing)}{why}")
    empty = [op for op, row in run.rows.items() if row.n <= 0]
    if empty:
        raise BenchError(f"rows with no samples: {', '.join(empty)}")
    return run


# --- fetching the kernel ----------------------------------------------------------------------


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo"]


def _apt(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*args[:1], *[o for opt in APT_OPTIONS for o in ("-o", opt)], *args[1:]],
                          cwd=cwd, capture_output=True, text=True, timeout=600)  # fmt: skip


def _last_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("E:", "Err:"))]
    return (errors or lines or [f"exit status {proc.returncode}"])[-1]


def resolve_package() -> str:
    """The real package `linux-image-cloud-amd64` depends on (linux-image-6.1.*-cloud-amd64),
    after `apt-get update` when the package lists do not know it."""
    if not shutil.which("apt-get"):
        raise ToolMissingError("apt-get is not installed: the Linux bench needs Debian's packages")
    for attempt in range(2):
        proc = _apt(["apt-cache", "depends", META_PACKAGE])
        m = IMAGE_PACKAGE_RE.search(proc.stdout)
        if m:
            return m[0]
        if attempt == 0:
            update = _apt([*_sudo(), "apt-get", "update", "-qq"])
            if update.returncode != 0:
                raise NoNetworkError(f"apt-get update failed: {_last_error(update)}")
    raise BenchError(f"the package lists have no {META_PACKAGE} depending on a Linux 6.1 image")


def fetch(out: Path) -> Path:
    """The Linux 6.1 cloud image's .deb in `out`: the cached one, else fetched."""
    out.mkdir(parents=True, exist_ok=True)
    cached = sorted(out.glob("linux-image-6.1.*-cloud-amd64_*.deb"))
    if cached:
        return cached[-1]
    package = resolve_package()
    proc = _apt(["apt-get", "download", "-q", package], cwd=out)
    debs = sorted(out.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or not debs:
        for partial in out.glob("*.deb"):
            partial.unlink()
        raise NoNetworkError(f"cannot fetch {package} from the package mirror: {_last_error(proc)}")
    return debs[-1]


def extract_vmlinuz(deb: Path, out: Path) -> Path:
    """boot/vmlinuz-* of the package, written to `out` (kept)."""
    have = sorted(out.glob("vmlinuz-6.1.*"))
    if have:
        return have[-1]
    if not shutil.which("dpkg-deb"):
        raise ToolMissingError("dpkg-deb is not installed (apt-get install dpkg)")
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    found = None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                name = Path(member.name).name
                if member.isfile() and name.startswith("vmlinuz-") and "boot" in member.name:
                    data = tar.extractfile(member)
                    assert data is not None
                    found = out / name
                    tmp = found.with_name(name + ".tmp")
                    tmp.write_bytes(data.read())
                    os.replace(tmp, found)
                    break
    except tarfile.TarError as e:
        raise BenchError(f"{deb.name} is not a Debian package dpkg-deb can read: {e}") from None
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()
    if found is None:
        raise BenchError(f"{deb.name} holds no boot/vmlinuz-*")
    return found


# --- the initramfs ----------------------------------------------------------------------------


def build_init(out: Path, source: Path = INIT_SOURCE) -> Path:
    """`source` compiled with `gcc -static -O2` to out/init."""
    if not shutil.which("gcc"):
        raise ToolMissingError("gcc is not installed (apt-get install gcc libc6-dev)")
    out.mkdir(parents=True, exist_ok=True)
    init = out / "init"
    proc = subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", str(init) + ".tmp",
                           str(source)], capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["gcc failed"]
        first = next((ln for ln in lines if "error" in ln), lines[0])
        raise BenchError(f"building {source.name} failed: {first}")
    os.replace(str(init) + ".tmp", init)
    return init


@dataclass(frozen=True)
class CpioEntry:
    """One member of a newc archive: a directory, a regular file or a character device."""

    name: str
    mode: int  # st_mode: type and permission bits
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)  # major, minor of a device


S_IFDIR, S_IFREG, S_IFCHR = 0o040000, 0o100000, 0o020000
NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def newc(entries: list[CpioEntry]) -> bytes:
    """The entries as an SVR4 "newc" cpio archive with its trailer (what the kernel's
    initramfs unpacker reads): a 110-byte header of 8-digit hex fields, the name with its NUL,
    the data, each padded to 4 bytes."""
    blob = bytearray()
    for ino, e in enumerate([*entries, CpioEntry(TRAILER, 0)], start=1):
        name = e.name.encode() + b"\0"
        nlink = 2 if e.mode & S_IFDIR else 1
        fields = (ino if e.name != TRAILER else 0, e.mode, 0, 0, nlink if e.name != TRAILER else 1,
                  0, len(e.data), 0, 0, e.rdev[0], e.rdev[1], len(name), 0)  # fmt: skip
        header = NEWC_MAGIC + b"".join(b"%08X" % f for f in fields)
        blob += header + name + _pad4(len(header) + len(name)) + e.data + _pad4(len(e.data))
    return bytes(blob)


def read_newc(blob: bytes) -> list[CpioEntry]:
    """The members of a newc archive up to its trailer (a check of newc(), and of any archive)."""
    entries, at = [], 0
    while True:
        if blob[at : at + 6] != NEWC_MAGIC:
            raise BenchError(f"no newc header at offset {at}")
        f = [int(blob[at + 6 + 8 * i : at + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        name_at = at + 110
        name = blob[name_at : name_at + namesize - 1].decode()
        data_at = name_at + namesize + (-(110 + namesize) % 4)
        if name == TRAILER:
            return entries
        entries.append(
            CpioEntry(name, f[1], bytes(blob[data_at : data_at + filesize]), (f[9], f[10]))
        )
        at = data_at + filesize + (-filesize % 4)


def pack_initramfs(init: Path, out: Path) -> Path:
    """out/initramfs.cpio: /init and /dev/console (the kernel opens it for init's stdio)."""
    entries = [
        CpioEntry("dev", S_IFDIR | 0o755),
        CpioEntry("dev/console", S_IFCHR | 0o600, rdev=(5, 1)),
        CpioEntry("init", S_IFREG | 0o755, init.read_bytes()),
    ]
    path = out / "initramfs.cpio"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(newc(entries))
    os.replace(tmp, path)
    return path


# --- the run ----------------------------------------------------------------------------------


def qemu_config(vmlinuz: Path, initrd: Path, timeout: float = BOOT_TIMEOUT, *,
                quick: bool = False, icount: str | None = ICOUNT):  # fmt: skip
    """The QEMU run: our runner's machine flags (tools/qemu.py QemuConfig: machine, CPU model,
    memory) with the bench's -icount and -smp, the initramfs, Linux's rules.  `quick`: the
    init measures the system calls alone (the suite's boot test)."""
    from tools.linux_rules import LINUX_RULES
    from tools.qemu import QemuConfig

    append = APPEND + (" bench=quick" if quick else "")
    return QemuConfig(vmlinuz, append=append, timeout=timeout, smp=SMP, icount=icount,
                      rules=LINUX_RULES, extra_args=("-initrd", str(initrd)))  # fmt: skip


def boot(vmlinuz: Path, initrd: Path, out: Path, timeout: float = BOOT_TIMEOUT, **how) -> str:
    """Boot Linux with the bench's /init; its console (also written to out/console.log).
    `how`: qemu_config()'s quick and icount."""
    from tools.qemu import Outcome, QemuError, run

    try:
        result = run(qemu_config(vmlinuz, initrd, timeout, **how))
    except QemuError as e:
        raise ToolMissingError(str(e)) from None
    (out / CONSOLE).write_text(result.console)
    if result.outcome is not Outcome.PASS:
        raise BenchError(f"the Linux boot ended {result.outcome.value}: {result.reason} "
                         f"(console in {out / CONSOLE})")  # fmt: skip
    return result.console


def qemu_flags() -> dict:
    """The QEMU settings of a bench run, Linux's and ours alike: -icount, -smp, and our runner's
    machine, CPU model and memory (tools/qemu.py QemuConfig)."""
    cfg = qemu_config(Path("vmlinuz"), Path("initramfs.cpio"))
    return {"icount": ICOUNT, "smp": SMP, "machine": cfg.machine, "cpu": cfg.cpu_model,
            "memory": cfg.memory}  # fmt: skip


def results(run: BenchRun, deb: Path, vmlinuz: Path) -> dict:
    """What build/linux/bench.json holds (docs/performance.md describes it)."""
    from tools.qemu import qemu_version

    info = dict(i.split("=", 1) for i in run.info if re.match(r"\w+=", i))
    return {
        "package": deb.name,
        "image": vmlinuz.name,
        "release": info.get("release", "unknown"),
        "version": info.get("version", "unknown"),
        "qemu": qemu_version(),
        "flags": {**qemu_flags(), "append": APPEND},
        "calibration": asdict(run.calibration) if run.calibration else None,
        "pages_free": list(run.pages_free) if run.pages_free else None,
        "rows": {op: asdict(row) for op, row in run.rows.items()},
        "not_measurable": NOT_MEASURABLE,
    }


def load_results(path: Path) -> dict[str, BenchRow]:
    """The rows of a bench.json written by a run; BenchError when it is missing or damaged."""
    try:
        data = json.loads(path.read_text())
        return {op: BenchRow(**row) for op, row in data["rows"].items()}
    except FileNotFoundError:
        raise BenchError(f"{path} does not exist: run `make bench-linux`") from None
    except (ValueError, KeyError, TypeError) as e:
        raise BenchError(
            f"{path} is not a Linux bench result ({e}): run `make bench-linux`"
        ) from None


def write_json(path: Path, data: dict) -> None:
    """`data` as JSON at `path`, written to a temporary name and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def measure(out: Path = OUT, timeout: float = BOOT_TIMEOUT) -> dict:
    """Fetch (or reuse), build, pack, boot and parse; the results, also in out/bench.json."""
    deb = fetch(out)
    vmlinuz = extract_vmlinuz(deb, out)
    initrd = pack_initramfs(build_init(out), out)
    run = check_run(parse_bench(boot(vmlinuz, initrd, out, timeout)))
    data = results(run, deb, vmlinuz)
    write_json(out / RESULTS, data)
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench_linux", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--out", type=Path, default=OUT, help="where the package, image and results go")
    ap.add_argument("--timeout", type=positive_seconds, default=BOOT_TIMEOUT,
                    help="host seconds for the boot")  # fmt: skip
    args = ap.parse_args(argv)
    try:
        data = measure(args.out, args.timeout)
    except BenchError as e:
        print(f"bench-linux: {e}", file=sys.stderr)
        return e.status
    print(f"Linux {data['release']} ({data['package']}), {data['qemu']}, -icount {ICOUNT}")
    for op, row in data["rows"].items():
        print(f"{row['median']:>12,} {row['unit']:<6} (min {row['minimum']:,}, n={row['n']})  {op}")
    for op, why in NOT_MEASURABLE.items():
        print(f"{'n/a':>12}        {op}: {why}")
    print(f"results in {args.out / RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
