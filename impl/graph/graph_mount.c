/* Activation and mounts (docs/docker-driver.md §6, §7): a device is activated through the
 * backend with the size in its metadata file, its file system type probed from the
 * superblock, and mounted with Docker's options (xfs always `nouuid`: every snapshot
 * carries the base's UUID). */
#include "graph/graph_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int tg_run(char *const argv[], char *out, size_t olen)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return r;
	}
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		/* no descriptor of ours (the bridge's /dev/fuse above all) outlives the exec */
		close_range(3, ~0u, 0);
		execvp(argv[0], argv);
		dprintf(2, "%s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	size_t n = 0;
	char sink[4096];
	for (;;) {
		char *dst = out && n + 1 < olen ? out + n : sink;
		size_t room = out && n + 1 < olen ? olen - 1 - n : sizeof(sink);
		ssize_t k = read(pfd[0], dst, room);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (dst != sink)
			n += (size_t)k;
	}
	close(pfd[0]);
	if (out && olen) {
		out[n] = 0;
		while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
			out[--n] = 0;
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int tg_activate(struct tg_driver *d, struct tg_device *dev, char *err, size_t len)
{
	char name[200], why[512];
	tg_device_name(d, dev->info.hash, name, sizeof(name));
	if (dev->dev[0] && d->ops->is_active(d->be, name))
		return 0;
	int r = d->ops->activate(d->be, name, dev->info.device_id, dev->info.size, dev->dev,
				 sizeof(dev->dev), why, sizeof(why));
	if (r) {
		dev->dev[0] = 0;
		return tg_err(err, len, r, "devmapper: Error activating devmapper device for '%s': %s",
			      dev->info.hash, why);
	}
	return 0;
}

int tg_deactivate(struct tg_driver *d, struct tg_device *dev, bool deferred, char *err,
		  size_t len)
{
	char name[200], why[512] = "";
	tg_device_name(d, dev->info.hash, name, sizeof(name));
	if (!d->ops->is_active(d->be, name)) {
		dev->dev[0] = 0;
		return 0;
	}
	int r = 0;
	for (int tries = 0; tries < 200; tries++) {
		r = d->ops->deactivate(d->be, name, deferred, why, sizeof(why));
		if (r != -EBUSY || deferred)
			break;
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (r)
		return tg_err(err, len, r, "devmapper: Error removing device %s: %s", name, why);
	dev->dev[0] = 0;
	return 0;
}

/* The generic options mount(8) turns into flags (Docker's pkg/mount does the same). */
static const struct {
	const char *name;
	bool clear;
	unsigned long flag;
} mount_flags[] = {
	{"ro", false, MS_RDONLY},          {"rw", true, MS_RDONLY},
	{"nosuid", false, MS_NOSUID},      {"suid", true, MS_NOSUID},
	{"nodev", false, MS_NODEV},        {"dev", true, MS_NODEV},
	{"noexec", false, MS_NOEXEC},      {"exec", true, MS_NOEXEC},
	{"sync", false, MS_SYNCHRONOUS},   {"async", true, MS_SYNCHRONOUS},
	{"dirsync", false, MS_DIRSYNC},    {"mand", false, MS_MANDLOCK},
	{"nomand", true, MS_MANDLOCK},     {"noatime", false, MS_NOATIME},
	{"atime", true, MS_NOATIME},       {"nodiratime", false, MS_NODIRATIME},
	{"diratime", true, MS_NODIRATIME}, {"relatime", false, MS_RELATIME},
	{"norelatime", true, MS_RELATIME}, {"strictatime", false, MS_STRICTATIME},
	{"nostrictatime", true, MS_STRICTATIME}, {"lazytime", false, MS_LAZYTIME},
	{"nolazytime", true, MS_LAZYTIME}, {"defaults", true, 0},
};

void tg_mount_options(const struct tg_driver *d, const char *fs, unsigned long *flags, char *buf,
		      size_t len)
{
	char all[sizeof(d->opt.mountopt) + 16];
	snprintf(all, sizeof(all), "%s%s%s", strcmp(fs, "xfs") ? "" : "nouuid",
		 strcmp(fs, "xfs") || !d->opt.mountopt[0] ? "" : ",", d->opt.mountopt);
	*flags = 0;
	size_t n = 0;
	buf[0] = 0;
	char *save;
	for (char *o = strtok_r(all, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		size_t i;
		for (i = 0; i < sizeof(mount_flags) / sizeof(mount_flags[0]); i++)
			if (!strcmp(o, mount_flags[i].name))
				break;
		if (i < sizeof(mount_flags) / sizeof(mount_flags[0])) {
			if (mount_flags[i].clear)
				*flags &= ~mount_flags[i].flag;
			else
				*flags |= mount_flags[i].flag;
			continue;
		}
		int k = snprintf(buf + n, len - n, "%s%s", n ? "," : "", o);
		if (k > 0 && (size_t)k < len - n)
			n += (size_t)k;
	}
}

/* The tail of the kernel log, as Docker quotes it in a mount failure. */
static void dmesg_tail(char *buf, size_t len)
{
	char out[512];
	char *argv[] = {"sh", "-c", "dmesg | tail -c 256", NULL};
	buf[0] = 0;
	if (!tg_run(argv, out, sizeof(out)))
		tg_copy(buf, len, out);
}

int tg_mount_device(struct tg_driver *d, struct tg_device *dev, const char *dir, char *err,
		    size_t len)
{
	int r = tg_activate(d, dev, err, len);
	if (r)
		return r;
	char fs[16], opts[sizeof(d->opt.mountopt) + 16];
	unsigned long flags;
	if (tg_probe_fs(dev->dev, fs, sizeof(fs)))
		return tg_err(err, len, -EINVAL, "devmapper: Unknown filesystem type on %s",
			      dev->dev);
	tg_mount_options(d, fs, &flags, opts, sizeof(opts));
	if ((r = tg_child_mount(dev->dev, dir, fs, flags, opts))) {
		char tail[300];
		dmesg_tail(tail, sizeof(tail));
		return tg_err(err, len, r, "Failed to mount; dmesg: %s: mount %s on %s: %s", tail,
			      dev->dev, dir, strerror(-r));
	}
	return 0;
}

int tg_unmount(const char *dir, char *err, size_t len)
{
	/* a plain unmount first, so the device is free when it returns; Docker's lazy
	 * detach only when something still holds it */
	int r = tg_child_umount(dir);
	if (!r || r == -EINVAL || r == -ENOENT)
		return 0;
	if (r == -EBUSY && !umount2(dir, MNT_DETACH))
		return 0;
	if (r == -EBUSY)
		r = -errno;
	return tg_err(err, len, r, "Error unmounting %s: %s", dir, strerror(-r));
}

/* mountinfo's field 5 escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
	char *o = s;
	for (char *i = s; *i; i++) {
		if (i[0] == '\\' && i[1] >= '0' && i[1] <= '7' && i[2] && i[3]) {
			*o++ = (char)(((i[1] - '0') << 6) | ((i[2] - '0') << 3) | (i[3] - '0'));
			i += 3;
		} else {
			*o++ = *i;
		}
	}
	*o = 0;
}

static int by_length_desc(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
	return la < lb ? 1 : la > lb ? -1 : 0;
}

void tg_unmount_all(struct tg_driver *d)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	char line[8192], mp[PATH_MAX];
	char **list = NULL;
	size_t nr = 0, rl = strlen(d->root);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		unescape(mp);
		if (strncmp(mp, d->root, rl) || mp[rl] != '/')
			continue;
		char **n = realloc(list, (nr + 1) * sizeof(*n));
		if (!n)
			break;
		list = n;
		if (!(list[nr] = strdup(mp)))
			break;
		nr++;
	}
	fclose(f);
	if (nr)
		qsort(list, nr, sizeof(*list), by_length_desc);
	for (size_t i = 0; i < nr; i++) {
		if (umount2(list[i], MNT_DETACH) && errno != EINVAL)
			tg_log(d, "devmapper: Error unmounting %s: %s", list[i], strerror(errno));
		free(list[i]);
	}
	free(list);
}
