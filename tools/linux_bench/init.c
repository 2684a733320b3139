/*
 * /init of the Linux bench (tools/bench_linux.py, docs/performance.md): measures the entry
 * paths of issue 11 in instructions and prints them in the guest bench's format,
 *
 *   # bench: calibration expected=<int> measured=<int> ok=<0|1>
 *   # bench: <op> median=<int> min=<int> n=<int> unit=<insns|ticks>
 *   # bench: pages_free start=<int> end=<int>
 *
 * then powers the machine off.  It runs as PID 1 of an initramfs under QEMU with
 * `-icount shift=0,sleep=off`, where the TSC advances one tick per retired instruction (of
 * every vCPU: under -icount QEMU runs them in turn), so an rdtsc delta is an instruction
 * count.  Every figure has the harness's own cost (an empty measurement) taken off.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define CALIBRATION_LOOPS 100000 /* the loop below retires 2 instructions per turn */
#define NOSYS_NR 1000            /* no system call has this number, native or compat */
#define BAD_USER_ADDR 0x1000UL   /* below mmap_min_addr: never mapped */
#define MAX_SAMPLES 4096

static int out = 1;

static inline uint64_t now(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n)
{
	qsort(v, n, sizeof *v, cmp_u64);
	return v[n / 2];
}

/* Sorts v; prints the median and the minimum, `off` taken off each. */
static void report(const char *op, uint64_t *v, int n, int64_t off, const char *unit)
{
	qsort(v, n, sizeof *v, cmp_u64);
	int64_t med = (int64_t)v[n / 2] - off, min = (int64_t)v[0] - off;
	dprintf(out, "# bench: %s median=%lld min=%lld n=%d unit=%s\n", op, (long long)med,
		(long long)min, n, unit);
}

static uint64_t samples[MAX_SAMPLES], extra[MAX_SAMPLES];

/* The cost of the measurement itself: two rdtsc reads with nothing between. */
static uint64_t empty_cost(void)
{
	for (int i = 0; i < 1001; i++) {
		uint64_t t0 = now();
		samples[i] = now() - t0;
	}
	return median(samples, 1001);
}

/* One asm block: two TSC reads around a loop of known length, and the same without the
 * loop; the difference must be exactly the loop's 2 * CALIBRATION_LOOPS instructions (one
 * tick per instruction), or no figure means anything. */
static uint64_t timed_loop(uint32_t loops)
{
	uint64_t d;
	__asm__ volatile("rdtsc\n\tshl $32, %%rdx\n\tor %%rdx, %%rax\n\tmov %%rax, %%r8\n\t"
			 "mov %1, %%ecx\n\ttest %%ecx, %%ecx\n\tjz 2f\n"
			 "1:\tdec %%ecx\n\tjnz 1b\n"
			 "2:\trdtsc\n\tshl $32, %%rdx\n\tor %%rdx, %%rax\n\tsub %%r8, %%rax"
			 : "=a"(d)
			 : "r"(loops)
			 : "rdx", "rcx", "r8", "cc", "memory");
	return d;
}

static int calibrate(void)
{
	/* both run mov, test and jz; only the loop's dec and jnz differ */
	uint64_t expected = 2ULL * CALIBRATION_LOOPS, measured = 0;
	for (int i = 0; i < 5; i++)
		measured = timed_loop(CALIBRATION_LOOPS) - timed_loop(0);
	int ok = measured == expected;
	dprintf(out, "# bench: calibration expected=%llu measured=%llu ok=%d\n",
		(unsigned long long)expected, (unsigned long long)measured, ok);
	return ok;
}

static long raw_syscall1(long nr, long a)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "0"(nr), "D"(a) : "rcx", "r11", "memory");
	return ret;
}

static void bench_syscalls(uint64_t empty)
{
	int n = 2001;
	for (int i = 0; i < n; i++) {
		long ret;
		uint64_t t0 = now();
		__asm__ volatile("syscall" : "=a"(ret) : "0"((long)NOSYS_NR) : "rcx", "r11", "memory");
		samples[i] = now() - t0;
	}
	report("syscall_null", samples, n, empty, "insns");
	for (int i = 0; i < n; i++) {
		long ret;
		uint64_t t0 = now();
		__asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_getppid) : "rcx", "r11", "memory");
		samples[i] = now() - t0;
	}
	report("syscall_getppid", samples, n, empty, "insns");
	for (int i = 0; i < n; i++) {
		long ret;
		uint64_t t0 = now();
		__asm__ volatile("int $0x80" : "=a"(ret) : "0"((long)NOSYS_NR)
				 : "r8", "r9", "r10", "r11", "memory");
		samples[i] = now() - t0;
	}
	report("int80_null", samples, n, empty, "insns");
}

/* A store to each page of a fresh anonymous mapping (a fault that allocates and maps a zeroed
 * page), less the same store to a page already mapped. */
