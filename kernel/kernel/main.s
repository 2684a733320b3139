# kernel_main: what the kernel does once the machine is set up.
.include "layout.inc"

.section .text
# kernel_main - console up, banner, then `crash=` (harness aids), `selftest=` (KTAP), or the
# demonstration.  Called once from start64; ends the VM and does not return.
.global kernel_main
kernel_main:
    call syscall_init                   # the boot CPU's; each AP's in ap_main
    push rbx
    call cpu_features_init              # SMEP, SMAP
    pop rbx
    call serial_init
    lea rdi, [rip + .Lbanner]
    call printk
    call cmdline_show

    call cmdline_parse                  # every option checked before anything runs
    call policy_setup                   # entry_policy=
    call timer_setup                    # hz=: the tick starts
    call smp_boot                       # the APs, after the timer's calibration they use
    lea rdi, [rip + .Lcrash_key]
    call cmdline_get
    test rax, rax
    jz .Lno_crash
    mov rdi, rax
    mov rsi, rdx
    call crash_on_purpose               # does not return
.Lno_crash:
    lea rdi, [rip + .Lselftest_key]
    call cmdline_get
    test rax, rax
    jz .Ldemo
    mov rdi, rax
    mov rsi, rdx
    call selftest_main                  # EAX = exit code
    mov edi, eax
    jmp finish
.Ldemo:
    call demo_main
    mov edi, eax
    jmp finish

# finish - EDI = exit code.  With `events=N`, print the last N event-log records first.  End
# the VM with the code; with `hold` on the command line, print "HOLD <code>" and halt instead,
# so that the host can read guest memory through QMP (and inject NMIs) before it ends the VM
# itself.  Does not return.
finish:
    push rdi
    lea rdi, [rip + .Levents_key]
    xor esi, esi                        # absent: print nothing
    call cmdline_number
    test rax, rax
    jz .Lno_events
    mov rdi, rax
    call print_last_events
.Lno_events:
    lea rdi, [rip + .Lhold_key]
    call cmdline_get
    pop rdi
    test rax, rax
    jz qemu_exit
    mov rsi, rdi
    lea rdi, [rip + hold_fmt]           # generated from kernel/abi.py HOLD_FORMAT
    call printk
.Lhold:
    hlt
    jmp .Lhold

# timer_setup - start the tick at hz= (HZ_DEFAULT when absent; its range was checked by
# cmdline_parse) and say so.  Clobbers caller-saved registers.
timer_setup:
    lea rdi, [rip + .Lhz_key]
    mov esi, HZ_DEFAULT
    call cmdline_number
    mov qword ptr [rip + tick_hz], rax
    mov rdi, rax
    call apic_timer_start
    lea rdi, [rip + .Lhz_fmt]
    mov rsi, qword ptr [rip + tick_hz]
    mov rdx, qword ptr [rip + apic_timer_period]
    jmp printk

# policy_setup - entry_policy=v6 (the seed's rule, the default) or v58 (Linux v5.8's
# is_idle_task() rule), as policy_check accepted it at boot.
policy_setup:
    lea rdi, [rip + .Lpolicy_key]
    call cmdline_get
    test rax, rax
    jz .Lpolicy_done
    mov rdi, rax
    mov rsi, rdx
    lea rdx, [rip + .Lpolicy_v58]
    call word_is
    jnz .Lpolicy_done
    mov qword ptr gs:[PCPU_ENTRY_POLICY], 1
.Lpolicy_done:
    lea rdi, [rip + .Lpolicy_fmt]
    lea rsi, [rip + .Lpolicy_v6]
    cmp qword ptr gs:[PCPU_ENTRY_POLICY], 0
    je .Lpolicy_print
    lea rsi, [rip + .Lpolicy_v58]
.Lpolicy_print:
    jmp printk

# policy_check - the check of entry_policy= (see `options` in kernel/lib/cmdline.s): RDI/RSI
# = the value, RDX = the option's entry.  EAX = 0 for v6 or v58; else prints the choices and
# EAX = 1.  Clobbers caller-saved registers.
.global policy_check
policy_check:
    push rbx
    push r12
    mov rbx, rdi
    mov r12, rsi
    lea rdx, [rip + .Lpolicy_v6]
    call word_is
    jz .Lpolicy_ok
    mov rdi, rbx
    mov rsi, r12
    lea rdx, [rip + .Lpolicy_v58]
    call word_is
    jz .Lpolicy_ok
    lea rdi, [rip + .Lpolicy_bad_fmt]
    call printk
    mov eax, 1
    jmp .Lpolicy_check_end
.Lpolicy_ok:
    xor eax, eax
.Lpolicy_check_end:
    pop r12
    pop rbx
    ret

# crash_lookup - RDI/RSI = a value of crash= and its length.  RAX = its index in .Lcrash_names
# (and .Lcrash_actions), or -1 for an unknown value.  Clobbers caller-saved registers.
crash_lookup:
    push rbx
    push r12
    push r13
    mov r12, rdi
    mov r13, rsi
    xor ebx, ebx
.Lcrash_next:
    lea rax, [rip + .Lcrash_names]
    mov rdx, qword ptr [rax + rbx*8]
    test rdx, rdx
    jz .Lcrash_none
    mov rdi, r12
    mov rsi, r13
    call word_is
    jz .Lcrash_hit
    inc rbx
    jmp .Lcrash_next
