/* Unit tests for impl/io: file, block, mem and fault-injecting devices. */
#include "io/dev.h"
#include "support/dev_fault.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define KiB 1024ull
#define MiB (1024ull * KiB)

/* Set once in main() before any test forks; read-only afterwards. Check's
 * fixtures take no arguments, so file scope is the only way to hand the
 * scratch directory and loop device to the tests. */
static char scratch_dir[PATH_MAX];
static char loop_dev[64];
static char loop_skip_reason[256];

static void scratch_path(char *buf, size_t len, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", scratch_dir, name);
	ck_assert(n > 0 && (size_t)n < len);
}

static void pattern(void *buf, size_t len, unsigned seed)
{
	unsigned char *p = buf;

	/* Never zero, so a zeroed byte is always detectable. */
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)((i * 31 + seed * 7) % 251 + 1);
}

static int is_pattern(const void *buf, size_t len, unsigned seed, size_t start)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char)(((start + i) * 31 + seed * 7) % 251 + 1))
			return 0;
	return 1;
}

static int is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

static int all_bytes(const void *buf, size_t len, unsigned char v)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

static struct stat stat_path(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st;
}

static void ctr_is_zero(const struct tp_io_counters *c)
{
	static const struct tp_io_counters zero;

	ck_assert(memcmp(c, &zero, sizeof(zero)) == 0);
}

/* Probe whether the scratch filesystem can punch holes, so tests that
 * depend on it can tell "unsupported" from "broken". */
static int fs_can_punch(void)
{
	char path[PATH_MAX];
	int fd, ok;

	scratch_path(path, sizeof(path), ".punch-probe");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return 0;
	ok = ftruncate(fd, 8192) == 0 &&
	     fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0;
	close(fd);
	unlink(path);
	return ok;
}

/* ---- file device --------------------------------------------------------------------------- */

START_TEST(test_file_create_sparse)
{
	char path[PATH_MAX];
	struct tp_dev *d;
	struct stat st;

	scratch_path(path, sizeof(path), "sparse.img");
	ck_assert_int_eq(tp_dev_open_file(path, 0, 0, &d), -ENOENT);
	ck_assert_ptr_null(d);
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_CREATE | TP_DEV_RDONLY, MiB, &d), -EINVAL);

	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_CREATE, 64 * MiB, &d), 0);
	ck_assert_uint_eq(d->size, 64 * MiB);
	ck_assert_uint_eq(d->align, 1);
	ck_assert_str_eq(d->name, path);
	struct tp_io_counters now = tp_dev_ctr(d);
	ctr_is_zero(&now);
	st = stat_path(path);
	ck_assert_int_eq(st.st_size, 64 * MiB);
	ck_assert_int_eq(st.st_blocks, 0);
	tp_dev_close(d);

	/* An existing file keeps its size even if CREATE asks for another. */
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_CREATE, 8 * MiB, &d), 0);
	ck_assert_uint_eq(d->size, 64 * MiB);
	tp_dev_close(d);

	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_RDONLY, 0, &d), 0);
	ck_assert_uint_eq(d->size, 64 * MiB);
	{
		char b[16] = { 0 };
		ck_assert_int_eq(tp_dev_pwrite(d, b, sizeof(b), 0), -EROFS);
		ck_assert_int_eq(tp_dev_write_zeroes(d, 0, 4096), -EROFS);
		ck_assert_int_eq(tp_dev_resize(d, MiB), -EROFS);
		ck_assert_uint_eq(tp_dev_ctr(d).writes, 0);
	}
	tp_dev_close(d);

	/* A directory is not a device. */
	ck_assert_int_lt(tp_dev_open_file(scratch_dir, TP_DEV_RDONLY, 0, &d), 0);
	ck_assert_ptr_null(d);
	unlink(path);
}
END_TEST

START_TEST(test_file_roundtrip)
{
	char path[PATH_MAX];
	struct tp_dev *d;
	static unsigned char w[300 * KiB], r[300 * KiB];
	/* Unaligned offsets and lengths on purpose: buffered IO allows them. */
	const struct {
		uint64_t off;
		size_t len;
	} io[] = {
		{ 0, 4096 },
		{ 4096 * 3 + 17, 1000 },
		{ MiB - 300 * KiB, 300 * KiB },
		{ 200000, 1 },
	};

	scratch_path(path, sizeof(path), "rt.img");
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_CREATE, MiB, &d), 0);
	for (unsigned i = 0; i < sizeof(io) / sizeof(io[0]); i++) {
		pattern(w, io[i].len, i);
		ck_assert_int_eq(tp_dev_pwrite(d, w, io[i].len, io[i].off), 0);
		memset(r, 0, io[i].len);
		ck_assert_int_eq(tp_dev_pread(d, r, io[i].len, io[i].off), 0);
		ck_assert(memcmp(w, r, io[i].len) == 0);
	}
	ck_assert_int_eq(tp_dev_flush(d), 0);
	tp_dev_close(d);

	/* The data survives a reopen (the last write of each range wins). */
	ck_assert_int_eq(tp_dev_open_file(path, 0, 0, &d), 0);
	ck_assert_int_eq(tp_dev_pread(d, r, 300 * KiB, MiB - 300 * KiB), 0);
	ck_assert(is_pattern(r, 300 * KiB, 2, 0));
	ck_assert_int_eq(tp_dev_pread(d, r, 1000, 4096 * 3 + 17), 0);
	ck_assert(is_pattern(r, 1000, 1, 0));

	/* Out of range: refused, nothing counted, file not extended. */
	ck_assert_int_eq(tp_dev_pwrite(d, w, 2, MiB - 1), -EINVAL);
	ck_assert_int_eq(tp_dev_pread(d, r, 1, MiB), -EINVAL);
	ck_assert_int_eq(tp_dev_pread(d, r, 1, UINT64_MAX), -EINVAL);
	ck_assert_int_eq(tp_dev_write_zeroes(d, MiB - 4096, 8192), -EINVAL);
	ck_assert_int_eq(tp_dev_discard(d, 0, MiB + 1), -EINVAL);
	ck_assert_uint_eq(tp_dev_ctr(d).writes, 0);
	ck_assert_uint_eq(tp_dev_ctr(d).reads, 2);
	ck_assert_uint_eq(tp_dev_ctr(d).zero_ops, 0);
	ck_assert_uint_eq(tp_dev_ctr(d).discards, 0);
	ck_assert_int_eq(stat_path(path).st_size, MiB);
	tp_dev_close(d);
	unlink(path);
}
END_TEST

