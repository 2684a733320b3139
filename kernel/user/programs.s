# User programs: ring-3 code linked at USER_TEXT_BASE (section .user), mapped read-only and
# executable into every task.  System calls are `syscall`, a few programs use the compat
# int 0x80 (kernel/arch/syscall.s).
.include "layout.inc"

# SYSCALL64 nr: RAX = nr, `syscall` (GNU as reads macro names without case: a macro named
# SYSCALL would swallow the instruction).  Arguments in RDI, RSI, RDX; result in RAX; RCX and R11
# are lost (the CPU puts the return RIP and RFLAGS there).
.macro SYSCALL64 nr
    mov eax, \nr
    syscall
.endm

# SYSCALL_INT80 nr: the same call through the compat entry, int 0x80 (RCX, R11 kept).
.macro SYSCALL_INT80 nr
    mov eax, \nr
    int SYSCALL_VECTOR
.endm

# PRINT label, len: write LEN bytes at LABEL (in this section) to the console.
.macro PRINT label, len
    lea rdi, [rip + \label]
    mov esi, \len
    SYSCALL64 SYS_WRITE
.endm

# EXIT code
.macro EXIT code
    mov edi, \code
    SYSCALL64 SYS_EXIT
.endm

.section .user.text
.set BAD_STACK_SPINS, 30000000        # long enough for ticks to land (several at 100 Hz)
.set HELLO_LINE_END, 0x800             # user_hello builds its line below here, in heap page 0

# user_hello - fault in three heap pages by writing them (demand paging), read them back, then
# say hello with its pid (from SYS_GETPID), so that the line names the task that printed it.
# The line is built in heap page 0, already mapped: no fault beyond the three.  Exits 0, or 1
# if a page does not hold what was written.
.global user_hello
user_hello:
    mov rbx, USER_HEAP_BASE
    xor ecx, ecx
.Lhello_write:
    mov rax, rcx
    shl rax, 12
    lea rdx, [rcx + 0x5a5a0000]
    mov qword ptr [rbx + rax + 8], rdx
    inc ecx
    cmp ecx, 3
    jb .Lhello_write
    xor ecx, ecx
.Lhello_check:
    mov rax, rcx
    shl rax, 12
    lea rdx, [rcx + 0x5a5a0000]
    cmp qword ptr [rbx + rax + 8], rdx
    jne .Lhello_bad
    inc ecx
    cmp ecx, 3
    jb .Lhello_check
    SYSCALL64 SYS_GETPID                  # RAX = this task's pid
    # Right to left: the tail, the pid's digits, the greeting.
    lea rdi, [rbx + HELLO_LINE_END]
    mov ecx, (.Lhello_tail_end - .Lhello_tail)
    sub rdi, rcx
    mov r12, rdi
    lea rsi, [rip + .Lhello_tail]
    rep movsb
    mov rdi, r12
    mov ecx, 10
.Lhello_digit:
    xor edx, edx
    div rcx
    add dl, '0'
    dec rdi
    mov byte ptr [rdi], dl
    test rax, rax
    jnz .Lhello_digit
    mov ecx, (.Lhello_end - .Lhello)
    sub rdi, rcx
    mov r12, rdi
    lea rsi, [rip + .Lhello]
    rep movsb
    mov rdi, r12
    lea rsi, [rbx + HELLO_LINE_END]
    sub rsi, rdi                        # the line's length
    SYSCALL64 SYS_WRITE
    EXIT 0
.Lhello_bad:
    EXIT 1

# user_read_kernel - read a kernel address: the page is present but supervisor-only.
.global user_read_kernel
user_read_kernel:
    mov rax, KERNEL_VIRT_BASE + LOAD_BASE
    mov rax, qword ptr [rax]
    EXIT 0

# user_write_text - write to its own (read-only) code.
.global user_write_text
user_write_text:
    lea rax, [rip + user_write_text]
    mov byte ptr [rax], 0x90
    EXIT 0

# user_cli, user_hlt, user_in - privileged instructions in ring 3: #GP.
.global user_cli
user_cli:
    cli
    EXIT 0

.global user_hlt
user_hlt:
    hlt
    EXIT 0

.global user_in
user_in:
    mov dx, COM1
    in al, dx
    EXIT 0

# user_jump_kernel - jump into the kernel: an instruction fetch from a supervisor page.
.global user_jump_kernel
user_jump_kernel:
    mov rax, offset kernel_main
    jmp rax

