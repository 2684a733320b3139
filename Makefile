# The commands a person types: setup, build, watch, serve, run, iso, check, test, test-fast, test-quick, debug, bench, clean.  Everything installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APPEND ?=
TIMEOUT ?= 60
# CPUs of `make run` (QEMU -smp)
SMP ?= 2
# How `make run` boots: multiboot (QEMU's loader, build/kernel.elf), grub (an ISO; docs/boot.md)
# or uefi (OVMF, build/BOOTX64.EFI; docs/uefi.md)
BOOT ?= multiboot
# Python keeps our modules' bytecode in __pycache__/ (ignored by git), as it does by default,
# also where the environment says not to (PYTHONDONTWRITEBYTECODE, set by some container
# images): otherwise every process these commands start compiles each module it imports again,
# about 40 ms for a build and more for each test process and tool the suite starts.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: setup build watch serve run iso events check test test-fast test-quick durations debug bench bench-linux mutants clean qemu grub trace cc

setup: $(STAMP) qemu grub cc

# The checkout is installed as a path in site-packages (editable_mode=compat), not through
# setuptools' import finder, which every Python process loaded at start (about 20 ms each).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

# QEMU and OVMF, binutils (GNU as and ld: the oracle and the runner's fixture guests) and GDB
# (make debug, tests/test_debug.py), from Debian's packages, when missing.
qemu:
	@command -v qemu-system-x86_64 >/dev/null && [ -e /usr/share/OVMF/OVMF_CODE.fd ] && \
	  command -v as >/dev/null && command -v ld >/dev/null && command -v readelf >/dev/null && \
	  command -v gdb >/dev/null || { \
	  echo "installing qemu-system-x86, ovmf, binutils and gdb"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq qemu-system-x86 ovmf binutils gdb >/dev/null; }

# GRUB (BIOS) and what grub-mkrescue needs, from Debian's packages, when missing: the ISO of
# `make iso` and `tools.boot --boot grub`.
grub:
	@command -v grub-mkrescue >/dev/null && command -v grub-file >/dev/null && \
	  [ -e /usr/lib/grub/i386-pc/multiboot2.mod ] && command -v xorriso >/dev/null && \
	  command -v mformat >/dev/null || { \
	  echo "installing grub-pc-bin, grub-common, xorriso and mtools"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq grub-pc-bin grub-common xorriso mtools >/dev/null; }

# gcc and a static libc (the Linux bench's /init, tools/linux_bench/init.c) and cpio (the test
# that reads its initramfs back), from Debian's packages, when missing.
cc:
	@command -v gcc >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/libc.a ] && command -v cpio >/dev/null || { \
	  echo "installing gcc, libc6-dev and cpio"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq gcc libc6-dev cpio >/dev/null; }

build: $(STAMP)
	$(PY) build.py

# Build, then build again on every change to kernel/, each build prepared while you edit
# (kbuild/warm.py); THEN: a command run after each build that succeeds, e.g.
# make watch THEN=".venv/bin/python -m tools.boot build/kernel.elf --append selftest=entry".
# Ctrl-C stops.
THEN ?=
watch: $(STAMP)
	$(PY) build.py --watch $(if $(THEN),--then '$(THEN)')

# Serve builds: every `python build.py` (make build, make run, an editor's build command) then
# builds in this warm process instead of its own (kbuild/server.py).  Ctrl-C stops.
serve: $(STAMP)
	$(PY) build.py --serve

run: setup build
	$(PY) -m tools.boot build/kernel.elf --boot $(BOOT) --timeout $(TIMEOUT) --smp $(SMP) $(if $(APPEND),--append "$(APPEND)")

# build/condrcu.iso: GRUB boots the kernel through Multiboot2 with APPEND (qemu-system-x86_64
# -cdrom build/condrcu.iso boots it).
iso: setup build
	$(PY) -m tools.grub build/kernel.elf -o build/condrcu.iso $(if $(APPEND),--append "$(APPEND)")