static void exercise_counters(struct tp_dev *d)
{
	unsigned char buf[8192];
	struct tp_io_counters c;

	pattern(buf, sizeof(buf), 5);
	ck_assert_int_eq(tp_dev_pwrite(d, buf, 8192, 0), 0);
	ck_assert_int_eq(tp_dev_pwrite(d, buf, 100, 10000), 0);
	ck_assert_int_eq(tp_dev_pwrite(d, buf, 4096, 65536), 0);
	ck_assert_int_eq(tp_dev_pread(d, buf, 512, 0), 0);
	ck_assert_int_eq(tp_dev_pread(d, buf, 8192, 4096), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);
	ck_assert_int_eq(tp_dev_write_zeroes(d, 4096, 8192), 0);
	ck_assert_int_eq(tp_dev_write_zeroes(d, 100000, 1000), 0);
	ck_assert_int_eq(tp_dev_discard(d, 65536, 65536), 0);

	c = tp_dev_ctr(d);
	ck_assert_uint_eq(c.writes, 3);
	ck_assert_uint_eq(c.bytes_written, 8192 + 100 + 4096);
	ck_assert_uint_eq(c.reads, 2);
	ck_assert_uint_eq(c.bytes_read, 512 + 8192);
	ck_assert_uint_eq(c.flushes, 2);
	ck_assert_uint_eq(c.zero_ops, 2);
	ck_assert_uint_eq(c.bytes_zeroed, 8192 + 1000);
	ck_assert_uint_eq(c.discards, 1);
	ck_assert_uint_eq(c.bytes_discarded, 65536);
}

START_TEST(test_file_counters)
{
	char path[PATH_MAX];
	struct tp_dev *d;

	scratch_path(path, sizeof(path), "ctr.img");
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_CREATE, MiB, &d), 0);
	exercise_counters(d);
	tp_dev_close(d);
	unlink(path);
}
END_TEST

/* Zero a range in the middle of patterned data: inside reads zero, outside
 * is untouched, and the bytes land in bytes_zeroed, not bytes_written. */
static void check_write_zeroes(struct tp_dev *d)
{
	static unsigned char buf[256 * KiB];
	const uint64_t zoff = 4096 + 100, zlen = 70000;

	pattern(buf, sizeof(buf), 9);
	ck_assert_int_eq(tp_dev_pwrite(d, buf, sizeof(buf), 0), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);
	ck_assert_int_eq(tp_dev_write_zeroes(d, zoff, zlen), 0);
	ck_assert_int_eq(tp_dev_write_zeroes(d, 0, 0), 0);

	memset(buf, 0xee, sizeof(buf));
	ck_assert_int_eq(tp_dev_pread(d, buf, sizeof(buf), 0), 0);
	ck_assert(is_pattern(buf, zoff, 9, 0));
	ck_assert(is_zero(buf + zoff, zlen));
	ck_assert(is_pattern(buf + zoff + zlen, sizeof(buf) - zoff - zlen, 9, zoff + zlen));

	ck_assert_uint_eq(tp_dev_ctr(d).zero_ops, 2);
	ck_assert_uint_eq(tp_dev_ctr(d).bytes_zeroed, zlen);
	ck_assert_uint_eq(tp_dev_ctr(d).writes, 1);
	ck_assert_uint_eq(tp_dev_ctr(d).bytes_written, sizeof(buf));
}

START_TEST(test_file_write_zeroes)
{
	char path[PATH_MAX];
	struct tp_dev *d;

	scratch_path(path, sizeof(path), "zero.img");
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_CREATE, MiB, &d), 0);
	check_write_zeroes(d);
	tp_dev_close(d);
	unlink(path);
}
END_TEST

/* tmpfs has PUNCH_HOLE but not ZERO_RANGE, so this takes the fallback. */
START_TEST(test_file_write_zeroes_tmpfs)
{
	char dir[] = "/dev/shm/thinp-test-XXXXXX";
	char path[PATH_MAX];
	struct statfs sfs;
	struct tp_dev *d;

	if (statfs("/dev/shm", &sfs) < 0 || sfs.f_type != 0x01021994 /* TMPFS_MAGIC */) {
		printf("SKIP test_file_write_zeroes_tmpfs: /dev/shm is not tmpfs\n");
		return;
	}
	if (!mkdtemp(dir)) {
		printf("SKIP test_file_write_zeroes_tmpfs: mkdtemp /dev/shm: %s\n",
		       strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/zero.img", dir);
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_CREATE, MiB, &d), 0);
	check_write_zeroes(d);
	tp_dev_close(d);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(test_file_discard)
{
	char path[PATH_MAX];
	static unsigned char buf[MiB];
	struct tp_dev *d;
	blkcnt_t before, after;

	scratch_path(path, sizeof(path), "discard.img");
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_CREATE, MiB, &d), 0);
	pattern(buf, sizeof(buf), 3);
	ck_assert_int_eq(tp_dev_pwrite(d, buf, sizeof(buf), 0), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);
	before = stat_path(path).st_blocks;
	ck_assert_int_gt(before, 0);

	ck_assert_int_eq(tp_dev_discard(d, 256 * KiB, 512 * KiB), 0);
	ck_assert_uint_eq(tp_dev_ctr(d).discards, 1);
	ck_assert_uint_eq(tp_dev_ctr(d).bytes_discarded, 512 * KiB);
	ck_assert_uint_eq(tp_dev_ctr(d).bytes_written, MiB);
	ck_assert_uint_eq(tp_dev_ctr(d).bytes_zeroed, 0);
	ck_assert_uint_eq(d->size, MiB);
	ck_assert_int_eq(stat_path(path).st_size, MiB);

	ck_assert_int_eq(tp_dev_pread(d, buf, sizeof(buf), 0), 0);
	ck_assert(is_pattern(buf, 256 * KiB, 3, 0));
	ck_assert(is_pattern(buf + 768 * KiB, 256 * KiB, 3, 768 * KiB));
	if (fs_can_punch()) {
		after = stat_path(path).st_blocks;
		ck_assert_int_lt(after, before);
		ck_assert(is_zero(buf + 256 * KiB, 512 * KiB));
	} else {
		printf("NOTE test_file_discard: %s cannot punch holes; discard was a no-op\n",
		       scratch_dir);
	}
	tp_dev_close(d);
	unlink(path);
}
END_TEST