static void bench_fault(uint64_t empty)
{
	int n = 1024;
	long page = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		dprintf(out, "# bench-linux: mmap failed\n");
		return;
	}
	madvise(m, n * page, MADV_NOHUGEPAGE);
	for (int i = 0; i < n; i++) {
		char *p = m + i * page;
		uint64_t t0 = now();
		__asm__ volatile("movb $1, (%0)" : : "r"(p) : "memory");
		samples[i] = now() - t0;
	}
	for (int i = 0; i < n; i++) {
		char *p = m + i * page;
		uint64_t t0 = now();
		__asm__ volatile("movb $2, (%0)" : : "r"(p) : "memory");
		extra[i] = now() - t0;
	}
	report("user_fault_first_touch", samples, n, median(extra, n), "insns");
	munmap(m, n * page);
	(void)empty;
}

/* time(2) stores its result with one put_user(): given an unmapped address the store faults
 * in the kernel and the exception table turns it into EFAULT.  The row is that call less the
 * same call with a good address. */
static void bench_extable(uint64_t empty)
{
	int n = 1001;
	long t;
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now();
		raw_syscall1(SYS_time, (long)&t);
		extra[i] = now() - t0;
	}
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now();
		long r = raw_syscall1(SYS_time, (long)BAD_USER_ADDR);
		samples[i] = now() - t0;
		if (r != -14) {
			dprintf(out, "# bench-linux: time(bad) returned %ld, not -EFAULT\n", r);
			return;
		}
	}
	report("kernel_fault_extable", samples, n, median(extra, n), "insns");
	(void)empty;
}

/* A tight user loop reading the TSC: a gap far longer than one turn is an interrupt, here the
 * timer tick (nothing else interrupts an idle machine's busy CPU).  Also the tick's period,
 * for the grace-period row. */
static uint64_t tick_period;

static void bench_tick(uint64_t empty)
{
	enum { TICKS = 41 };
	uint64_t starts[TICKS];
	int got = 0;
	uint64_t prev = now(), limit = prev + 2000000000ULL;
	uint64_t turn = ~0ULL;
	while (got < TICKS) {
		uint64_t t = now();
		uint64_t d = t - prev;
		if (d < turn)
			turn = d;
		if (d > 1000) {
			samples[got] = d;
			starts[got] = prev;
			got++;
		}
		prev = t;
		if (t > limit)
			break;
	}
	if (got < 3) {
		dprintf(out, "# bench-linux: only %d timer ticks in 2e9 instructions\n", got);
		return;
	}
	for (int i = 1; i < got; i++)
		extra[i - 1] = starts[i] - starts[i - 1];
	tick_period = median(extra, got - 1);
	report("timer_tick_user", samples, got, turn, "insns");
	dprintf(out, "# bench-linux: tick_gaps=");
	for (int i = 0; i < got; i++) /* sorted by report(): the spread behind the median */
		dprintf(out, "%s%llu", i ? "," : "", (unsigned long long)(samples[i] - turn));
	dprintf(out, "\n");
	dprintf(out, "# bench-linux: tick_period=%llu\n", (unsigned long long)tick_period);
	(void)empty;
}

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (sched_setaffinity(0, sizeof s, &s) != 0)
		dprintf(out, "# bench-linux: cannot pin to CPU %d\n", cpu);
}

/* Two processes, one on CPU `a`, one on CPU `b`, ping-ponging one byte through two pipes.
 * Returns the round trips' costs in samples[]. */
static int pingpong(int a, int b, int n)
{
	int ab[2], ba[2];
	char c = 0;
	if (pipe(ab) || pipe(ba))
		return 0;
	pid_t pid = fork();
	if (pid == 0) {
		close(ab[1]);
		close(ba[0]);
		pin(b);
		for (;;) {
			if (read(ab[0], &c, 1) != 1 || write(ba[1], &c, 1) != 1)
				_exit(0);
		}
	}
	close(ab[0]);
	close(ba[1]);
	if (pid < 0)
		return 0;
	pin(a);
	for (int i = 0; i < 20; i++) { /* both sides settled on their CPUs */
		write(ab[1], &c, 1);
		read(ba[0], &c, 1);
	}
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now();
		write(ab[1], &c, 1);
		read(ba[0], &c, 1);
		samples[i] = now() - t0;
	}
	close(ab[1]); /* the other side reads end-of-file and exits */
	close(ba[0]);
	waitpid(pid, NULL, 0);
	return n;
}

static void bench_pingpong(uint64_t empty)
{
	/* one CPU: a round trip is two switches (and two writes and two reads) */
	int n = pingpong(0, 0, 1001);
	if (n) {
		for (int i = 0; i < n; i++)
			samples[i] = (samples[i] - empty) / 2;
		report("context_switch_pingpong", samples, n, 0, "insns");
	}
	/* two CPUs: each wakeup crosses to the other CPU, which sleeps in idle (an IPI) */
	n = pingpong(0, 1, 501);
	if (n)
		report("resched_ipi_roundtrip", samples, n, empty, "insns");
}

