# W^X of the kernel's own mapping, from the inside: a write to .text and a write to .rodata
# fault as protection violations on a write, and a call into .data faults as a protection
# violation on an instruction fetch.  Each resumes through the exception table and checks the
# vector, error code, RIP and CR2 the handler recorded (trap_check); the host compares them
# with QEMU's -d int log (tests/test_wx.py).
.include "layout.inc"
.include "selftest.inc"
.include "extable.inc"

.section .text
# selftest_wx_write_text - store into this function's own first bytes the value they already
# hold (were the store to succeed, nothing would change).  Returns RAX = 0 or the reason.
selftest_wx_write_text:
    call trap_expect
    mov rdi, rax
    lea rax, [rip + selftest_wx_write_text]
    mov rdx, qword ptr [rax]
.Lwx_text:
    mov qword ptr [rax], rdx
.Lwx_text_fixup:
    _ASM_EXTABLE .Lwx_text, .Lwx_text_fixup
    mov esi, X86_TRAP_PAGE_FAULT
    mov edx, PF_PROT | PF_WRITE             # present, write, supervisor
    lea rcx, [rip + .Lwx_text]
    lea r8, [rip + selftest_wx_write_text]
    jmp trap_check

# selftest_wx_write_rodata - the same store into a constant in .rodata.  Returns RAX = 0 or
# the reason.
selftest_wx_write_rodata:
    call trap_expect
    mov rdi, rax
    lea rax, [rip + wx_rodata_target]
    mov rdx, qword ptr [rax]
.Lwx_rodata:
    mov qword ptr [rax], rdx
.Lwx_rodata_fixup:
    _ASM_EXTABLE .Lwx_rodata, .Lwx_rodata_fixup
    mov esi, X86_TRAP_PAGE_FAULT
    mov edx, PF_PROT | PF_WRITE
    lea rcx, [rip + .Lwx_rodata]
    lea r8, [rip + wx_rodata_target]
    jmp trap_check

# selftest_wx_exec_data - call a `ret` that lies in .data.  The fetch faults at the target
# itself (RIP = CR2 = the target, which is the exception table's key); the fixup drops the
# return address the call pushed.  Were the page executable, the ret would come back to the
# instruction after the call, and trap_check would find no fault.  Returns RAX = 0 or the
# reason.
selftest_wx_exec_data:
    call trap_expect
    mov rdi, rax
    lea rax, [rip + wx_data_target]
    call rax
    jmp .Lwx_exec_check
.Lwx_exec_fixup:
    _ASM_EXTABLE wx_data_target, .Lwx_exec_fixup
    add rsp, 8                              # the return address of the call
.Lwx_exec_check:
    mov esi, X86_TRAP_PAGE_FAULT
    mov edx, PF_PROT | PF_INSTR             # present, instruction fetch, supervisor
    lea rcx, [rip + wx_data_target]
    mov r8, rcx
    jmp trap_check

SELFTEST mm, wx_write_text, selftest_wx_write_text
SELFTEST mm, wx_write_rodata, selftest_wx_write_rodata
SELFTEST mm, wx_exec_data, selftest_wx_exec_data

.section .rodata
.balign 8
wx_rodata_target:
    .quad 0x5752495445524f00                # any value: the test writes it back unchanged

.section .data
wx_data_target:
    .byte 0xc3                              # ret