START_TEST(test_file_resize)
{
	char path[PATH_MAX];
	unsigned char buf[8192];
	struct tp_dev *d;

	scratch_path(path, sizeof(path), "resize.img");
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_CREATE, MiB, &d), 0);
	pattern(buf, sizeof(buf), 1);
	ck_assert_int_eq(tp_dev_pwrite(d, buf, sizeof(buf), MiB - sizeof(buf)), 0);

	ck_assert_int_eq(tp_dev_resize(d, 4 * MiB), 0);
	ck_assert_uint_eq(d->size, 4 * MiB);
	ck_assert_int_eq(stat_path(path).st_size, 4 * MiB);
	ck_assert_int_eq(tp_dev_pread(d, buf, sizeof(buf), MiB - sizeof(buf)), 0);
	ck_assert(is_pattern(buf, sizeof(buf), 1, 0));
	ck_assert_int_eq(tp_dev_pread(d, buf, sizeof(buf), 4 * MiB - sizeof(buf)), 0);
	ck_assert(is_zero(buf, sizeof(buf)));
	ck_assert_int_eq(tp_dev_pwrite(d, buf, sizeof(buf), 4 * MiB - sizeof(buf)), 0);

	ck_assert_int_eq(tp_dev_resize(d, 512 * KiB), 0);
	ck_assert_uint_eq(d->size, 512 * KiB);
	ck_assert_int_eq(stat_path(path).st_size, 512 * KiB);
	ck_assert_int_eq(tp_dev_pread(d, buf, 1, 512 * KiB), -EINVAL);

	/* Someone else grows the file: refresh_size picks it up. */
	ck_assert_int_eq(truncate(path, 2 * MiB), 0);
	ck_assert_uint_eq(d->size, 512 * KiB);
	ck_assert_int_eq(d->ops->refresh_size(d), 0);
	ck_assert_uint_eq(d->size, 2 * MiB);
	ck_assert_int_eq(tp_dev_pread(d, buf, sizeof(buf), 2 * MiB - sizeof(buf)), 0);
	tp_dev_close(d);
	unlink(path);
}
END_TEST

START_TEST(test_file_excl)
{
	char path[PATH_MAX];
	struct tp_dev *a, *b;

	scratch_path(path, sizeof(path), "excl.img");
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_CREATE | TP_DEV_EXCL, MiB, &a), 0);
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_EXCL, 0, &b), -EBUSY);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_CREATE | TP_DEV_EXCL, MiB, &b), -EBUSY);
	ck_assert_int_eq(tp_dev_open(path, TP_DEV_EXCL | TP_DEV_RDONLY, 0, &b), -EBUSY);
	/* A failed EXCL open of an existing file must not delete it. */
	ck_assert_int_eq(access(path, F_OK), 0);
	tp_dev_close(a);

	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_EXCL, 0, &b), 0);
	ck_assert_uint_eq(b->size, MiB);
	tp_dev_close(b);
	unlink(path);
}
END_TEST

START_TEST(test_file_direct)
{
	char path[PATH_MAX];
	struct tp_dev *d, *plain;
	void *buf;
	int r;

	scratch_path(path, sizeof(path), "direct.img");
	r = tp_dev_open_file(path, TP_DEV_CREATE | TP_DEV_DIRECT, 4 * MiB, &d);
	if (r == -EINVAL) {
		printf("SKIP test_file_direct: the filesystem under %s refuses O_DIRECT (EINVAL)\n",
		       scratch_dir);
		unlink(path);
		return;
	}
	ck_assert_int_eq(r, 0);
	ck_assert_uint_ge(d->align, 4096);
	ck_assert_uint_eq(d->align & (d->align - 1), 0);
	ck_assert_int_eq(posix_memalign(&buf, d->align, 64 * KiB), 0);

	pattern(buf, 64 * KiB, 4);
	ck_assert_int_eq(tp_dev_pwrite(d, buf, 64 * KiB, 8192), 0);
	memset(buf, 0, 64 * KiB);
	ck_assert_int_eq(tp_dev_pread(d, buf, 64 * KiB, 8192), 0);
	ck_assert(is_pattern(buf, 64 * KiB, 4, 0));
	ck_assert_int_eq(tp_dev_write_zeroes(d, 8192 + 16 * KiB, 16 * KiB), 0);
	ck_assert_int_eq(tp_dev_discard(d, MiB, MiB), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);
	ck_assert_int_eq(tp_dev_pread(d, buf, 64 * KiB, 8192), 0);
	ck_assert(is_pattern(buf, 16 * KiB, 4, 0));
	ck_assert(is_zero((char *)buf + 16 * KiB, 16 * KiB));
	ck_assert(is_pattern((char *)buf + 32 * KiB, 32 * KiB, 4, 32 * KiB));
	ck_assert_uint_eq(tp_dev_ctr(d).bytes_written, 64 * KiB);
	ck_assert_uint_eq(tp_dev_ctr(d).bytes_read, 128 * KiB);
	tp_dev_close(d);

	/* The same bytes through the page cache. */
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_RDONLY, 0, &plain), 0);
	ck_assert_int_eq(tp_dev_pread(plain, buf, 16 * KiB, 8192), 0);
	ck_assert(is_pattern(buf, 16 * KiB, 4, 0));
	tp_dev_close(plain);
	free(buf);
	unlink(path);
}
END_TEST

