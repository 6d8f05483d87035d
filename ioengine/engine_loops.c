/* thinp_losetup=1: the pool's files reached through loop devices, as Docker's
 * loop-lvm put dm-thin's bios on /dev/loopN over its sparse files. With
 * thinp_mode=loop the engine attaches buffered loops itself and the pool opens
 * them O_DIRECT: each IO then reaches the loop driver at once, as a bio from
 * dm-thin does, and the loop writes it into the file's page cache (a buffered
 * open of the loop would add a second page cache above the loop and defer its
 * hop to writeback). With thinp_mode=direct libthinp attaches them
 * --direct-io=on. Either way with autoclear: a loop detaches itself when its
 * last opener closes, so a killed fio leaves none behind. The engine also
 * finds which loops those are and reads their block-layer counters, so a
 * stats file shows the IO really went through the loop driver; and it counts
 * the pool's devices over the IO phase alone (io_phase), loops or block devices. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

static const char *const loop_role[LOOP_NR] = { "data", "metadata" };

int loops_check_root(struct thread_data *td, const struct thinp_options *o)
{
	/* the library would fail with EPERM on /dev/loop-control; say what to do instead */
	if (!o->losetup || geteuid() == 0)
		return 0;
	return job_fail(td, EPERM,
	                "thinp_losetup=1 attaches loop devices, which needs root (uid %u): run "
	                "fio as root, or drop thinp_losetup to reach the pool's files through "
	                "the page cache directly",
	                (unsigned)geteuid());
}

/* The first line of /sys/block/NAME/loop/FILE into BUF; false if unreadable. */
static bool read_sys(const char *name, const char *file, char *buf, size_t len)
{
	char path[128];
	snprintf(path, sizeof(path), "/sys/block/%s/%s", name, file);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = '\0';
	return ok;
}

void loops_find(const char *data, const char *meta, struct pool_loops *out)
{
	const char *want[LOOP_NR] = { data, meta };
	memset(out, 0, sizeof(*out));
	DIR *d = opendir("/sys/block");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		char backing[4096];
		if (strncmp(e->d_name, "loop", 4) || strlen(e->d_name) >= sizeof(out->name[0]) ||
		    !read_sys(e->d_name, "loop/backing_file", backing, sizeof(backing)))
			continue;
		/* only an autoclear loop is one libthinp attached for this open */
		char ac[8];
		if (!read_sys(e->d_name, "loop/autoclear", ac, sizeof(ac)) || ac[0] != '1')
			continue;
		for (int i = 0; i < LOOP_NR; i++)
			if (!out->name[i][0] && !strcmp(backing, want[i]))
				snprintf(out->name[i], sizeof(out->name[i]), "%s", e->d_name);
	}
	closedir(d);
	note("thinp: the pool's data and metadata through loop devices /dev/%s + /dev/%s "
	     "(buffered, autoclear)\n",
	     out->name[LOOP_DATA][0] ? out->name[LOOP_DATA] : "(not found)",
	     out->name[LOOP_META][0] ? out->name[LOOP_META] : "(not found)");
}

/* The counters in the /sys stat file PATH into C; false if unreadable. */
static bool read_stat(const char *path, struct loop_counters *c)
{
	char line[512];
	FILE *fp = fopen(path, "r");
	if (!fp)
		return false;
	bool ok = fgets(line, (int)sizeof(line), fp) != NULL;
	fclose(fp);
	if (!ok)
		return false;
	/* Documentation/block/stat.rst: reads, merges, sectors, ticks, writes, merges,
	 * sectors, ticks, in_flight, io_ticks, queue time, 4 discard fields, flushes */
	uint64_t f[17] = { 0 };
	int n = sscanf(line,
	               "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
	               " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
	               " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
	               &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10],
	               &f[11], &f[12], &f[13], &f[14], &f[15], &f[16]);
	if (n < 7)
		return false;
	*c = (struct loop_counters){ .reads = f[0],
		                     .read_sectors = f[2],
		                     .writes = f[4],
		                     .write_sectors = f[6],
		                     .flushes = n >= 16 ? f[15] : 0,
		                     .read_ticks = f[3],
		                     .write_ticks = f[7],
		                     .flush_ticks = n >= 17 ? f[16] : 0,
		                     .io_ticks = n >= 10 ? f[9] : 0,
		                     .time_in_queue = n >= 11 ? f[10] : 0 };
	return true;
}

