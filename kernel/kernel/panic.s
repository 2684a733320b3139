# Warnings (Linux's WARN_ONCE): counted per kind, logged, printed the first time.
.include "calling.inc"
.include "layout.inc"
.include "noinstr.inc"

.section .noinstr.text
# warn - EDI = warning kind (WARN_*).  Counts it, logs EV_WARN and, the first time it fires
# outside an NMI, prints "WARNING: <text> (at <caller>)" (once per kind: an occurrence in an
# NMI, which cannot print, does not use up the message).  Callable from noinstr code in any
# state.  Preserves every register.
.global warn
warn:
    PUSH_CALLER_SAVED
    inc qword ptr gs:[PCPU_WARNINGS]
    mov eax, edi
    lea rcx, [rip + warn_counts]
    lock inc qword ptr [rcx + rax * 8]
    mov esi, edi
    mov edi, EV_WARN
    call event_log
    cmp qword ptr gs:[PCPU_IN_NMI], 0
    jne .Lquiet                                     # printk is not NMI-safe: a later one prints
    lea rcx, [rip + warn_printed]
    mov dl, 1
    xchg byte ptr [rcx + rax], dl       # one CPU prints it
    test dl, dl
    jnz .Lquiet
    INSTRUMENTATION_BEGIN
    lea rdx, [rip + warning_texts]
    mov rsi, qword ptr [rdx + rax * 8]
    mov rdx, qword ptr [rsp + 80]                   # warn's return address: the caller
    lea rdi, [rip + .Lwarn_fmt]
    call printk
    INSTRUMENTATION_END
.Lquiet:
    POP_CALLER_SAVED
    ret

.section .rodata
.Lwarn_fmt:
    .asciz "WARNING: %s (at %S)\n"

.section .bss
.balign 8
.global warn_counts
warn_counts:
    .zero NR_WARNINGS * 8

# Per kind: 1 once its message was printed.
warn_printed:
    .zero NR_WARNINGS
