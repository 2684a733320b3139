"""The `syscall` entry (issue 10, item 1): entry_SYSCALL_64 and do_syscall_64, sysretq under
Linux's conditions and iretq otherwise, int 0x80 kept as the compat entry; the kernel's own
self-tests and the host's judge over the event log, each shown failing on a broken kernel."""

from __future__ import annotations

import pytest
from helpers import held, mutant_build

from tools import ktap
from tools.events.judge import host_table_violations, syscall_violations

pytestmark = pytest.mark.qemu

SYSCALL_TESTS = "entry_user_syscall,syscall_sysret_conditions,syscall_iret_when_unfit"
# do_syscall_64's call of the syscall dispatcher and its sysretq verdict, in kernel/entry/common.s.
DISPATCH = "    mov rdi, rbx\n    call do_int80_syscall\n"
VERDICT = "    mov rdi, rbx\n    call syscall_sysret_ok\n"


def failed(console: str) -> set[str]:
    return {c.name for c in ktap.parse(console).cases if not c.ok}


def test_the_syscall_selftests_pass_and_the_judge_agrees(kernel_image):
    console, state = held(kernel_image, f"selftest={SYSCALL_TESTS}")
    assert ktap.parse(console).passed, console
    assert any(e.kind == "syscall_enter" for e in state.events)
    assert syscall_violations(state.events) == []
    assert host_table_violations(state) == []
    # Both ways out were taken: sysretq for plain calls, iretq for the bent frames.
    assert state.percpu["sysret_returns"] > 0 and state.percpu["syscall_iret_returns"] >= 4


@pytest.mark.parametrize(
    "name, edit, fails",
    [
        # Every return by sysretq, whatever the frame: the condition check and the bent frames'
        # programs fail (sysretq jumps to RCX = 0, loses the single step...).
        ("always_sysret", (VERDICT, "    mov eax, 1\n"),
         {"syscall_iret_when_unfit"}),
        # Never sysretq: the plain call's return is not the fast one.
        ("never_sysret", (VERDICT, "    xor eax, eax\n"), {"entry_user_syscall"}),
    ],
)  # fmt: skip
def test_the_syscall_selftests_catch_a_wrong_return(tmp_path, build_cache, name, edit, fails):
    old, new = edit
    bad = mutant_build(tmp_path, build_cache, [("entry/common.s", old, new)]) / "kernel.elf"
    console, _ = held(bad, f"selftest={SYSCALL_TESTS}")
    assert fails <= failed(console), console


def test_the_judge_catches_a_syscall_that_skips_context_tracking(tmp_path, build_cache):
    # do_syscall_64 without enter_from_user_mode: RCU stays in the user EQS during the call.
    old = "    call event_log\n    call enter_from_user_mode\n    INSTRUMENTATION_BEGIN\n    mov rdi, rbx\n    call do_int80_syscall\n"
    new = "    call event_log\n    INSTRUMENTATION_BEGIN\n    mov rdi, rbx\n    call do_int80_syscall\n"
    bad = mutant_build(tmp_path, build_cache, [("entry/common.s", old, new)]) / "kernel.elf"
    console, state = held(bad, "selftest=entry_user_syscall")
    found = syscall_violations(state.events)
    assert any("enter_from_user_mode missing" in v for v in found), found
    assert "entry_user_syscall" in failed(console)


def test_bad_system_calls_fail_cleanly_and_are_counted(kernel_image):
    # Numbers out of range through `syscall` and int 0x80 (ENOSYS, counted), a write from the
    # kernel half (EFAULT): the program checks each result and exits 0, and nothing oopses.
    console, state = held(kernel_image, "selftest=user_bad_syscalls")
    assert ktap.parse(console).passed, console
    assert state.percpu["syscalls_enosys"] == 2
    assert "BUG:" not in console and "OOPS" not in console