void loops_read(const struct pool_loops *l, struct loop_counters now[LOOP_NR])
{
	memset(now, 0, sizeof(struct loop_counters) * LOOP_NR);
	for (int i = 0; i < LOOP_NR; i++) {
		char path[128];
		if (!l->name[i][0])
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/stat", l->name[i]);
		if (!read_stat(path, &now[i]))
			memset(&now[i], 0, sizeof(now[i]));
	}
}

void loops_add(struct loop_counters acc[LOOP_NR], const struct loop_counters now[LOOP_NR],
               const struct loop_counters base[LOOP_NR])
{
	for (int i = 0; i < LOOP_NR; i++) {
		acc[i].reads += now[i].reads - base[i].reads;
		acc[i].read_sectors += now[i].read_sectors - base[i].read_sectors;
		acc[i].writes += now[i].writes - base[i].writes;
		acc[i].write_sectors += now[i].write_sectors - base[i].write_sectors;
		acc[i].flushes += now[i].flushes - base[i].flushes;
		acc[i].read_ticks += now[i].read_ticks - base[i].read_ticks;
		acc[i].write_ticks += now[i].write_ticks - base[i].write_ticks;
		acc[i].flush_ticks += now[i].flush_ticks - base[i].flush_ticks;
		acc[i].io_ticks += now[i].io_ticks - base[i].io_ticks;
		acc[i].time_in_queue += now[i].time_in_queue - base[i].time_in_queue;
	}
}

/* C's fields as a JSON object's members (after its opening brace and a first member). */
static void counters_json(FILE *f, const struct loop_counters *c)
{
	fprintf(f,
	        ", \"reads\": %" PRIu64 ", \"read_bytes\": %" PRIu64 ", \"writes\": %" PRIu64
	        ", \"write_bytes\": %" PRIu64 ", \"flushes\": %" PRIu64
	        ", \"read_ticks_ms\": %" PRIu64 ", \"write_ticks_ms\": %" PRIu64
	        ", \"flush_ticks_ms\": %" PRIu64 ", \"io_ticks_ms\": %" PRIu64
	        ", \"time_in_queue_ms\": %" PRIu64,
	        c->reads, c->read_sectors * 512, c->writes, c->write_sectors * 512, c->flushes,
	        c->read_ticks, c->write_ticks, c->flush_ticks, c->io_ticks, c->time_in_queue);
}

void loops_json(FILE *f, bool used, const struct pool_loops *l,
                const struct loop_counters c[LOOP_NR])
{
	if (!used) {
		fprintf(f, "null");
		return;
	}
	fprintf(f, "{");
	for (int i = 0; i < LOOP_NR; i++) {
		fprintf(f, "%s\n      \"%s\": {\"device\": ", i ? "," : "", loop_role[i]);
		if (l->name[i][0])
			fprintf(f, "\"/dev/%s\"", l->name[i]);
		else
			fprintf(f, "null");
		counters_json(f, &c[i]);
		fprintf(f, "}");
	}
	fprintf(f, "\n    }");
}

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Each device's counters now (zeros where it has no stat file). */
static void phase_read(const struct io_phase *p, struct loop_counters now[LOOP_NR])
{
	memset(now, 0, sizeof(struct loop_counters) * LOOP_NR);
	for (int i = 0; i < LOOP_NR; i++)
		if (p->stat[i][0] && !read_stat(p->stat[i], &now[i]))
			memset(&now[i], 0, sizeof(now[i]));
}

void phase_begin(struct io_phase *p, const char *data, const char *meta, const struct pool_loops *l)
{
	const char *path[LOOP_NR] = { data, meta };
	for (int i = 0; i < LOOP_NR; i++) {
		struct stat st;
		p->stat[i][0] = p->dev[i][0] = '\0';
		if (l->name[i][0]) {
			snprintf(p->stat[i], sizeof(p->stat[i]), "/sys/block/%s/stat", l->name[i]);
			snprintf(p->dev[i], sizeof(p->dev[i]), "/dev/%s", l->name[i]);
		} else if (path[i] && !stat(path[i], &st) && S_ISBLK(st.st_mode)) {
			/* (a partition's MAJ:MIN has its own stat file too) */
			snprintf(p->stat[i], sizeof(p->stat[i]), "/sys/dev/block/%u:%u/stat",
			         major(st.st_rdev), minor(st.st_rdev));
			snprintf(p->dev[i], sizeof(p->dev[i]), "%s", path[i]);
		}
	}
	phase_read(p, p->base);
	p->t0_ns = mono_ns();
	p->running = true;
}

