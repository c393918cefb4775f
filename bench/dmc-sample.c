// SPDX-License-Identifier: GPL-2.0-only
/*
 * dmc-sample: the benchmark's stopwatch for dm-clone hydration (runs in the
 * guest; bench/run builds it static on the host).
 *
 *   dmc-sample [options] NAME
 *
 *   -r          resume NAME (swap in its loaded table) at t = 0
 *   -m MSG      send the target message MSG (sector 0) to NAME at t = 0
 *   -i MS       poll the status every MS milliseconds (default: do not
 *               poll, wait for the dm event the target raises when the
 *               last region is hydrated)
 *   -T SECS     give up after SECS seconds (exit 2)
 *   -d SECS     run for SECS seconds whatever the progress (exit 0)
 *   -s FILE     also sample a /sys/block/X/stat file (repeatable)
 *
 * Prints one line per sample:
 *
 *   <t ms since t = 0> <hydrated regions> <total regions> [<reads> <writes> <sectors written>]...
 *
 * the last three per -s FILE (fields 1, 5 and 7 of the stat file). The
 * first line is at t = 0 just before the action (-m, or none), or just
 * after it (-r: the table is not live before). Without -d it stops at the
 * first sample with hydrated == total (exit 0); without -i, samples are
 * taken only at t = 0, at each dm event and at the end.
 *
 * Why not `dmsetup status` in a shell loop: under software emulation one
 * dmsetup run costs ~50 ms of CPU, which would steal a good part of a vCPU
 * from what is measured. Here a sample is one ioctl (DM_TABLE_STATUS with
 * DM_NOFLUSH_FLAG, which should never trigger a metadata commit) and a few
 * reads of sysfs files. Waiting for the event instead of polling keeps
 * the measurement free of status queries altogether.
 *
 * Exit status: 0 done, 1 error, 2 timeout, 3 the clone left rw mode, 4
 * done at the timeout but no dm event came (waiting for events).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/dm-ioctl.h>

#define BUFSZ		(64 * 1024)
#define MAX_STATS	8

static int ctl_fd = -1;
static const char *name;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void init_io(struct dm_ioctl *io, size_t size)
{
	memset(io, 0, size);
	io->version[0] = DM_VERSION_MAJOR;
	io->version[1] = 0;
	io->version[2] = 0;
	io->data_size = size;
	io->data_start = sizeof(*io);
	snprintf(io->name, sizeof(io->name), "%s", name);
}

static int dm_ioctl_call(unsigned long cmd, struct dm_ioctl *io, const char *what)
{
	if (ioctl(ctl_fd, cmd, io) < 0) {
		fprintf(stderr, "dmc-sample: %s %s: %s\n", what, name, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The clone's status: hydrated and total regions, mode (0 rw, 1 ro, 2 Fail).
 * Returns -1 on error.
 */
static int clone_status(unsigned long long *hydrated, unsigned long long *total, int *mode)
{
	static char buf[BUFSZ];
	struct dm_ioctl *io = (struct dm_ioctl *)buf;
	struct dm_target_spec *spec;
	unsigned int i, off = 0;
	char *st, *last;

	init_io(io, sizeof(buf));
	io->flags = DM_NOFLUSH_FLAG;
	if (dm_ioctl_call(DM_TABLE_STATUS, io, "status"))
		return -1;
	if (io->flags & DM_BUFFER_FULL_FLAG) {
		fprintf(stderr, "dmc-sample: status of %s does not fit\n", name);
		return -1;
	}
	for (i = 0; i < io->target_count; i++) {
		spec = (struct dm_target_spec *)(buf + io->data_start + off);
		st = (char *)(spec + 1);
		if (!strcmp(spec->target_type, "clone")) {
			if (!strncmp(st, "Fail", 4)) {
				*mode = 2;
				*hydrated = *total = 0;
				return 0;
			}
			/* <md bs> <used>/<total> <region size> <hydrated>/<total> ... <mode> */
			if (sscanf(st, "%*s %*s %*s %llu/%llu", hydrated, total) != 2) {
				fprintf(stderr, "dmc-sample: cannot parse status '%s'\n", st);
				return -1;
			}
			last = strrchr(st, ' ');
			*mode = (last && !strcmp(last + 1, "rw")) ? 0 : 1;
			return 0;
		}
		off = spec->next;
	}
	fprintf(stderr, "dmc-sample: %s has no clone target\n", name);
	return -1;
}

/* The device's event counter (DM_DEV_STATUS). */
static int event_nr(uint32_t *ev)
{
	struct dm_ioctl io;

	init_io(&io, sizeof(io));
	if (dm_ioctl_call(DM_DEV_STATUS, &io, "info"))
		return -1;
	*ev = io.event_nr;
	return 0;
}