START_TEST(test_dev_open_dispatch)
{
	char path[PATH_MAX];
	struct tp_dev *d;

	scratch_path(path, sizeof(path), "dispatch.img");
	ck_assert_int_eq(tp_dev_open(path, 0, MiB, &d), -ENOENT);
	ck_assert_int_eq(tp_dev_open(path, TP_DEV_CREATE, MiB, &d), 0);
	ck_assert_uint_eq(d->size, MiB);
	/* A file device resizes; a block device would say -ENOTSUP. */
	ck_assert_int_eq(tp_dev_resize(d, 2 * MiB), 0);
	tp_dev_close(d);
	ck_assert_int_eq(tp_dev_open(path, 0, 0, &d), 0);
	ck_assert_uint_eq(d->size, 2 * MiB);
	tp_dev_close(d);
	ck_assert_int_eq(tp_dev_open(scratch_dir, 0, 0, &d), -EINVAL);
	ck_assert_int_eq(tp_dev_open_block(path, 0, &d), -ENOTBLK);
	ck_assert_ptr_null(d);
	tp_dev_close(NULL);
	unlink(path);
}
END_TEST

/* ---- block device -------------------------------------------------------------------------- */

START_TEST(test_block_dev)
{
	struct tp_dev *d, *e;
	static unsigned char buf[256 * KiB];
	uint64_t bytes;
	void *abuf;
	int ssz;

	if (!loop_dev[0]) {
		printf("SKIP test_block_dev: %s\n", loop_skip_reason);
		return;
	}
	ck_assert_int_eq(tp_dev_open_block(loop_dev, TP_DEV_EXCL, &d), 0);
	ck_assert_uint_eq(d->size, 8 * MiB);
	ck_assert_uint_eq(d->align, 1);
	ck_assert_int_eq(tp_dev_open_block(loop_dev, TP_DEV_EXCL, &e), -EBUSY);
	ck_assert_int_eq(tp_dev_open(loop_dev, TP_DEV_EXCL, 0, &e), -EBUSY);
	ck_assert_int_eq(tp_dev_open_file(loop_dev, 0, 0, &e), -EINVAL);

	exercise_counters(d);
	tp_dev_close(d);

	ck_assert_int_eq(tp_dev_open(loop_dev, 0, 0, &d), 0);
	ck_assert_int_eq(tp_dev_resize(d, 16 * MiB), -ENOTSUP);
	tp_dev_ctr_reset(d);
	/* 4096+100 is not sector aligned: BLKZEROOUT refuses it, the
	 * fallback writes zeros instead. */
	check_write_zeroes(d);
	ck_assert_int_eq(tp_dev_write_zeroes(d, 0, 64 * KiB), 0);
	ck_assert_int_eq(tp_dev_pread(d, buf, 64 * KiB, 0), 0);
	ck_assert(is_zero(buf, 64 * KiB));
	bytes = tp_dev_ctr(d).bytes_zeroed;
	ck_assert_uint_eq(bytes, 70000 + 64 * KiB);

	pattern(buf, sizeof(buf), 6);
	ck_assert_int_eq(tp_dev_pwrite(d, buf, sizeof(buf), MiB), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);
	ck_assert_int_eq(tp_dev_discard(d, MiB + 100, 64 * KiB), 0);
	ck_assert_uint_eq(tp_dev_ctr(d).bytes_discarded, 64 * KiB);
	ck_assert_int_eq(d->ops->refresh_size(d), 0);
	ck_assert_uint_eq(d->size, 8 * MiB);
	ck_assert_int_eq(tp_dev_pread(d, buf, 1, 8 * MiB), -EINVAL);
	tp_dev_close(d);

	ck_assert_int_eq(tp_dev_open_block(loop_dev, TP_DEV_DIRECT, &d), 0);
	{
		int fd = open(loop_dev, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ioctl(fd, BLKSSZGET, &ssz), 0);
		close(fd);
	}
	ck_assert_uint_eq(d->align, (unsigned)ssz);
	ck_assert_int_eq(posix_memalign(&abuf, d->align, 64 * KiB), 0);
	pattern(abuf, 64 * KiB, 8);
	ck_assert_int_eq(tp_dev_pwrite(d, abuf, 64 * KiB, 2 * MiB), 0);
	memset(abuf, 0, 64 * KiB);
	ck_assert_int_eq(tp_dev_pread(d, abuf, 64 * KiB, 2 * MiB), 0);
	ck_assert(is_pattern(abuf, 64 * KiB, 8, 0));
	ck_assert_int_eq(tp_dev_flush(d), 0);
	free(abuf);
	tp_dev_close(d);
}
END_TEST

/* A loop device made by tp_dev_open_loop grows as loop-lvm's operators grow one: the file
 * grows, then LOOP_SET_CAPACITY; data stays, the new end is readable, the file has the size,
 * and it cannot shrink. */
START_TEST(test_loop_resize)
{
	static unsigned char buf[64 * KiB], got[64 * KiB];
	char file[PATH_MAX + 32];
	struct tp_dev *d, *e;
	struct stat st;

	if (!loop_dev[0]) { /* the same conditions as setup_loop's */
		printf("SKIP test_loop_resize: %s\n", loop_skip_reason);
		return;
	}
	snprintf(file, sizeof(file), "%s/grow.img", scratch_dir);
	ck_assert_int_eq(tp_dev_open_file(file, TP_DEV_CREATE, 4 * MiB, &e), 0);
	tp_dev_close(e);
	for (int direct = 0; direct < 2; direct++) {
		unsigned flags = TP_DEV_EXCL | (direct ? TP_DEV_DIRECT : 0);
		uint64_t from = (4 + 4 * (uint64_t)direct) * MiB, to = from + 4 * MiB;
		ck_assert_int_eq(tp_dev_open_loop(file, flags, &d), 0);
		ck_assert_uint_eq(d->size, from);
		/* the flock travels with the loop: the file is taken */
		ck_assert_int_eq(tp_dev_open_file(file, TP_DEV_EXCL, 0, &e), -EBUSY);
		void *abuf;
		ck_assert_int_eq(posix_memalign(&abuf, 4096, sizeof(buf)), 0);
		pattern(buf, sizeof(buf), 11 + direct);
		memcpy(abuf, buf, sizeof(buf));
		ck_assert_int_eq(tp_dev_pwrite(d, abuf, sizeof(buf), from - sizeof(buf)), 0);
		ck_assert_int_eq(tp_dev_pread(d, abuf, sizeof(buf), from), -EINVAL);
		ck_assert_int_eq(tp_dev_resize(d, from - MiB), -EINVAL);
		ck_assert_int_eq(tp_dev_resize(d, to), 0);
		ck_assert_uint_eq(d->size, to);
		ck_assert_int_eq(stat(file, &st), 0);
		ck_assert_uint_eq((uint64_t)st.st_size, to);
		ck_assert_int_eq(tp_dev_pread(d, abuf, sizeof(buf), from - sizeof(buf)), 0);
		memcpy(got, abuf, sizeof(got));
		ck_assert(memcmp(got, buf, sizeof(buf)) == 0);
		ck_assert_int_eq(tp_dev_pread(d, abuf, sizeof(buf), to - sizeof(buf)), 0);
		ck_assert(is_zero(abuf, sizeof(buf)));
		ck_assert_int_eq(tp_dev_pwrite(d, abuf, 4096, to - 4096), 0); /* aligned for O_DIRECT */
		/* what the kernel sees agrees: a fresh open of the loop reads the new size */
		ck_assert_int_eq(d->ops->refresh_size(d), 0);
		ck_assert_uint_eq(d->size, to);
		free(abuf);
		tp_dev_close(d);
	}
	/* the loops detached themselves (autoclear): the file is free again */
	ck_assert_int_eq(tp_dev_open_file(file, TP_DEV_EXCL, 0, &e), 0);
	ck_assert_uint_eq(e->size, 12 * MiB);
	tp_dev_close(e);
}
END_TEST