# user_int3, user_div0, user_ud2 - traps a task gets killed for (SIGTRAP, SIGFPE, SIGILL).
.global user_int3
user_int3:
    int3
    EXIT 0

.global user_div0
user_div0:
    xor edx, edx
    mov eax, 1
    xor ecx, ecx
    div ecx
    EXIT 0

.global user_ud2
user_ud2:
    ud2

# user_fault_loop - read USER_FAULT_LOOP_ADDR, a heap page, once; exit 0.  Under the
# user_fault_loop self-test the kernel "resolves" each fault on that page without mapping it,
# so the read faults again and again until the kernel gives up on the task.
.global user_fault_loop
user_fault_loop:
    mov eax, USER_FAULT_LOOP_ADDR
    mov rbx, qword ptr [rax]
    EXIT 0

# user_peek - ask the kernel to read user memory for us (copy_from_user): a heap page never
# touched (the kernel faults it in), a kernel address (refused before any access) and an
# address outside every region (the access faults, the fixup returns -EFAULT).
# Exits 0 when all three behave, else the number of the first that did not.
.global user_peek
user_peek:
    mov rdi, USER_HEAP_BASE + 0x10000
    SYSCALL64 SYS_PEEK
    test rax, rax
    jnz .Lpeek_bad1
    test rdx, rdx
    jnz .Lpeek_bad1
    mov rdi, KERNEL_VIRT_BASE + LOAD_BASE
    SYSCALL64 SYS_PEEK
    cmp rax, -EFAULT
    jne .Lpeek_bad2
    mov rdi, 0x30000000
    SYSCALL64 SYS_PEEK
    cmp rax, -EFAULT
    jne .Lpeek_bad3
    EXIT 0
.Lpeek_bad1:
    EXIT 1
.Lpeek_bad2:
    EXIT 2
.Lpeek_bad3:
    EXIT 3

# user_notify - ask for exit-to-user work (need-resched, notify-resume) through int 0x80, then check that we
# came back and can still make calls.
.global user_notify
user_notify:
    SYSCALL_INT80 SYS_NOTIFY
    test rax, rax
    jnz .Lnotify_bad
    SYSCALL_INT80 SYS_GETPID
    test rax, rax
    jz .Lnotify_bad
    EXIT 0
.Lnotify_bad:
    EXIT 1

.Lhello:
    .ascii "hello from ring 3: pid "
.Lhello_end:
.Lhello_tail:
    .ascii " wrote three heap pages and read them back\n"
.Lhello_tail_end:

.section .user.text
# user_touch_heap - the first kernel entry is a demand fault on the heap.
.global user_touch_heap
user_touch_heap:
    mov rax, USER_HEAP_BASE
    mov qword ptr [rax], rax
    EXIT 0

# user_sleeper - sleep 3 ticks, yield, check the pid, exit 0.
.global user_sleeper
user_sleeper:
    mov edi, 3
    SYSCALL64 SYS_SLEEP
    test rax, rax
    jnz .Lsleeper_bad
    mov edi, 5000
    SYSCALL64 SYS_SLEEP
    cmp rax, -EINVAL
    jne .Lsleeper_bad
    SYSCALL64 SYS_YIELD
    EXIT 0
.Lsleeper_bad:
    EXIT 1

# user_spin - never yields, never makes a call: only preemption takes the CPU back.
.global user_spin
user_spin:
    inc rbx
    jmp user_spin

# user_read_file - the kernel reads a "file" page for us (copy_from_user faults in kernel mode
# and sleeps until the read completes), then we touch another page ourselves (a user-mode
# fault that sleeps).  Exits 0 when both hold the address they were read for.
.global user_read_file
user_read_file:
    mov edi, USER_FILE_BASE
    SYSCALL64 SYS_PEEK
    test rax, rax
    jnz .Lfile_bad
    cmp rdx, USER_FILE_BASE
    jne .Lfile_bad
    mov eax, USER_FILE_BASE + 0x1000
    cmp qword ptr [rax], rax
    jne .Lfile_bad
    EXIT 0
.Lfile_bad:
    EXIT 1

# user_fault_stream - fault in 64 heap pages, sleeping a tick after every 8.  Exits 0 when
# every page holds what was written.
.global user_fault_stream
user_fault_stream:
    mov rbx, USER_HEAP_BASE + 0x40000
    xor r12d, r12d
