/* The base device (docs/docker-driver.md §6): made once with a real file system, checked by
 * its UUID at every start, and grown when dm.basesize grows. Every layer descends from it. */
#include "graph/graph_internal.h"
#include "graph/graph_units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Docker's determineDefaultFS: xfs when mkfs.xfs runs and the kernel has xfs, else ext4. */
static void default_fs(struct tg_driver *d, char *fs, size_t len)
{
	char out[256];
	char *argv[] = {"mkfs.xfs", "-V", NULL};
	bool xfs = tg_run(argv, out, sizeof(out)) == 0;
	if (xfs) {
		xfs = false;
		FILE *f = fopen("/proc/filesystems", "re");
		char line[128];
		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, "\txfs\n"))
				xfs = true;
		if (f)
			fclose(f);
	}
	if (!xfs)
		tg_log(d, "devmapper: XFS is not supported in your system. Either the kernel doesn't "
			  "support it or mkfs.xfs is not in your PATH. Defaulting to ext4 filesystem");
	snprintf(fs, len, "%s", xfs ? "xfs" : "ext4");
}

static int save_set(struct tg_driver *d, char *err, size_t len)
{
	char why[512];
	d->ds.next_device_id = d->ids.next;
	int r = tg_meta_save_deviceset(d->meta_dir, &d->ds, why, sizeof(why));
	return r ? tg_err(err, len, r, "%s", why) : 0;
}

static int mkfs(struct tg_driver *d, const char *fs, const char *dev, char *err, size_t len)
{
	char *argv[TG_MAX_MKFSARGS + 8];
	char out[4096];
	int n = 0, r;
	if (!strcmp(fs, "ext4")) {
		char lazy[] = "nodiscard,lazy_itable_init=0,lazy_journal_init=0";
		for (int attempt = 0; attempt < 2; attempt++) {
			n = 0;
			argv[n++] = "mkfs.ext4";
			argv[n++] = "-E";
			/* older e2fsprogs lack lazy_journal_init: Docker retries without it */
			argv[n++] = attempt ? "nodiscard,lazy_itable_init=0" : lazy;
			for (unsigned i = 0; i < d->opt.nr_mkfsargs; i++)
				argv[n++] = d->opt.mkfsargs[i];
			argv[n++] = (char *)dev;
			argv[n] = NULL;
			if (!(r = tg_run(argv, out, sizeof(out))))
				break;
		}
		if (r)
			return tg_err(err, len, -EIO, "devmapper: mkfs.ext4 %s failed (%d): %s", dev, r,
				      out);
		char *tune[] = {"tune2fs", "-c", "-1", "-i", "0", (char *)dev, NULL};
		if ((r = tg_run(tune, out, sizeof(out))))
			return tg_err(err, len, -EIO, "devmapper: tune2fs %s failed (%d): %s", dev, r,
				      out);
		return 0;
	}
	argv[n++] = "mkfs.xfs";
	for (unsigned i = 0; i < d->opt.nr_mkfsargs; i++)
		argv[n++] = d->opt.mkfsargs[i];
	argv[n++] = (char *)dev;
	argv[n] = NULL;
	if ((r = tg_run(argv, out, sizeof(out))))
		return tg_err(err, len, -EIO, "devmapper: mkfs.xfs %s failed (%d): %s", dev, r, out);
	return 0;
}

static int read_uuid(const char *dev, char *uuid, size_t ulen, char *err, size_t len)
{
	char *argv[] = {"blkid", "-p", "-s", "UUID", "-o", "value", (char *)dev, NULL};
	char out[256];
	int r = tg_run(argv, out, sizeof(out));
	if (r || !out[0])
		return tg_err(err, len, -EIO, "Error running blkid on %s (%d): %s", dev, r, out);
	tg_copy(uuid, ulen, out);
	return 0;
}

/* ext4 offline: what is left when the online resize is refused (it needs CAP_SYS_RESOURCE,
 * which a container may lack); resize2fs wants a fresh fsck of an unmounted file system. */
static int grow_ext4_offline(struct tg_driver *d, const char *dev, char *err, size_t len)
{
	char out[4096];
	char *fsck[] = {"e2fsck", "-f", "-p", (char *)dev, NULL};
	int r = tg_run(fsck, out, sizeof(out));
	if (r & ~1) /* 1: errors corrected */
		return tg_err(err, len, -EIO, "Failed to grow rootfs:e2fsck %d:%s", r, out);
	char *grow[] = {"resize2fs", (char *)dev, NULL};
	if ((r = tg_run(grow, out, sizeof(out))))
		return tg_err(err, len, -EIO, "Failed to grow rootfs:%d:%s", r, out);
	tg_log(d, "devmapper: the online resize of %s was refused: grown offline", dev);
	return 0;
}

int tg_grow_fs(struct tg_driver *d, struct tg_device *dev, char *err, size_t len)
{
	char dir[PATH_MAX + 16], out[4096], fs[16] = "";
	snprintf(dir, sizeof(dir), "%s/growmnt", d->run_dir);
	if (mkdir(dir, 0700) && errno != EEXIST)
		return tg_err(err, len, -errno, "Error creating %s: %s", dir, strerror(errno));
	/* Docker's way: mount, then resize2fs / xfs_growfs on the mounted file system */
	int r = tg_mount_device(d, dev, dir, err, len), rr = 0;
	if (!r) {
		tg_probe_fs(dev->dev, fs, sizeof(fs));
		char *ext[] = {"resize2fs", dev->dev, NULL};
		char *xfs[] = {"xfs_growfs", dir, NULL};
		rr = tg_run(strcmp(fs, "xfs") ? ext : xfs, out, sizeof(out));
		char why[512];
		tg_unmount(dir, why, sizeof(why));
	}
	rmdir(dir);
	if (!r && rr) {
		if (!strcmp(fs, "ext4") && strstr(out, "Permission denied"))
			r = grow_ext4_offline(d, dev->dev, err, len);
		else
			r = tg_err(err, len, -EIO, "Failed to grow rootfs:%d:%s", rr, out);
	}
	char why[512];
	tg_deactivate(d, dev, false, why, sizeof(why));
	return r;
}

