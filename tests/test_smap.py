"""SMEP and SMAP (issue 10, item 2): on on every CPU, the kernel's user accesses bracketed by
stac/clac, a stray access reported as SMAP's and a fetch from a user page as SMEP's, with the
error codes QEMU logs; a kernel without the bracket is caught."""

from __future__ import annotations

import re

import pytest
from helpers import held, mutant_build

from kernel.abi import CONSTANTS
from tools import ktap, qemulog
from tools.hold import boot_held
from tools.qemu import QemuConfig, run

pytestmark = pytest.mark.qemu

PAGE = CONSTANTS["USER_SMAP_PAGE"]
PF = 14
BUG_RE = re.compile(r"^BUG: (SMAP|SMEP) violation: .* user address 0x([0-9a-f]+) \(error 0x([0-9a-f]+)\)",
                    re.M)  # fmt: skip


def test_smap_and_smep_faults_match_qemus_log(kernel_image, tmp_path):
    log = tmp_path / "int.log"
    result = run(QemuConfig(kernel_image, append="selftest=smap_violation,smep_violation",
                            timeout=60, log_int=log))  # fmt: skip
    assert ktap.parse(result.console).passed, result.console
    reported = {kind: (int(addr, 16), int(err, 16))
                for kind, addr, err in BUG_RE.findall(result.console)}  # fmt: skip
    assert reported == {"SMAP": (PAGE + 8, 0x1), "SMEP": (PAGE, 0x11)}, result.console
    # QEMU's own record of each fault: ring 0, the same address and error code.
    faults = [(r.cr2, r.error_code) for r in qemulog.parse_file(log).records
              if r.vector == PF and r.cpl == 0 and r.cr2 is not None and PAGE <= r.cr2 < PAGE + 4096]  # fmt: skip
    assert sorted(faults) == sorted(reported.values())


def test_every_cpu_runs_with_smep_and_smap_on(kernel_image):
    with boot_held(kernel_image, "selftest=arch", 60, smp=2) as h:
        for cpu in (0, 1):
            regs = h.vm.qmp("human-monitor-command", command_line="info registers", cpu_index=cpu)
            cr4 = int(re.search(r"CR4=([0-9a-f]+)", regs)[1], 16)
            assert cr4 & CONSTANTS["CR4_SMEP"] and cr4 & CONSTANTS["CR4_SMAP"], (cpu, hex(cr4))


def test_a_copy_from_user_without_stac_is_caught(tmp_path, build_cache):
    # copy_from_user without its bracket: every user copy is a SMAP violation, reported, and
    # the call fails with EFAULT; the self-test of user copies fails.
    edit = (
        "mm/uaccess.s",
        "    ASM_STAC                                # the user accesses' bracket (SMAP)\n",
        "",
    )
    bad = mutant_build(tmp_path, build_cache, [edit]) / "kernel.elf"
    console, _ = held(bad, "selftest=user_copy_from_user")
    assert "BUG: SMAP violation" in console
    assert not ktap.parse(console).passed