.Lstream_next:
    mov rax, r12
    shl rax, 12
    mov qword ptr [rbx + rax], r12
    cmp qword ptr [rbx + rax], r12
    jne .Lstream_bad
    inc r12
    test r12, 7
    jnz .Lstream_more
    mov edi, 1
    SYSCALL64 SYS_SLEEP
.Lstream_more:
    cmp r12, 64
    jb .Lstream_next
    EXIT 0
.Lstream_bad:
    EXIT 1

.section .user.text
# user_getpid - one system call that returns, with no exit work pending, then exit 0.
.global user_getpid
user_getpid:
    SYSCALL64 SYS_GETPID
    EXIT 0

# BEND_CHECK name, case, reg: a program that asks SYS_BEND_FRAME to bend its saved frame
# (CASE), so that its return from that call cannot be sysretq, then checks that REG holds what
# iretq restored, 0 (sysretq would have put RIP in RCX, RFLAGS in R11): exits 0, or 1.
.macro BEND_CHECK name, case, reg
.global \name
\name:
    mov edi, \case
    SYSCALL64 SYS_BEND_FRAME
    test \reg, \reg
    jnz .Lbend_bad_\@
    EXIT 0
.Lbend_bad_\@:
    EXIT 1
.endm

# BEND_EXIT name, case: the same bend, then an exit.  With TF set (case 3) the single step
# traps after the first instruction (SIGTRAP), and with RIP not canonical (case 5) iretq
# faults (SIGSEGV): the exit is never reached.
.macro BEND_EXIT name, case
.global \name
\name:
    mov edi, \case
    SYSCALL64 SYS_BEND_FRAME
    nop
    EXIT 0
.endm

BEND_CHECK user_bend_rcx, 1, rcx
BEND_CHECK user_bend_r11, 2, r11
BEND_EXIT user_bend_tf, 3
BEND_EXIT user_bend_rf, 4
BEND_EXIT user_bend_noncanonical, 5

# user_bad_syscalls - numbers out of range through both entries, then a write from a pointer
# into the kernel half: -ENOSYS twice and -EFAULT, or exit 1.  Exits 0.
.global user_bad_syscalls
user_bad_syscalls:
    SYSCALL64 (NR_SYSCALLS + 1000)
    cmp rax, -ENOSYS
    jne .Lbad_syscalls_fail
    SYSCALL_INT80 -1
    cmp rax, -ENOSYS
    jne .Lbad_syscalls_fail
    mov rdi, KERNEL_VIRT_BASE
    mov esi, 8
    SYSCALL64 SYS_WRITE
    cmp rax, -EFAULT
    jne .Lbad_syscalls_fail
    EXIT 0
.Lbad_syscalls_fail:
    EXIT 1

# NT_KEPT via: getpid through the macro VIA (SYSCALL64 or SYSCALL_INT80); on to
# .Lnt_call_failed when it fails, to .Lnt_lost when NT did not come back set.
.macro NT_KEPT via
    \via SYS_GETPID
    test rax, rax
    jle .Lnt_call_failed
    pushfq
    test qword ptr [rsp], X86_EFLAGS_NT
    lea rsp, [rsp + 8]
    jz .Lnt_lost
.endm

# user_nt_syscalls - NT (nested task) set in RFLAGS across `syscall` and int 0x80 (after Linux's
# syscall_nt test): each call works and NT is still set when it returns.  Exits 0, or 1 when a
# call failed, 2 when NT was lost.
.global user_nt_syscalls
user_nt_syscalls:
    pushfq
    or qword ptr [rsp], X86_EFLAGS_NT
    popfq
    NT_KEPT SYSCALL64
    NT_KEPT SYSCALL_INT80
    pushfq
    and qword ptr [rsp], ~X86_EFLAGS_NT
    popfq
    EXIT 0
.Lnt_call_failed:
    EXIT 1
.Lnt_lost:
    EXIT 2

# user_bad_stack - spins for a while with RSP pointing into the kernel half, then into an
# unmapped user page: the ticks that interrupt it switch to the kernel stack (TSS.RSP0) and
# never touch the user's.  Then it takes a good stack back and exits 0.
.global user_bad_stack
user_bad_stack:
    mov r12, rsp
    mov rsp, KERNEL_VIRT_BASE + 0x1000
    mov ecx, BAD_STACK_SPINS