/* ---- mem device ---------------------------------------------------------------------------- */

/* Threads writing at once: every op is counted (the counters are sharded by thread), and a
 * grow of the device while they write (it takes no lock; the buffer never moves) keeps
 * their data. */
#define MT_THREADS 4
#define MT_OPS 20000
struct mt_arg {
	struct tp_dev *d;
	unsigned idx;
	int err;
};

static void *mt_writer(void *p)
{
	struct mt_arg *a = p;
	unsigned char buf[512];
	for (unsigned i = 0; i < MT_OPS && !a->err; i++) {
		/* thread IDX owns the IDXth 512 bytes of every 2 KiB of the first MiB */
		uint64_t off = (uint64_t)(i % 512) * 2048 + a->idx * 512;
		memset(buf, (int)(a->idx + 1), sizeof(buf));
		a->err = tp_dev_pwrite(a->d, buf, sizeof(buf), off);
	}
	return NULL;
}

START_TEST(test_mem_threads)
{
	struct tp_dev *d;
	ck_assert_int_eq(tp_dev_open_mem(MiB, &d), 0);
	pthread_t t[MT_THREADS];
	struct mt_arg a[MT_THREADS];
	for (unsigned i = 0; i < MT_THREADS; i++) {
		a[i] = (struct mt_arg){d, i, 0};
		ck_assert_int_eq(pthread_create(&t[i], NULL, mt_writer, &a[i]), 0);
	}
	/* grows while they write: each keeps all that was written */
	for (uint64_t sz = 2 * MiB; sz <= 64 * MiB; sz *= 2)
		ck_assert_int_eq(tp_dev_resize(d, sz), 0);
	for (unsigned i = 0; i < MT_THREADS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(a[i].err, 0);
	}
	struct tp_io_counters c = tp_dev_ctr(d);
	ck_assert_uint_eq(c.writes, (uint64_t)MT_THREADS * MT_OPS);
	ck_assert_uint_eq(c.bytes_written, (uint64_t)MT_THREADS * MT_OPS * 512);
	unsigned char buf[2048];
	for (uint64_t off = 0; off < MiB; off += sizeof(buf)) {
		ck_assert_int_eq(tp_dev_pread(d, buf, sizeof(buf), off), 0);
		for (unsigned i = 0; i < MT_THREADS; i++)
			ck_assert_msg(buf[i * 512] == i + 1 && buf[i * 512 + 511] == i + 1,
				      "slot %u at %llu lost a write", i, (unsigned long long)off);
	}
	ck_assert_int_eq(tp_dev_pread(d, buf, sizeof(buf), 64 * MiB - sizeof(buf)), 0);
	ck_assert(is_zero(buf, sizeof(buf)));
	/* the reservation has an end: a grow past it fails and leaves the device as it was */
	ck_assert_int_eq(tp_dev_resize(d, 1ull << 40), -ENOMEM);
	ck_assert_uint_eq(d->size, 64 * MiB);
	/* set/reset (a wrapper device taking over an inner device's counts) */
	struct tp_io_counters five = {.reads = 5, .bytes_read = 50};
	tp_dev_ctr_set(d, &five);
	c = tp_dev_ctr(d);
	ck_assert_uint_eq(c.reads, 5);
	ck_assert_uint_eq(c.writes, 0);
	tp_dev_ctr_reset(d);
	c = tp_dev_ctr(d);
	ck_assert_uint_eq(c.reads + c.bytes_read, 0);
	tp_dev_close(d);
}
END_TEST

START_TEST(test_mem_dev)
{
	struct tp_dev *d;
	unsigned char buf[8192];

	ck_assert_int_eq(tp_dev_open_mem(MiB, &d), 0);
	ck_assert_uint_eq(d->size, MiB);
	ck_assert_uint_eq(d->align, 1);
	ck_assert_int_eq(tp_dev_pread(d, buf, sizeof(buf), MiB - sizeof(buf)), 0);
	ck_assert(is_zero(buf, sizeof(buf)));
	tp_dev_ctr_reset(d);

	exercise_counters(d);
	tp_dev_close(d);

	ck_assert_int_eq(tp_dev_open_mem(MiB, &d), 0);
	check_write_zeroes(d);
	/* Discarded ranges read back as zeros, like a punched hole. */
	ck_assert_int_eq(tp_dev_discard(d, 0, 100), 0);
	ck_assert_int_eq(tp_dev_pread(d, buf, 200, 0), 0);
	ck_assert(is_zero(buf, 100));
	ck_assert(is_pattern(buf + 100, 100, 9, 100));

	pattern(buf, sizeof(buf), 2);
	ck_assert_int_eq(tp_dev_pwrite(d, buf, sizeof(buf), MiB - sizeof(buf)), 0);
	ck_assert_int_eq(tp_dev_resize(d, MiB - 4096), 0);
	ck_assert_int_eq(tp_dev_pread(d, buf, 1, MiB - 4096), -EINVAL);
	ck_assert_int_eq(tp_dev_resize(d, 2 * MiB), 0);
	ck_assert_uint_eq(d->size, 2 * MiB);
	ck_assert_int_eq(tp_dev_pread(d, buf, sizeof(buf), MiB - sizeof(buf)), 0);
	ck_assert(is_pattern(buf, 4096, 2, 0));
	/* The part cut off by the shrink comes back as zeros, not stale data. */
	ck_assert(is_zero(buf + 4096, 4096));
	ck_assert_int_eq(d->ops->refresh_size(d), 0);
	ck_assert_uint_eq(d->size, 2 * MiB);
	ck_assert_int_eq(tp_dev_resize(d, 0), 0);
	ck_assert_int_eq(tp_dev_pread(d, buf, 1, 0), -EINVAL);
	ck_assert_int_eq(tp_dev_pread(d, buf, 0, 0), 0);
	tp_dev_close(d);
}
END_TEST