void phase_end(struct io_phase *p)
{
	if (!p->running)
		return;
	struct loop_counters now[LOOP_NR];
	phase_read(p, now);
	p->window_ns += mono_ns() - p->t0_ns;
	loops_add(p->acc, now, p->base);
	p->running = false;
}

void phase_json(FILE *f, const struct io_phase *p)
{
	if (!p->stat[LOOP_DATA][0] && !p->stat[LOOP_META][0]) {
		fprintf(f, "null");
		return;
	}
	/* a phase still running (jobs of the file not yet ended) counts up to now */
	struct loop_counters c[LOOP_NR];
	memcpy(c, p->acc, sizeof(c));
	uint64_t window = p->window_ns;
	if (p->running) {
		struct loop_counters now[LOOP_NR];
		phase_read(p, now);
		loops_add(c, now, p->base);
		window += mono_ns() - p->t0_ns;
	}
	fprintf(f, "{");
	for (int i = 0; i < LOOP_NR; i++) {
		fprintf(f, "%s\n      \"%s\": ", i ? "," : "", loop_role[i]);
		if (!p->stat[i][0]) {
			fprintf(f, "null");
			continue;
		}
		fprintf(f, "{\"device\": ");
		ts_json_string(f, p->dev[i]);
		counters_json(f, &c[i]);
		fprintf(f, ", \"window_ms\": %.3f}", (double)window / 1e6);
	}
	fprintf(f, "\n    }");
}

/* A sparse file of SIZE bytes at PATH, made for a new pool. */
static int make_file(const char *path, unsigned long long size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r = ftruncate(fd, (off_t)size) ? -errno : 0;
	close(fd);
	if (r)
		unlink(path);
	return r;
}

void loops_release(struct loop_hold *h)
{
	for (int i = 0; i < LOOP_NR; i++) {
		if (h->lock_fd[i] >= 0)
			close(h->lock_fd[i]);
		h->lock_fd[i] = -1;
	}
}

int loops_attach(struct thread_data *td, const struct thinp_options *o, const char *path[LOOP_NR],
                 struct loop_hold *h)
{
	const unsigned long long size[LOOP_NR] = { o->data_size, o->meta_size };
	bool made[LOOP_NR] = { false, false };
	int loop_fd[LOOP_NR] = { -1, -1 };
	int r = 0, i;
	for (i = 0; i < LOOP_NR; i++)
		h->lock_fd[i] = -1;
	for (i = 0; i < LOOP_NR && !r; i++) {
		if (access(path[i], F_OK)) {
			if (!o->create) {
				r = job_fail(
				        td, ENOENT,
				        "no pool at %s + %s: %s is missing (set thinp_create=1 to "
				        "create a new pool)",
				        path[LOOP_DATA], path[LOOP_META], path[i]);
				break;
			}
			int e = make_file(path[i], size[i]);
			if (e) {
				r = job_fail(td, -e, "cannot create %s: %s", path[i], strerror(-e));
				break;
			}
			made[i] = true;
		}
		/* The pool opens the loops O_EXCL, which keeps out other openers of those
		 * loops but not a second loop over the same file: this lock does, as
		 * libthinp's own flock of a file it opens. */
		h->lock_fd[i] = open(path[i], O_RDONLY | O_CLOEXEC);
		if (h->lock_fd[i] < 0 || flock(h->lock_fd[i], LOCK_EX | LOCK_NB)) {
			int e = errno == EWOULDBLOCK ? EBUSY : errno;
			r = job_fail(td, e, "cannot open %s: %s%s", path[i], strerror(e),
			             e == EBUSY ?
			                     " (another process has this pool open; use thread=1 "
			                     "to share one pool between jobs)" :
			                     "");
			break;
		}
		int e = thinp_loop_attach(path[i], false, h->dev[i], sizeof(h->dev[i]),
		                          &loop_fd[i]);
		if (e)
			r = job_fail(td, -e, "cannot attach a loop device to %s: %s", path[i],
			             strerror(-e));
	}
	/* (on success the caller opens h->dev[] before loops_attached closes these) */
	for (i = 0; i < LOOP_NR; i++)
		h->loop_fd[i] = loop_fd[i];
	if (r) {
		loops_attached(h);
		loops_release(h);
		for (i = 0; i < LOOP_NR; i++)
			if (made[i])
				unlink(path[i]);
	}
	return r;
}

void loops_attached(struct loop_hold *h)
{
	/* the pool's own descriptors keep the loops now; with autoclear they go with it */
	for (int i = 0; i < LOOP_NR; i++) {
		if (h->loop_fd[i] >= 0)
			close(h->loop_fd[i]);
		h->loop_fd[i] = -1;
	}
}