# The event log of a run, decoded on the host: make events APPEND="selftest=user_demand_fault"
# KIND="idtentry_* rcu_*"
KIND ?=
events: setup build
	$(PY) -m tools.eventlog build/kernel.elf --timeout $(TIMEOUT) $(if $(APPEND),--append "$(APPEND)") $(if $(KIND),--kind $(foreach k,$(KIND),'$(k)'))

# The event log of a run as a Perfetto / Chrome trace and a timeline picture (docs/trace.md):
# build/trace.json, build/timeline.png
trace: setup build
	$(PY) -m tools.trace build/kernel.elf --smp $(SMP) -o build/trace.json --png build/timeline.png $(if $(APPEND),--append "$(APPEND)")

# The whole suite on every core (pytest-xdist); any skip fails it.  PYTEST_ARGS: more options
# (.ci/shard passes pytest-split's).  TEST_JOBS: its workers, one per core and one more: the
# tests wait as well as compute (guests on the host's clock, timeouts, QMP round trips), and a
# third worker on two cores fills those waits (234-253 s in three runs against 243-267 s in six
# with two; run back to back, 242 against 267 s).
# test-fast: the unit tests that need neither QEMU nor binutils.
PYTEST_ARGS ?=
TEST_JOBS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: setup
	CONDRCU_NO_SKIPS=1 $(PY) -m pytest -q -n $(TEST_JOBS) $(PYTEST_ARGS)

test-fast: setup
	CONDRCU_NO_SKIPS=1 $(PY) -m pytest -q -n auto -m "not qemu and not gnu_as" $(PYTEST_ARGS)

# test-quick: test-fast without the tests marked slow (1 s or more each by .test_durations).
test-quick: setup
	CONDRCU_NO_SKIPS=1 $(PY) -m pytest -q -n auto -m "not qemu and not gnu_as and not slow" $(PYTEST_ARGS)

# .test_durations, by which .ci/shard splits the suite: each test's time, a worker per core.
durations: setup
	$(PY) -m pytest -q -n auto --store-durations --clean-durations

# The kernel as it stands, built and judged in seconds: every self-test under each entry policy,
# the suites that run only when named and RCU torture on two CPUs, each boot judged by its
# KTAP verdict and the host's judges, a boot per core at once (tools/check.py).
check: setup
	$(PY) -m tools.check

# Build and boot times, then the entry paths (our kernel, event log off and on) beside Linux
# 6.1's (build/linux/bench.json, measured by bench-linux when missing): build/bench.json and
# build/bench.png (docs/performance.md).
bench: setup build
	$(PY) -m tools.bench

# The entry paths on Debian's Linux 6.1 cloud kernel under the same QEMU (fetched once with
# apt-get download into build/linux/; exit 75 when the package mirror cannot be reached).
bench-linux: setup
	$(PY) -m tools.bench_linux

# Mutation testing of the entry path (docs/mutants.md): every mutant built, booted through the
# self-tests and the host's judges; the survivors listed.  CPU-heavy: niced, one mutant at a
# time unless MUTANTS_ARGS says --jobs N.  MUTANTS_ARGS: --filter, --list, --json OUT...
MUTANTS_ARGS ?=
mutants: setup
	nice -n 10 $(PY) -m tools.mutants $(MUTANTS_ARGS)

# Boot stopped before the first instruction with QEMU's GDB stub on a free port (1234 when
# free), and build/debug.gdb to attach with: gdb -x build/debug.gdb (docs/debugging.md).
# REPLAY=DIR: debug the boot recorded in DIR (tools.boot --record; docs/replay.md) instead.
REPLAY ?=
debug: setup build
	$(PY) -m tools.debug build/kernel.elf $(if $(REPLAY),--replay $(REPLAY),--smp $(SMP) $(if $(APPEND),--append "$(APPEND)"))

clean:
	rm -rf build