/* ---- fault injection ----------------------------------------------------------------------- */

static void fault_on_mem(uint64_t size, struct tp_dev **inner, struct tp_dev **d,
                         struct tp_fault **f)
{
	ck_assert_int_eq(tp_dev_open_mem(size, inner), 0);
	ck_assert_int_eq(tp_fault_wrap(*inner, d, f), 0);
	ck_assert_uint_eq((*d)->size, size);
}

/* Write block I (4 KiB) filled with byte V. */
static int put(struct tp_dev *d, unsigned i, unsigned char v)
{
	unsigned char b[4096];

	memset(b, v, sizeof(b));
	return tp_dev_pwrite(d, b, sizeof(b), (uint64_t)i * 4096);
}

static int block_is(struct tp_dev *d, unsigned i, unsigned char v)
{
	unsigned char b[4096];

	if (tp_dev_pread(d, b, sizeof(b), (uint64_t)i * 4096))
		return 0;
	return all_bytes(b, sizeof(b), v);
}

START_TEST(test_fault_fail_write)
{
	struct tp_dev *inner, *d;
	struct tp_fault *f;

	fault_on_mem(64 * KiB, &inner, &d, &f);
	tp_fault_fail_write(f, 3);
	ck_assert_int_eq(put(d, 0, 1), 0);
	ck_assert_int_eq(put(d, 1, 2), 0);
	ck_assert_int_eq(put(d, 2, 3), -EIO);
	ck_assert_int_eq(put(d, 3, 4), 0);
	ck_assert_int_eq(put(d, 2, 5), 0); /* once only */
	ck_assert(block_is(inner, 0, 1));
	ck_assert(block_is(inner, 2, 5));
	ck_assert(block_is(inner, 3, 4));
	ck_assert_uint_eq(tp_fault_writes_seen(f), 5);
	ck_assert_uint_eq(tp_dev_ctr(d).writes, 4);
	ck_assert_uint_eq(tp_dev_ctr(inner).writes, 4);

	/* Zeroes and discards are writes too. */
	tp_fault_fail_write(f, 2);
	ck_assert_int_eq(tp_dev_write_zeroes(d, 0, 4096), 0);
	ck_assert_int_eq(tp_dev_discard(d, 4096, 4096), -EIO);
	ck_assert(block_is(inner, 1, 2));
	ck_assert_uint_eq(tp_dev_ctr(d).zero_ops, 1);
	ck_assert_uint_eq(tp_dev_ctr(d).discards, 0);

	/* Re-arming restarts the count; 0 disarms. */
	tp_fault_fail_write(f, 1);
	tp_fault_fail_write(f, 0);
	ck_assert_int_eq(put(d, 0, 7), 0);
	tp_fault_fail_write(f, 1);
	ck_assert_int_eq(put(d, 0, 8), -EIO);
	ck_assert(block_is(d, 0, 7));
	tp_dev_close(d);
}
END_TEST

START_TEST(test_fault_fail_read)
{
	struct tp_dev *inner, *d;
	struct tp_fault *f;
	unsigned char b[4096];

	fault_on_mem(64 * KiB, &inner, &d, &f);
	ck_assert_int_eq(put(d, 0, 9), 0);
	tp_fault_fail_read(f, 2);
	ck_assert_int_eq(tp_dev_pread(d, b, sizeof(b), 0), 0);
	ck_assert_int_eq(tp_dev_pread(d, b, sizeof(b), 0), -EIO);
	ck_assert_int_eq(tp_dev_pread(d, b, sizeof(b), 0), 0);
	ck_assert(all_bytes(b, sizeof(b), 9));
	ck_assert_uint_eq(tp_dev_ctr(d).reads, 2);
	/* Out-of-range requests do not consume the armed count. */
	tp_fault_fail_read(f, 1);
	ck_assert_int_eq(tp_dev_pread(d, b, 1, 64 * KiB), -EINVAL);
	ck_assert_int_eq(tp_dev_pread(d, b, 1, 0), -EIO);
	ck_assert_uint_eq(tp_fault_writes_seen(f), 1);
	tp_dev_close(d);
}
END_TEST

START_TEST(test_fault_volatile_crash)
{
	struct tp_dev *inner, *d;
	struct tp_fault *f;
	unsigned char b[4096];

	fault_on_mem(64 * KiB, &inner, &d, &f);
	tp_fault_set_volatile(f, 1);
	ck_assert_int_eq(put(d, 0, 'A'), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);
	ck_assert_int_eq(put(d, 1, 'B'), 0);
	memset(b, 'C', 512);
	ck_assert_int_eq(tp_dev_pwrite(d, b, 512, 0), 0);
	ck_assert_int_eq(tp_dev_write_zeroes(d, 2 * 4096, 4096), 0);
	ck_assert_uint_eq(tp_fault_writes_seen(f), 4);
	ck_assert_uint_eq(tp_dev_ctr(inner).writes, 1);
	ck_assert_uint_eq(tp_dev_ctr(inner).flushes, 1);

	tp_fault_crash(f);
	/* Only the flushed write is on "the disk". */
	ck_assert(block_is(inner, 0, 'A'));
	ck_assert(block_is(inner, 1, 0));
	ck_assert_uint_eq(tp_dev_ctr(inner).writes, 1);
	ck_assert_uint_eq(tp_dev_ctr(inner).zero_ops, 0);

	ck_assert_int_eq(tp_dev_pread(d, b, sizeof(b), 0), -EIO);
	ck_assert_int_eq(put(d, 3, 'D'), -EIO);
	ck_assert_int_eq(tp_dev_write_zeroes(d, 0, 4096), -EIO);
	ck_assert_int_eq(tp_dev_discard(d, 0, 4096), -EIO);
	ck_assert_int_eq(tp_dev_flush(d), -EIO);
	ck_assert_uint_eq(tp_fault_writes_seen(f), 4);
	ck_assert(block_is(inner, 3, 0));
	tp_dev_close(d);
}
END_TEST

