#include "cli/cli_table.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A rename is durable only once its directory is. */
static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) ? -errno : 0;
	close(fd);
	return r;
}

int cli_save_table(const char *dir, const struct thinp_pool_opts *o)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	snprintf(path, sizeof(path), "%s/table", dir);
	snprintf(tmp, sizeof(tmp), "%s/table.tmp", dir);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	unsigned nf = o->skip_block_zeroing + o->ignore_discard + o->no_discard_passdown +
	              o->error_if_no_space;
	fprintf(f, "%u %llu %u%s%s%s%s\n", o->block_sectors ? o->block_sectors : 128,
	        (unsigned long long)o->low_water_blocks, nf,
	        o->skip_block_zeroing ? " skip_block_zeroing" : "",
	        o->ignore_discard ? " ignore_discard" : "",
	        o->no_discard_passdown ? " no_discard_passdown" : "",
	        o->error_if_no_space ? " error_if_no_space" : "");
	/* the data first: a rename that outlives a power cut must not name an empty file */
	int r = fflush(f) || fsync(fileno(f)) ? -errno : 0;
	if (fclose(f) && !r)
		r = -errno;
	if (!r && rename(tmp, path))
		r = -errno;
	if (r) {
		unlink(tmp);
		return r;
	}
	return sync_dir(dir);
}

/* Table features saved at creation apply unless the command line set them. */
void cli_load_table(const char *dir, struct cli_pool_args *a)
{
	char path[PATH_MAX], line[512];
	snprintf(path, sizeof(path), "%s/table", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(line, sizeof(line), f)) {
		unsigned bs = 0, nf = 0;
		unsigned long long lw = 0;
		int off = 0;
		if (sscanf(line, "%u %llu %u%n", &bs, &lw, &nf, &off) >= 3) {
			if (!a->have_block_size)
				a->opts.block_sectors = bs;
			if (!a->opts.low_water_blocks)
				a->opts.low_water_blocks = lw;
			char *p = line + off, *tok, *save;
			while ((tok = strtok_r(p, " \n", &save))) {
				p = NULL;
				if (!strcmp(tok, "skip_block_zeroing"))
					a->opts.skip_block_zeroing = true;
				else if (!strcmp(tok, "ignore_discard"))
					a->opts.ignore_discard = true;
				else if (!strcmp(tok, "no_discard_passdown"))
					a->opts.no_discard_passdown = true;
				else if (!strcmp(tok, "error_if_no_space"))
					a->opts.error_if_no_space = true;
			}
		}
	}
	fclose(f);
}
