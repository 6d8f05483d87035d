/* DIR/kernel.json: the kernel pool that a loop-lvm directory was activated as. Only the
 * name is read back; the loop devices are recorded for people (the live truth is the pool's
 * table, from which the CLI finds them again). */
#include "dm/dm_backend.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int tdm_dir_save(struct tdm_ctx *c, const char *dir, const char *name, const char *data_loop,
                 const char *meta_loop)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/kernel.json", dir) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/kernel.json.tmp", dir) >= (int)sizeof(tmp))
		return tdm_fail(c, ENAMETOOLONG, "%s: path too long", dir);
	/* names are tdm_valid_name() and loop paths "/dev/loopN": nothing to escape */
	FILE *f = fopen(tmp, "we");
	if (!f)
		return tdm_fail(c, errno, "cannot write %s: %s", tmp, strerror(errno));
	fprintf(f,
	        "{\n  \"backend\": \"kernel\",\n  \"name\": \"%s\",\n  \"device\": \"/dev/mapper/%s\",\n"
	        "  \"data_loop\": \"%s\",\n  \"metadata_loop\": \"%s\"\n}\n",
	        name, name, data_loop ? data_loop : "", meta_loop ? meta_loop : "");
	int bad = ferror(f);
	if (fclose(f) || bad) {
		int e = errno ? errno : EIO;
		unlink(tmp);
		return tdm_fail(c, e, "cannot write %s: %s", tmp, strerror(e));
	}
	if (rename(tmp, path)) {
		int e = errno;
		unlink(tmp);
		return tdm_fail(c, e, "cannot write %s: %s", path, strerror(e));
	}
	return 0;
}

int tdm_dir_name(struct tdm_ctx *c, const char *dir, char *name, size_t len)
{
	char path[PATH_MAX], buf[4096];
	snprintf(path, sizeof(path), "%s/kernel.json", dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ?
		               tdm_fail(c, ENOENT,
		                        "%s has no kernel pool (no kernel.json): create it "
		                        "with --backend kernel pool create",
		                        dir) :
		               tdm_fail(c, errno, "cannot read %s: %s", path, strerror(errno));
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *k = strstr(buf, "\"name\"");
	const char *q = k ? strchr(k + 6, '"') : NULL;
	const char *e = q ? strchr(q + 1, '"') : NULL;
	if (!e || (size_t)(e - q - 1) >= len || (size_t)(e - q - 1) >= TDM_NAME_MAX)
		return tdm_fail(c, EINVAL, "%s: no pool name in it", path);
	snprintf(name, len, "%.*s", (int)(e - q - 1), q + 1);
	if (!tdm_valid_name(name))
		return tdm_fail(c, EINVAL, "%s: invalid pool name '%s'", path, name);
	return 0;
}