START_TEST(test_fault_read_your_writes)
{
	struct tp_dev *inner, *d;
	struct tp_fault *f;
	static unsigned char model[64 * KiB], got[64 * KiB], w[8192];

	fault_on_mem(sizeof(model), &inner, &d, &f);
	pattern(model, sizeof(model), 1);
	ck_assert_int_eq(tp_dev_pwrite(d, model, sizeof(model), 0), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);

	/* Overlapping writes, zeroes and a discard, all still volatile. */
	tp_fault_set_volatile(f, 1);
	pattern(w, sizeof(w), 2);
	ck_assert_int_eq(tp_dev_pwrite(d, w, 5000, 100), 0);
	memcpy(model + 100, w, 5000);
	ck_assert_int_eq(tp_dev_write_zeroes(d, 3000, 1000), 0);
	memset(model + 3000, 0, 1000);
	pattern(w, sizeof(w), 3);
	ck_assert_int_eq(tp_dev_pwrite(d, w, 8192, 3500), 0);
	memcpy(model + 3500, w, 8192);
	ck_assert_int_eq(tp_dev_discard(d, 40 * KiB, 8 * KiB), 0);
	memset(model + 40 * KiB, 0, 8 * KiB);

	ck_assert_int_eq(tp_dev_pread(d, got, sizeof(got), 0), 0);
	ck_assert(memcmp(got, model, sizeof(got)) == 0);
	/* A read straddling the edge of a queued write. */
	ck_assert_int_eq(tp_dev_pread(d, got, 300, 3400), 0);
	ck_assert(memcmp(got, model + 3400, 300) == 0);

	/* Nothing reached the inner device yet ... */
	ck_assert_int_eq(tp_dev_pread(inner, got, sizeof(got), 0), 0);
	ck_assert(is_pattern(got, sizeof(got), 1, 0));
	ck_assert_uint_eq(tp_dev_ctr(inner).writes, 1);

	/* ... and the flush replays it in order. */
	ck_assert_int_eq(tp_dev_flush(d), 0);
	ck_assert_int_eq(tp_dev_pread(inner, got, sizeof(got), 0), 0);
	ck_assert(memcmp(got, model, sizeof(got)) == 0);
	ck_assert_uint_eq(tp_dev_ctr(inner).writes, 3);
	ck_assert_uint_eq(tp_dev_ctr(inner).zero_ops, 1);
	ck_assert_uint_eq(tp_dev_ctr(inner).discards, 1);
	ck_assert_uint_eq(tp_dev_ctr(inner).flushes, 2);
	ck_assert_uint_eq(tp_dev_ctr(d).writes, 3);
	ck_assert_uint_eq(tp_dev_ctr(d).bytes_written, sizeof(model) + 5000 + 8192);
	ck_assert_uint_eq(tp_dev_ctr(d).bytes_zeroed, 1000);
	ck_assert_uint_eq(tp_dev_ctr(d).bytes_discarded, 8 * KiB);

	/* Switching volatile off with a queue must not let a new write be
	 * overtaken by an older queued one. */
	ck_assert_int_eq(put(d, 0, 'x'), 0);
	tp_fault_set_volatile(f, 0);
	ck_assert_int_eq(put(d, 0, 'y'), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);
	ck_assert(block_is(inner, 0, 'y'));
	ck_assert_int_eq(put(d, 1, 'z'), 0);
	ck_assert(block_is(inner, 1, 'z'));
	tp_dev_close(d);
}
END_TEST

START_TEST(test_fault_cut_after)
{
	struct tp_dev *inner, *d;
	struct tp_fault *f;

	/* Write-through: the first K writes land, the rest vanish. */
	fault_on_mem(64 * KiB, &inner, &d, &f);
	tp_fault_cut_after(f, 2);
	for (unsigned i = 0; i < 4; i++)
		ck_assert_int_eq(put(d, i, (unsigned char)('a' + i)), 0);
	ck_assert_int_eq(tp_dev_write_zeroes(d, 0, 4096), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);
	ck_assert_uint_eq(tp_fault_writes_seen(f), 5);
	ck_assert_uint_eq(tp_dev_ctr(d).writes, 4);
	ck_assert(block_is(inner, 0, 'a'));
	ck_assert(block_is(inner, 1, 'b'));
	ck_assert(block_is(inner, 2, 0));
	ck_assert(block_is(inner, 3, 0));
	ck_assert_uint_eq(tp_dev_ctr(inner).writes, 2);
	ck_assert_uint_eq(tp_dev_ctr(inner).zero_ops, 0);
	ck_assert_uint_eq(tp_dev_ctr(inner).flushes, 0);

	/* Disarming restores power. */
	tp_fault_cut_after(f, 0);
	ck_assert_int_eq(put(d, 5, 'f'), 0);
	ck_assert(block_is(inner, 5, 'f'));
	tp_dev_close(d);

	/* Volatile: only what was flushed before the cut survives a crash,
	 * even though the workload kept flushing afterwards. */
	fault_on_mem(64 * KiB, &inner, &d, &f);
	tp_fault_set_volatile(f, 1);
	tp_fault_cut_after(f, 3);
	ck_assert_int_eq(put(d, 0, '1'), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);
	ck_assert_int_eq(put(d, 1, '2'), 0);
	ck_assert_int_eq(put(d, 2, '3'), 0);
	ck_assert_int_eq(put(d, 3, '4'), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);
	ck_assert(block_is(d, 2, '3'));
	ck_assert(block_is(d, 3, 0));
	tp_fault_crash(f);
	ck_assert(block_is(inner, 0, '1'));
	ck_assert(block_is(inner, 1, 0));
	ck_assert(block_is(inner, 2, 0));
	ck_assert(block_is(inner, 3, 0));
	ck_assert_uint_eq(tp_fault_writes_seen(f), 4);
	ck_assert_uint_eq(tp_dev_ctr(inner).flushes, 1);
	tp_dev_close(d);
}
END_TEST