.Lbad_stack_kernel:
    dec ecx
    jnz .Lbad_stack_kernel
    mov esp, UNMAPPED_ADDR
    mov ecx, BAD_STACK_SPINS
.Lbad_stack_unmapped:
    dec ecx
    jnz .Lbad_stack_unmapped
    mov rsp, r12
    EXIT 0

# user_getpid_int80 - the same call through the compat entry, int 0x80, and an exit.
.global user_getpid_int80
user_getpid_int80:
    SYSCALL_INT80 SYS_GETPID
    mov edi, 0
    SYSCALL_INT80 SYS_EXIT

.section .user.text
# user_df_set - enter the kernel with the direction flag set (robust_user_df).  Fills heap page
# 0 with a pattern, then with DF set: touches heap page 1 (a demand fault: the kernel zeroes a
# new page) and writes a line (a system call copies it).  DF must still be set on return; page
# 1 must be zero but for the marker stored, page 0 must still hold the pattern.  Exits 0, or:
# 1 write failed, 2 DF lost, 3 page 1 not zeroed, 4 page 0 damaged.
.set DF_PATTERN, 0x5a5a5a5a5a5a5a5a
.set DF_MARKER, 0x600df
.global user_df_set
user_df_set:
    cld
    mov rbx, USER_HEAP_BASE
    mov rax, DF_PATTERN
    xor ecx, ecx
.Ldf_fill:
    mov qword ptr [rbx + rcx * 8], rax
    inc ecx
    cmp ecx, PAGE_SIZE / 8
    jb .Ldf_fill
    std
    mov qword ptr [rbx + PAGE_SIZE], DF_MARKER
    lea rdi, [rip + .Ldf_line]          # through int 0x80: `syscall` would clear DF itself
    mov esi, .Ldf_line_end - .Ldf_line
    SYSCALL_INT80 SYS_WRITE
    cmp rax, rsi                        # the length asked for (the kernel keeps RSI)
    jne .Ldf_bad_write
    pushfq
    pop rax
    cld
    test eax, X86_EFLAGS_DF
    jz .Ldf_bad_flag
    cmp qword ptr [rbx + PAGE_SIZE], DF_MARKER
    jne .Ldf_bad_page
    mov ecx, 1
.Ldf_zero:
    cmp qword ptr [rbx + PAGE_SIZE + rcx * 8], 0
    jne .Ldf_bad_page
    inc ecx
    cmp ecx, PAGE_SIZE / 8
    jb .Ldf_zero
    mov rax, DF_PATTERN
    xor ecx, ecx
.Ldf_check:
    cmp qword ptr [rbx + rcx * 8], rax
    jne .Ldf_bad_neighbour
    inc ecx
    cmp ecx, PAGE_SIZE / 8
    jb .Ldf_check
    EXIT 0
.Ldf_bad_write:
    EXIT 1
.Ldf_bad_flag:
    EXIT 2
.Ldf_bad_page:
    EXIT 3
.Ldf_bad_neighbour:
    EXIT 4
.Ldf_line:
    .ascii "written with DF set\n"
.Ldf_line_end:

.section .user.text
# user_letters_x, user_letters_y - write LETTER_LINES lines of LETTER_LINE_LEN - 1 copies of
# one letter each (robust_write_race: two of them preempt each other inside write()).  Exits
# 0, or 1 when a write did not take the whole line.  (The counts: kernel/selftest_counts.py.)
.global user_letters_x
user_letters_x:
    mov r12d, 'x'
    jmp user_letters
.global user_letters_y
user_letters_y:
    mov r12d, 'y'
# user_letters - R12B = the letter.  The line is built on the user stack.
user_letters:
    sub rsp, LETTER_LINE_LEN
    xor ecx, ecx
.Lletters_fill:
    mov byte ptr [rsp + rcx], r12b
    inc ecx
    cmp ecx, LETTER_LINE_LEN - 1
    jb .Lletters_fill
    mov byte ptr [rsp + rcx], 10
    xor ebx, ebx
.Lletters_line:
    mov rdi, rsp
    mov esi, LETTER_LINE_LEN
    SYSCALL64 SYS_WRITE
    cmp rax, LETTER_LINE_LEN
    jne .Lletters_bad
    inc ebx
    cmp ebx, LETTER_LINES
    jb .Lletters_line
    EXIT 0
.Lletters_bad:
    EXIT 1