.Lcrash_hit:
    mov rax, rbx
    jmp .Lcrash_lookup_end
.Lcrash_none:
    mov rax, -1
.Lcrash_lookup_end:
    pop r13
    pop r12
    pop rbx
    ret

# crash_check - the check of crash= (see `options` in kernel/lib/cmdline.s): RDI/RSI = the
# value, RDX = the option's entry.  EAX = 0 for a known crash; else prints the choices and
# EAX = 1.  Clobbers caller-saved registers.
.global crash_check
crash_check:
    call crash_lookup
    test rax, rax
    js .Lcrash_bad_value
    xor eax, eax
    ret
.Lcrash_bad_value:
    lea rdi, [rip + .Lcrash_bad]
    call printk
    mov eax, 1
    ret

# crash_on_purpose - RDI/RSI = the value of crash=, as crash_check accepted it.  "triple":
# triple fault; "hang": never return; "oops": an exception with no fixup; "pf": a kernel page
# fault with no fixup; "stack": a kernel thread overflowing its stack; "vector": `int` on an
# unhandled vector.  Does not return.
crash_on_purpose:
    call crash_lookup
    lea rcx, [rip + .Lcrash_actions]
    jmp qword ptr [rcx + rax*8]
.Ltriple:
    lidt [rip + .Lnull_idt]             # no gate at all: #BP -> #GP -> #DF -> triple fault
    int3
.Lhang:
    cli
    hlt
    jmp .Lhang
.Loops:
    mov rax, OOPS_CR2                   # CR2 too, so the report's CR2 is checkable
    mov cr2, rax
    call load_register_pattern          # the report must show each register in its place
    ud2
.Lpf:
    call load_register_pattern
    mov eax, UNMAPPED_ADDR              # an unrecoverable kernel page fault: no fixup
    mov rax, qword ptr [rax]
.Lvector:
    call load_register_pattern          # a software interrupt on a vector nobody handles
    int CRASH_VECTOR
    ud2
.Lstack:
    lea rdi, [rip + .Lcrash_stack]      # a kernel thread that recurses into its guard page
    lea rsi, [rip + recurse_forever]
    xor edx, edx
    call kthread_create
    mov rdi, rax
    call run_user_task
    ud2

# load_register_pattern - set rax, rbx, rcx, rdx, rsi, rdi, rbp and r8-r15 to distinct 64-bit
# values (0x1111111111111111 ... 0xffffffffffffffff, in that order), so that an oops report
# that prints a register from the wrong pt_regs slot, or only its low half, shows it.
load_register_pattern:
    mov rax, 0x1111111111111111
    mov rbx, 0x2222222222222222
    mov rcx, 0x3333333333333333
    mov rdx, 0x4444444444444444
    mov rsi, 0x5555555555555555
    mov rdi, 0x6666666666666666
    mov rbp, 0x7777777777777777
    mov r8, 0x8888888888888888
    mov r9, 0x9999999999999999
    mov r10, 0xaaaaaaaaaaaaaaaa
    mov r11, 0xbbbbbbbbbbbbbbbb
    mov r12, 0xcccccccccccccccc
    mov r13, 0xdddddddddddddddd
    mov r14, 0xeeeeeeeeeeeeeeee
    mov r15, 0xffffffffffffffff
    ret

# recurse_forever - each call takes 16 bytes of stack until the guard page stops it.
recurse_forever:
    push rdi
    call recurse_forever
    pop rdi
    ret

.section .rodata
.Lbanner:
    .asciz "condrcu: x86-64 bare metal, re-enacting the conditional-RCU entry path of Linux\n"
.Lhz_key:
    .asciz "hz="
.Lhz_fmt:
    .asciz "timer: %u Hz (APIC timer period %u)\n"
.Lpolicy_key:
    .asciz "entry_policy="
.Lpolicy_v6:
    .asciz "v6"
.Lpolicy_v58:
    .asciz "v58"
.Lpolicy_fmt:
    .asciz "entry policy: %s\n"
.Lpolicy_bad_fmt:
    .asciz "error: entry_policy= takes v6 or v58\n"
.Lhold_key:
    .asciz "hold"
.Levents_key:
    .asciz "events="
.Lcrash_key:
    .asciz "crash="
.Lselftest_key:
    .asciz "selftest="
.Lcrash_triple:
    .asciz "triple"
.Lcrash_hang:
    .asciz "hang"
.Lcrash_oops:
    .asciz "oops"
.Lcrash_pf:
    .asciz "pf"
.Lcrash_stack:
    .asciz "stack"
.Lcrash_vector:
    .asciz "vector"
.Lcrash_bad:
    .asciz "error: crash= takes triple, hang, oops, pf, stack or vector\n"
.balign 8
# The values of crash= and, in the same order, what each does.
.Lcrash_names:
    .quad .Lcrash_triple, .Lcrash_hang, .Lcrash_oops, .Lcrash_pf, .Lcrash_stack, .Lcrash_vector, 0
.Lcrash_actions:
    .quad .Ltriple, .Lhang, .Loops, .Lpf, .Lstack, .Lvector
    .word 0, 0, 0
.Lnull_idt:
    .word 0
    .quad 0

.section .bss
.balign 8
.global tick_hz
tick_hz:
    .zero 8