/* The wrapper over a real file: crash, reopen, see only flushed data; and a
 * clean close writes the cache back. */
START_TEST(test_fault_on_file)
{
	char path[PATH_MAX];
	struct tp_dev *inner, *d;
	struct tp_fault *f;

	scratch_path(path, sizeof(path), "fault.img");
	ck_assert_int_eq(tp_dev_open_file(path, TP_DEV_CREATE, MiB, &inner), 0);
	ck_assert_int_eq(tp_fault_wrap(inner, &d, &f), 0);
	ck_assert(strstr(d->name, path) != NULL);
	tp_fault_set_volatile(f, 1);
	ck_assert_int_eq(put(d, 0, 'p'), 0);
	ck_assert_int_eq(tp_dev_flush(d), 0);
	ck_assert_int_eq(put(d, 1, 'q'), 0);
	ck_assert_int_eq(tp_dev_resize(d, 2 * MiB), 0);
	ck_assert_uint_eq(d->size, 2 * MiB);
	tp_fault_crash(f);
	ck_assert_int_eq(tp_dev_resize(d, MiB), -EIO);
	tp_dev_close(d);

	ck_assert_int_eq(tp_dev_open_file(path, 0, 0, &inner), 0);
	ck_assert(block_is(inner, 0, 'p'));
	ck_assert(block_is(inner, 1, 0));
	ck_assert_int_eq(tp_fault_wrap(inner, &d, &f), 0);
	tp_fault_set_volatile(f, 1);
	ck_assert_int_eq(put(d, 2, 'r'), 0);
	tp_dev_close(d);

	ck_assert_int_eq(tp_dev_open_file(path, 0, 0, &inner), 0);
	ck_assert(block_is(inner, 2, 'r'));
	tp_dev_close(inner);
	unlink(path);
}
END_TEST

/* ---- harness ------------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A loop device over a file in the scratch dir, if this host lets us. */
static void setup_loop(void)
{
	char file[PATH_MAX + 32], cmd[PATH_MAX + 128];
	FILE *p;
	int fd;

	if (geteuid() != 0) {
		snprintf(loop_skip_reason, sizeof(loop_skip_reason), "not root, cannot losetup");
		return;
	}
	if (access("/dev/loop-control", F_OK) != 0) {
		snprintf(loop_skip_reason, sizeof(loop_skip_reason), "no /dev/loop-control");
		return;
	}
	snprintf(file, sizeof(file), "%s/loop.img", scratch_dir);
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 8 * MiB) < 0) {
		snprintf(loop_skip_reason, sizeof(loop_skip_reason),
		         "cannot create the loop backing file: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	snprintf(cmd, sizeof(cmd), "losetup -f --show '%s' 2>&1", file);
	p = popen(cmd, "r");
	if (!p) {
		snprintf(loop_skip_reason, sizeof(loop_skip_reason), "popen losetup: %s",
		         strerror(errno));
		return;
	}
	if (!fgets(loop_dev, sizeof(loop_dev), p))
		loop_dev[0] = '\0';
	loop_dev[strcspn(loop_dev, "\n")] = '\0';
	if (pclose(p) != 0 || strncmp(loop_dev, "/dev/", 5) != 0) {
		snprintf(loop_skip_reason, sizeof(loop_skip_reason), "losetup failed: %s",
		         loop_dev[0] ? loop_dev : "(no output)");
		loop_dev[0] = '\0';
	}
}

static void teardown_loop(void)
{
	char cmd[128];

	if (!loop_dev[0])
		return;
	snprintf(cmd, sizeof(cmd), "losetup -d '%s'", loop_dev);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: '%s' failed\n", cmd);
}

static Suite *io_suite(void)
{
	Suite *s = suite_create("io");
	TCase *tc;

	tc = tcase_create("file");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_file_create_sparse);
	tcase_add_test(tc, test_file_roundtrip);
	tcase_add_test(tc, test_file_counters);
	tcase_add_test(tc, test_file_write_zeroes);
	tcase_add_test(tc, test_file_write_zeroes_tmpfs);
	tcase_add_test(tc, test_file_discard);
	tcase_add_test(tc, test_file_resize);
	tcase_add_test(tc, test_file_excl);
	tcase_add_test(tc, test_file_direct);
	tcase_add_test(tc, test_dev_open_dispatch);
	suite_add_tcase(s, tc);

	tc = tcase_create("block");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_block_dev);
	tcase_add_test(tc, test_loop_resize);
	suite_add_tcase(s, tc);

	tc = tcase_create("mem");
	tcase_add_test(tc, test_mem_dev);
	tcase_add_test(tc, test_mem_threads);
	suite_add_tcase(s, tc);

	tc = tcase_create("fault");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fault_fail_write);
	tcase_add_test(tc, test_fault_fail_read);
	tcase_add_test(tc, test_fault_volatile_crash);
	tcase_add_test(tc, test_fault_read_your_writes);
	tcase_add_test(tc, test_fault_cut_after);
	tcase_add_test(tc, test_fault_on_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	SRunner *sr;
	int failed;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (snprintf(scratch_dir, sizeof(scratch_dir), "%s/thinp-test-io-XXXXXX", tmp) >=
	            (int)sizeof(scratch_dir) ||
	    !mkdtemp(scratch_dir)) {
		fprintf(stderr, "cannot create a scratch directory under %s: %s\n", tmp,
		        strerror(errno));
		return 1;
	}
	setup_loop();

	sr = srunner_create(io_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);

	teardown_loop();
	if (nftw(scratch_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "warning: could not remove %s\n", scratch_dir);
	return failed ? 1 : 0;
}