static int check_grow(struct tg_driver *d, struct tg_device *base, char *err, size_t len)
{
	if (!d->opt.basesize_set || d->opt.basesize == base->info.size)
		return 0;
	if (d->opt.basesize < base->info.size) {
		char h[32];
		tg_human_size(base->info.size, false, h, sizeof(h));
		return tg_err(err, len, -EINVAL, "devmapper: Base device size cannot be smaller than %s",
			      h);
	}
	char why[512];
	uint64_t old = base->info.size;
	base->info.size = d->opt.basesize;
	int r = tg_meta_save_device(d->meta_dir, &base->info, why, sizeof(why));
	if (r) {
		base->info.size = old;
		return tg_err(err, len, r, "%s", why);
	}
	return tg_grow_fs(d, base, err, len);
}

static int verify_base(struct tg_driver *d, struct tg_device *base, char *err, size_t len)
{
	char why[512], uuid[64], fs[16];
	int r = tg_activate(d, base, err, len);
	if (r)
		return r;
	r = read_uuid(base->dev, uuid, sizeof(uuid), why, sizeof(why));
	if (!r && d->ds.base_uuid[0] && strcmp(uuid, d->ds.base_uuid))
		r = tg_err(why, sizeof(why), -EINVAL,
			   "devmapper: Current Base Device UUID:%s does not match with stored UUID:%s. "
			   "Possibly using a different thin pool than last invocation",
			   uuid, d->ds.base_uuid);
	if (r) {
		tg_deactivate(d, base, false, NULL, 0);
		return tg_err(err, len, r, "devmapper: Base Device UUID and Filesystem verification "
					   "failed: %s", why);
	}
	bool save = false;
	if (!d->ds.base_uuid[0]) {
		snprintf(d->ds.base_uuid, sizeof(d->ds.base_uuid), "%s", uuid);
		save = true;
	}
	if (!d->ds.base_fs[0] && !tg_probe_fs(base->dev, fs, sizeof(fs))) {
		tg_copy(d->ds.base_fs, sizeof(d->ds.base_fs), fs);
		save = true;
	}
	tg_deactivate(d, base, false, NULL, 0);
	if (save && (r = save_set(d, err, len)))
		return r;
	if (strcmp(d->opt.fs, d->ds.base_fs))
		tg_log(d, "devmapper: Base device already exists and has filesystem %s on it. User "
			  "specified filesystem %s will be ignored.", d->ds.base_fs, d->opt.fs);
	return check_grow(d, base, err, len);
}

int tg_setup_base(struct tg_driver *d, char *err, size_t len)
{
	char why[512];
	struct tg_device *base = tg_find(d, "");
	if (base && base->info.initialized && !base->info.deleted)
		return verify_base(d, base, err, len);
	if (base) {
		/* a base left half made by a crash (its file system unfinished): made again */
		tg_log(d, "devmapper: Removing uninitialized base image");
		int r = tg_delete_device(d, base, true, why, sizeof(why));
		if (r)
			return tg_err(err, len, r, "devmapper: Error removing uninitialized base image: %s",
				      why);
	}
	/* Docker's checkThinPool: a named pool is taken over only while it is still unused */
	if (!base && d->opt.thinpooldev[0]) {
		struct tg_pool_info pi;
		int r = d->ops->status(d->be, &pi, why, sizeof(why));
		if (r)
			return tg_err(err, len, r, "devmapper: Error getting pool status: %s", why);
		if (pi.data_used || pi.transaction_id)
			return tg_err(err, len, -EINVAL,
				      "devmapper: Unable to take ownership of thin-pool (%s) that already "
				      "has %s", d->opt.thinpooldev,
				      pi.data_used ? "used data blocks" : "non-zero transaction ID");
	}
	char fs[8];
	if (d->opt.fs[0])
		snprintf(fs, sizeof(fs), "%s", d->opt.fs);
	else
		default_fs(d, fs, sizeof(fs));
	int r = tg_create_device(d, "", NULL, d->opt.basesize, &base, err, len);
	if (r)
		return r;
	if ((r = tg_activate(d, base, err, len)))
		return r;
	tg_copy(d->ds.base_fs, sizeof(d->ds.base_fs), fs);
	if ((r = save_set(d, err, len)) || (r = mkfs(d, fs, base->dev, err, len))) {
		tg_deactivate(d, base, false, NULL, 0);
		return r;
	}
	base->info.initialized = true;
	r = tg_meta_save_device(d->meta_dir, &base->info, why, sizeof(why));
	if (r) {
		tg_deactivate(d, base, false, NULL, 0);
		return tg_err(err, len, r, "%s", why);
	}
	r = read_uuid(base->dev, d->ds.base_uuid, sizeof(d->ds.base_uuid), why, sizeof(why));
	tg_deactivate(d, base, false, NULL, 0);
	if (r)
		return tg_err(err, len, r, "devmapper: Could not query and save base device UUID:%s",
			      why);
	return save_set(d, err, len);
}