/* Wait for an event after *ev; 1 if interrupted (the alarm), -1 on error. */
static int wait_event(uint32_t *ev)
{
	static char buf[BUFSZ];
	struct dm_ioctl *io = (struct dm_ioctl *)buf;

	init_io(io, sizeof(buf));
	io->event_nr = *ev;
	io->flags = DM_NOFLUSH_FLAG;
	if (ioctl(ctl_fd, DM_DEV_WAIT, io) < 0) {
		if (errno == EINTR)
			return 1;
		fprintf(stderr, "dmc-sample: wait %s: %s\n", name, strerror(errno));
		return -1;
	}
	*ev = io->event_nr;
	return 0;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static void sleep_ms(double ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ms / 1e3);
	ts.tv_nsec = (long)((ms - ts.tv_sec * 1e3) * 1e6);
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int do_resume(void)
{
	struct dm_ioctl io;

	init_io(&io, sizeof(io));
	return dm_ioctl_call(DM_DEV_SUSPEND, &io, "resume");
}

static int do_message(const char *msg)
{
	size_t size = sizeof(struct dm_ioctl) + sizeof(struct dm_target_msg) + strlen(msg) + 1;
	struct dm_ioctl *io = calloc(1, size);
	struct dm_target_msg *tmsg;
	int r;

	if (!io)
		return -1;
	init_io(io, size);
	tmsg = (struct dm_target_msg *)((char *)io + io->data_start);
	tmsg->sector = 0;
	strcpy(tmsg->message, msg);
	r = dm_ioctl_call(DM_TARGET_MSG, io, "message");
	free(io);
	return r;
}

/* Fields 1, 5 and 7 of a block device stat file. */
static int read_stat(const char *path, unsigned long long v[3])
{
	unsigned long long f[7];
	FILE *fp = fopen(path, "r");
	int n;

	if (!fp) {
		fprintf(stderr, "dmc-sample: %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fscanf(fp, "%llu %llu %llu %llu %llu %llu %llu",
		   &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6]);
	fclose(fp);
	if (n != 7)
		return -1;
	v[0] = f[0];
	v[1] = f[4];
	v[2] = f[6];
	return 0;
}

static int sample(double t, const char **stats, int nstats, unsigned long long *hyd,
		  unsigned long long *tot, int *mode)
{
	unsigned long long v[3];
	int i;

	if (clone_status(hyd, tot, mode))
		return -1;
	printf("%.3f %llu %llu", t, *hyd, *tot);
	for (i = 0; i < nstats; i++) {
		if (read_stat(stats[i], v))
			return -1;
		printf(" %llu %llu %llu", v[0], v[1], v[2]);
	}
	putchar('\n');
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: dmc-sample [-r | -m MSG] [-i MS] [-T SECS] [-d SECS] [-s STATFILE]... NAME\n");
	exit(1);
}

int main(int argc, char **argv)
{
	const char *stats[MAX_STATS], *msg = NULL;
	unsigned long long hyd, tot;
	double t0, t, interval = 0, timeout = 0, duration = 0;
	int nstats = 0, resume = 0, mode, c, r;
	struct sigaction sa;
	uint32_t ev;

	while ((c = getopt(argc, argv, "rm:i:T:d:s:")) != -1) {
		switch (c) {
		case 'r': resume = 1; break;
		case 'm': msg = optarg; break;
		case 'i': interval = atof(optarg); break;
		case 'T': timeout = atof(optarg); break;
		case 'd': duration = atof(optarg) * 1e3; break;
		case 's':
			if (nstats == MAX_STATS)
				usage();
			stats[nstats++] = optarg;
			break;
		default: usage();
		}
	}
	if (optind != argc - 1 || interval < 0)
		usage();
	name = argv[optind];
	setvbuf(stdout, NULL, _IOLBF, 0);

	ctl_fd = open("/dev/mapper/control", O_RDWR);
	if (ctl_fd < 0) {
		perror("dmc-sample: /dev/mapper/control");
		return 1;
	}
	if (event_nr(&ev))
		return 1;

	/* The state before the action, stamped t = 0. */
	t0 = now_ms();
	if (!resume && sample(0, stats, nstats, &hyd, &tot, &mode))
		return 1;
	if (resume) {
		t0 = now_ms();
		if (do_resume())
			return 1;
		/* The table is live only now. */
		if (sample(now_ms() - t0, stats, nstats, &hyd, &tot, &mode))
			return 1;
	} else if (msg) {
		t0 = now_ms();
		if (do_message(msg))
			return 1;
	}

	if (duration > 0) {
		while ((t = now_ms() - t0) < duration) {
			sleep_ms(interval > 0 && interval < duration - t ? interval : duration - t);
			if (interval > 0 && now_ms() - t0 < duration &&
			    sample(now_ms() - t0, stats, nstats, &hyd, &tot, &mode))
				return 1;
		}
		return sample(now_ms() - t0, stats, nstats, &hyd, &tot, &mode) ? 1 : 0;
	}

	if (interval > 0) {
		for (;;) {
			t = now_ms() - t0;
			if (t > 0 && sample(t, stats, nstats, &hyd, &tot, &mode))
				return 1;
			if (mode)
				return 3;
			if (hyd == tot)
				return 0;
			if (timeout > 0 && t >= timeout * 1e3)
				return 2;
			sleep_ms(interval);
		}
	}

	/* Wait for dm events (the last region, a mode change) until done. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;	/* no SA_RESTART: the wait returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
	if (timeout > 0)
		alarm((unsigned int)(timeout + 0.999));
	for (;;) {
		if (mode)
			return 3;
		if (hyd == tot)
			return 0;
		r = wait_event(&ev);
		if (r < 0)
			return 1;
		if (sample(now_ms() - t0, stats, nstats, &hyd, &tot, &mode))
			return 1;
		if (r == 1)
			return mode ? 3 : hyd == tot ? 4 : 2;
	}
}