/* sched_yield() in one process while another, on the same CPU, counts its turns and yields
 * in a loop.  CFS lets a yielding task go on when the other has run much longer, so only the
 * calls in which the other ran (its count moved) are kept: a round trip of two switches and
 * the other's yield. */
static void bench_yield(uint64_t empty)
{
	int n = 1001, got = 0;
	volatile uint64_t *turns = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (turns == MAP_FAILED)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		pin(0);
		for (;;) {
			(*turns)++;
			sched_yield();
		}
	}
	pin(0);
	for (int i = 0; i < 20; i++)
		sched_yield();
	for (long tries = 0; got < n && tries < 100L * n; tries++) {
		uint64_t before = *turns;
		uint64_t t0 = now();
		sched_yield();
		uint64_t d = now() - t0;
		if (*turns != before)
			samples[got++] = d;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	munmap((void *)turns, 4096);
	if (got)
		report("sched_yield", samples, got, empty, "insns");
	else
		dprintf(out, "# bench-linux: sched_yield never ran the other task\n");
}

/* membarrier(MEMBARRIER_CMD_GLOBAL) waits for a grace period (synchronize_rcu(), on more than
 * one CPU).  Virtual time goes one nanosecond per instruction and jumps over idle time; the
 * row in ticks is that time over the tick's period (measured above), the insns row the time
 * itself. */
static void bench_rcu(uint64_t empty)
{
	int n = 21;
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0) < 0) {
		dprintf(out, "# bench-linux: no membarrier\n");
		return;
	}
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now();
		long r = syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0);
		samples[i] = now() - t0 - empty;
		if (r != 0) {
			dprintf(out, "# bench-linux: membarrier returned %ld\n", r);
			return;
		}
	}
	if (tick_period) {
		for (int i = 0; i < n; i++)
			extra[i] = (samples[i] + tick_period / 2) / tick_period;
		report("synchronize_rcu_latency", extra, n, 0, "ticks");
	}
	report("synchronize_rcu_latency_insns", samples, n, 0, "insns");
}

/* Linux 6.1 hangs bringing up a second CPU at boot under QEMU 7.2's -icount, but not when
 * the CPU is put online later: the kernel boots with maxcpus=1 and the init onlines the others
 * through sysfs (docs/performance.md). */
static int set_online(int cpu, int on)
{
	char path[64];
	snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/online", cpu);
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	int ok = write(fd, on ? "1" : "0", 1) == 1;
	close(fd);
	if (!ok)
		dprintf(out, "# bench-linux: cannot take CPU %d %s\n", cpu, on ? "online" : "offline");
	return ok ? 0 : -1;
}

static void online_cpus(void)
{
	mkdir("/sys", 0755);
	if (mount("sysfs", "/sys", "sysfs", 0, NULL) != 0) {
		dprintf(out, "# bench-linux: cannot mount sysfs\n");
		return;
	}
	for (int cpu = 1; cpu < 64; cpu++)
		if (set_online(cpu, 1) != 0)
			break;
}

static long pages_free(void)
{
	struct sysinfo si;
	if (sysinfo(&si) != 0)
		return -1;
	return (long)(si.freeram * si.mem_unit / sysconf(_SC_PAGESIZE));
}

int main(void)
{
	if (fcntl(out, F_GETFD) < 0) {
		out = open("/dev/console", O_WRONLY | O_NOCTTY);
		if (out < 0)
			out = open("/dev/ttyS0", O_WRONLY | O_NOCTTY);
	}
	online_cpus();
	struct utsname u;
	if (uname(&u) == 0)
		dprintf(out, "# bench-linux: release=%s\n# bench-linux: version=%s\n", u.release,
			u.version);
	dprintf(out, "# bench-linux: cpus=%ld\n", sysconf(_SC_NPROCESSORS_ONLN));
	long free0 = pages_free();
	pin(0);
	uint64_t empty = empty_cost();
	dprintf(out, "# bench-linux: empty=%llu\n", (unsigned long long)empty);
	/* bench=quick on the kernel's command line (init's environment): the system calls
	 * alone, for the suite's boot test */
	const char *mode = getenv("bench");
	int quick = mode && strcmp(mode, "quick") == 0;
	if (calibrate()) { /* else no figure: the host refuses the run */
		bench_syscalls(empty);
		if (!quick) {
			bench_fault(empty);
			bench_extable(empty);
			/* the tick alone: CPU 1's own ticks, run in turn under -icount, would
			 * land in CPU 0's gaps and count there */
			int cpu1 = set_online(1, 0) == 0;
			bench_tick(empty);
			if (cpu1)
				set_online(1, 1);
			bench_pingpong(empty);
			bench_yield(empty);
			bench_rcu(empty);
		}
	}
	dprintf(out, "# bench: pages_free start=%ld end=%ld\n", free0, pages_free());
	dprintf(out, "# bench-linux: done\n");
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}
