/* replay: apply a tests/vm trace to libthinp in ONE pool session, as the kernel
 * applies it to one activation of its pool (the thinp CLI instead opens and closes
 * the pool per command, which restarts the allocators' search cursors at 0 -- like
 * reactivating a kernel pool). Used by tests/vm/smoke.sh; built against libthinp.a.
 *
 * Usage: replay TRACE PAYLOAD_DIR POOL_DIR OUT_DIR
 * TRACE is the host form (trace_model.py bios): a discard line may list several bios.
 * Writes OUT_DIR/steps.txt (pool status after each operation), pool-status.txt,
 * thin-status.txt and thin<ID>.img (each thin device's first SIZE bytes), and leaves
 * the pool in POOL_DIR/data + POOL_DIR/metadata. After every operation the pool status
 * is taken without NOFLUSH, which commits -- as `dmsetup status` does in the guest. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thinp.h"

static void die(const char *fmt, const char *a, int r)
{
	fprintf(stderr, "replay: ");
	fprintf(stderr, fmt, a);
	if (r)
		fprintf(stderr, ": %s", strerror(r < 0 ? -r : r));
	fputc('\n', stderr);
	exit(1);
}

static uint64_t bytes(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	switch (*end) {
	case 'k':
	case 'K':
		return (uint64_t)v << 10;
	case 'm':
	case 'M':
		return (uint64_t)v << 20;
	case 'g':
	case 'G':
		return (uint64_t)v << 30;
	case 0:
		return v;
	}
	die("bad size '%s'", s, 0);
	return 0;
}

static void *slurp(const char *path, size_t len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("cannot open %s", path, -errno);
	void *buf = malloc(len);
	if (!buf || fread(buf, 1, len, f) != len)
		die("short payload %s", path, 0);
	fclose(f);
	return buf;
}

#define MAX_THINS 64

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: replay TRACE PAYLOAD_DIR POOL_DIR OUT_DIR\n");
		return 2;
	}
	const char *trace = argv[1], *payloads = argv[2], *dir = argv[3], *out = argv[4];
	FILE *tf = fopen(trace, "r");
	if (!tf)
		die("cannot open %s", trace, -errno);
	char path[4096], line[1024], status[512];
	snprintf(path, sizeof(path), "%s/steps.txt", out);
	FILE *steps = fopen(path, "w");
	if (!steps)
		die("cannot create %s", path, -errno);

	struct thinp_pool *p = NULL;
	uint64_t ids[MAX_THINS], sizes[MAX_THINS];
	int nthins = 0, step = 0, r = 0;
	char err[512];
	while (fgets(line, sizeof(line), tf)) {
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char op[32], a[64], b[64], c[64], d[64], e[256] = "skip_block_zeroing";
		int pos = 0; /* where the arguments after the device id start (discard's bios) */
		int n = sscanf(line, "%31s %63s %n%63s %63s %63s %255s", op, a, &pos, b, c, d, e);
		if (n <= 0)
			continue;
		step++;
		if (!strcmp(op, "pool")) {
			if (n != 5 && n != 6)
				die("bad pool line in %s", trace, 0);
			struct thinp_pool_paths where = {
				.dir = dir,
				.data_size = bytes(a),
				.meta_size = bytes(b),
				.force = true, /* the trace starts a new pool */
				.how = THINP_OPEN_CREATE,
			};
			struct thinp_pool_opts o = {
				.block_sectors = (uint32_t)(bytes(c) / 512),
				.low_water_blocks = strtoull(d, NULL, 10),
				.no_commit_timer = true, /* commits only where the trace says */
			};
			for (char *f = strtok(e, ","); f; f = strtok(NULL, ",")) {
				if (!strcmp(f, "skip_block_zeroing"))
					o.skip_block_zeroing = true;
				else if (!strcmp(f, "no_discard_passdown"))
					o.no_discard_passdown = true;
				else if (!strcmp(f, "ignore_discard"))
					o.ignore_discard = true;
				else if (strcmp(f, "-"))
					die("unknown pool feature '%s'", f, 0);
			}
			if ((r = thinp_pool_open_paths(&where, &o, &p, NULL, err, sizeof(err))))
				die("%s", err, r);
		} else if (!p) {
			die("the first operation of %s must be 'pool'", trace, 0);
		} else if (!strcmp(op, "thin") || !strcmp(op, "snap")) {
			bool snap = op[0] == 's';
			uint64_t id = strtoull(a, NULL, 10);
			r = snap ? thinp_create_snap(p, id, strtoull(b, NULL, 10)) :
			           thinp_create_thin(p, id);
			if (r)
				die("%s failed", line, r);
			if (nthins == MAX_THINS)
				die("too many thins in %s", trace, 0);
			ids[nthins] = id;
			sizes[nthins++] = bytes(snap ? c : b);
		} else if (!strcmp(op, "delete")) {
			uint64_t id = strtoull(a, NULL, 10);
			if ((r = thinp_delete_thin(p, id)))
				die("%s failed", line, r);
			int j = 0;
			for (int i = 0; i < nthins; i++)
				if (ids[i] != id) {
					ids[j] = ids[i];
					sizes[j++] = sizes[i];
				}
			nthins = j;
		} else if (!strcmp(op, "write") || !strcmp(op, "discard") || !strcmp(op, "flush")) {
			struct thinp_thin *t;
			uint64_t off = op[0] == 'f' ? 0 : bytes(b), len = op[0] == 'f' ? 0 : bytes(c);
			if ((r = thinp_thin_open(p, strtoull(a, NULL, 10), 0, &t)))
				die("open thin %s", a, r);
			if (op[0] == 'w') {
				snprintf(path, sizeof(path), "%s/%d.bin", payloads, step);
				void *buf = slurp(path, len);
				r = thinp_write(t, buf, len, off, 0, NULL);
				free(buf);
			} else if (op[0] == 'f') {
				r = thinp_flush(t, NULL);
			} else { /* one or more bios: OFF LEN [OFF LEN ...] */
				char *save = NULL, *tok = strtok_r(line + pos, " \t\n", &save);
				while (!r && tok) {
					char *ltok = strtok_r(NULL, " \t\n", &save);
					if (!ltok)
						die("discard without a length in %s", trace, 0);
					r = thinp_discard(t, bytes(tok), bytes(ltok), NULL);
					tok = strtok_r(NULL, " \t\n", &save);
				}
			}
			thinp_thin_close(t);
			if (r)
				die("%s failed", line, r);
		} else {
			die("unknown operation '%s'", op, 0);
		}
		if ((r = thinp_pool_status_line(p, false, status, sizeof(status))))
			die("status after %s", op, r);
		fprintf(steps, "%d %s %s\n", step, op, status);
	}
	fclose(tf);
	fclose(steps);
	if (!p)
		die("no operations in %s", trace, 0);

	snprintf(path, sizeof(path), "%s/pool-status.txt", out);
	FILE *f = fopen(path, "w");
	if (!f || thinp_pool_status_line(p, false, status, sizeof(status)))
		die("pool status to %s", path, -errno);
	fprintf(f, "%s\n", status);
	fclose(f);
	snprintf(path, sizeof(path), "%s/thin-status.txt", out);
	f = fopen(path, "w");
	if (!f)
		die("cannot create %s", path, -errno);
	for (int i = 0; i < nthins; i++) {
		if ((r = thinp_thin_status_line(p, ids[i], status, sizeof(status))))
			die("thin status", "", r);
		fprintf(f, "%llu %s\n", (unsigned long long)ids[i], status);
	}
	fclose(f);
	for (int i = 0; i < nthins; i++) {
		struct thinp_thin *t;
		if ((r = thinp_thin_open(p, ids[i], 0, &t)))
			die("open thin", "", r);
		char *buf = malloc(sizes[i]);
		if (!buf || (r = thinp_read(t, buf, sizes[i], 0, NULL)))
			die("read thin", "", r);
		thinp_thin_close(t);
		snprintf(path, sizeof(path), "%s/thin%llu.img", out, (unsigned long long)ids[i]);
		FILE *img = fopen(path, "wb");
		if (!img || fwrite(buf, 1, sizes[i], img) != sizes[i] || fclose(img))
			die("cannot write %s", path, -errno);
		free(buf);
	}
	if ((r = thinp_pool_close(p)))
		die("close%s", "", r);
	return 0;
}
