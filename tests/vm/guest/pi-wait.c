// SPDX-License-Identifier: GPL-2.0
/*
 * pi-wait: priority inversion through a PI futex, measured. Each round a
 * holder thread takes a pthread mutex with PTHREAD_PRIO_INHERIT, and once a
 * waiter thread is about to ask for it, burns CRITICAL_US of CPU time inside
 * it; the waiter times how long it waits for the mutex; HOGS threads spin
 * beside them. The holder reads its own kernel priority
 * (/proc/thread-self/sched) at the end of each critical section: the
 * kernel's PI chain lowers it to the waiter's. A run that has not finished
 * after 5 s per round says so and fails.
 *
 * A wait is the holder's time on a CPU in its critical section plus the
 * rest, which is the scheduler's: the holder waiting for a CPU once asked
 * (before its critical section, and in a queue during it: the run_delay of
 * /proc/thread-self/schedstat) and the waiter's wakeup once it is let go.
 * extra_us is that rest. Under emulation CRITICAL_US of CPU time can take
 * several times as long on the wall clock with the holder on its CPU all
 * along (time in interrupts is not the thread's, and a vCPU the emulator
 * does not run stops in them), which says nothing of the scheduler.
 *
 *   usage: pi-wait ROUNDS CRITICAL_US HOGS HOLDER_NICE WAITER_NICE HOG_NICE
 *   prints: pi_wait rounds=N critical_us=C p50_us=.. p99_us=.. max_us=..
 *           p50_extra_us=.. max_extra_us=.. holder_prio_min=P
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock;
/* The round the holder holds the mutex for, and the round the waiter asks in. */
static atomic_int held, asked, round_done, stop;
static int rounds, critical_us, holder_nice, waiter_nice, hog_nice;
static long *waits_us;
/* Per round: the holder's time on a CPU in its critical section, ns. */
static long long *held_on_cpu_ns;
static int holder_prio_min = 1000;

static long long now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void nap_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = us % 1000000 * 1000 };

	nanosleep(&ts, NULL);
}

static void set_nice(int nice)
{
	if (setpriority(PRIO_PROCESS, gettid(), nice)) {
		perror("setpriority");
		exit(1);
	}
}

/* This thread's kernel priority, p->prio, as /proc shows it. */
static int own_prio(void)
{
	char line[256];
	int prio = -1;
	FILE *f = fopen("/proc/thread-self/sched", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "prio ", 5))
			sscanf(strchr(line, ':') + 1, "%d", &prio);
	fclose(f);
	return prio;
}

/* This thread's time spent waiting in a run queue (run_delay), ns. */
static long long run_delay_ns(int schedstat_fd)
{
	char line[128];
	long long exec_ns, delay_ns;
	ssize_t len = pread(schedstat_fd, line, sizeof(line) - 1, 0);

	if (len <= 0)
		return 0;
	line[len] = 0;
	return sscanf(line, "%lld %lld", &exec_ns, &delay_ns) == 2 ? delay_ns : 0;
}

static void *holder(void *arg)
{
	int schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY);

	if (schedstat_fd < 0) {
		perror("/proc/thread-self/schedstat");
		exit(1);
	}
	set_nice(holder_nice);
	for (int i = 0; i < rounds; i++) {
		long long until, started_at, delay_at_start;
		int prio;

		pthread_mutex_lock(&lock);
		atomic_store(&held, i + 1);
		/* Spinning, not sleeping: a holder the hogs keep off its CPU. */
		while (atomic_load(&asked) <= i)
			;
		delay_at_start = run_delay_ns(schedstat_fd);
		started_at = now_ns(CLOCK_MONOTONIC);
		until = now_ns(CLOCK_THREAD_CPUTIME_ID) + critical_us * 1000LL;
		while (now_ns(CLOCK_THREAD_CPUTIME_ID) < until)
			;
		prio = own_prio();
		if (prio >= 0 && prio < holder_prio_min)
			holder_prio_min = prio;
		held_on_cpu_ns[i] = now_ns(CLOCK_MONOTONIC) - started_at -
				    (run_delay_ns(schedstat_fd) - delay_at_start);
		pthread_mutex_unlock(&lock);
		while (atomic_load(&round_done) <= i)
			nap_us(500);
	}
	return NULL;
}

static void *waiter(void *arg)
{
	set_nice(waiter_nice);
	for (int i = 0; i < rounds; i++) {
		long long asked_at;

		while (atomic_load(&held) <= i)
			nap_us(100);
		/* The holder has it: let it be preempted by the hogs, then ask. */
		nap_us(200);
		atomic_store(&asked, i + 1);
		asked_at = now_ns(CLOCK_MONOTONIC);
		pthread_mutex_lock(&lock);
		waits_us[i] = (now_ns(CLOCK_MONOTONIC) - asked_at) / 1000;
		pthread_mutex_unlock(&lock);
		atomic_store(&round_done, i + 1);
	}
	return NULL;
}

static void *hog(void *arg)
{
	set_nice(hog_nice);
	while (!atomic_load(&stop))
		;
	return NULL;
}

static void timed_out(int sig)
{
	static const char msg[] = "pi_wait timed_out\n";

	write(1, msg, sizeof(msg) - 1);
	_exit(1);
}

static int by_value(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	pthread_mutexattr_t attr;
	pthread_t h, w, *hogs;
	long *extras_us;
	int nr_hogs;

	if (argc != 7) {
		fprintf(stderr, "usage: pi-wait ROUNDS CRITICAL_US HOGS HOLDER_NICE WAITER_NICE HOG_NICE\n");
		return 2;
	}
	rounds = atoi(argv[1]);
	critical_us = atoi(argv[2]);
	nr_hogs = atoi(argv[3]);
	holder_nice = atoi(argv[4]);
	waiter_nice = atoi(argv[5]);
	hog_nice = atoi(argv[6]);
	if (rounds < 1 || critical_us < 1 || nr_hogs < 0)
		return 2;
	waits_us = calloc(rounds, sizeof(*waits_us));
	extras_us = calloc(rounds, sizeof(*extras_us));
	held_on_cpu_ns = calloc(rounds, sizeof(*held_on_cpu_ns));
	signal(SIGALRM, timed_out);
	alarm(5 * rounds);
	hogs = calloc(nr_hogs + 1, sizeof(*hogs));
	pthread_mutexattr_init(&attr);
	if (pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT)) {
		fprintf(stderr, "no PTHREAD_PRIO_INHERIT\n");
		return 1;
	}
	pthread_mutex_init(&lock, &attr);
	for (int i = 0; i < nr_hogs; i++)
		pthread_create(&hogs[i], NULL, hog, NULL);
	pthread_create(&w, NULL, waiter, NULL);
	pthread_create(&h, NULL, holder, NULL);
	pthread_join(h, NULL);
	pthread_join(w, NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < nr_hogs; i++)
		pthread_join(hogs[i], NULL);
	for (int i = 0; i < rounds; i++)
		extras_us[i] = waits_us[i] - held_on_cpu_ns[i] / 1000;
	qsort(waits_us, rounds, sizeof(*waits_us), by_value);
	qsort(extras_us, rounds, sizeof(*extras_us), by_value);
	printf("pi_wait rounds=%d critical_us=%d p50_us=%ld p99_us=%ld max_us=%ld p50_extra_us=%ld max_extra_us=%ld holder_prio_min=%d\n",
	       rounds, critical_us, waits_us[rounds / 2], waits_us[(rounds * 99) / 100],
	       waits_us[rounds - 1], extras_us[rounds / 2], extras_us[rounds - 1], holder_prio_min);
	return 0;
}
