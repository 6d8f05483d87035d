/* The driver's dm.* options: Docker's names, defaults, parsing and error texts
 * (docs/docker-driver.md §3), plus the Docker options thinbench refuses by name. */
#include "graph/graph_options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_units.h"

void tg_options_default(struct tg_options *o)
{
	memset(o, 0, sizeof(*o));
	o->basesize = UINT64_C(10) << 30;
	o->loopdatasize = UINT64_C(100) << 30;
	o->loopmetadatasize = UINT64_C(2) << 30;
	o->blocksize = UINT64_C(64) << 10;
	o->blkdiscard = true;
	/* Docker turns deferred removal and deletion on by default only when the kernel's
	 * device-mapper (>= 4.27.0) and libdm support them. thinbench's driver runs on
	 * libthinp with no kernel device-mapper, i.e. like Docker on a host without that
	 * support: both off unless asked for. */
	o->use_deferred_removal = false;
	o->use_deferred_deletion = false;
	o->min_free_space = 10;
	o->override_udev_sync_check = false;
}

/* Go's strings.TrimSpace on the ASCII white space (the options are ASCII); not isspace(),
 * whose set follows the caller's locale. */
static bool space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static void trim(const char *s, size_t n, const char **out, size_t *out_n)
{
	while (n && space(*s))
		s++, n--;
	while (n && space(s[n - 1]))
		n--;
	*out = s;
	*out_n = n;
}

static int too_long(const char *key, const char *val, size_t max, char *err, size_t len)
{
	snprintf(err, len,
	         "devmapper: Option %s value '%s' is too long: thinbench keeps at most %zu "
	         "characters",
	         key, val, max);
	return -EINVAL;
}

static int set_size(uint64_t *field, const char *val, char *err, size_t len)
{
	uint64_t v;
	int r = tg_ram_in_bytes(val, &v, err, len);
	if (r)
		return r == -ERANGE ? -EINVAL : r;
	*field = v;
	return 0;
}

static int set_bool(bool *field, const char *val, char *err, size_t len)
{
	return tg_parse_bool(val, field, err, len);
}

static int set_min_free_space(struct tg_options *o, const char *val, char *err, size_t len)
{
	size_t n = strlen(val);
	if (!n || val[n - 1] != '%') {
		snprintf(err, len, "devmapper: Option dm.min_free_space requires %% suffix");
		return -EINVAL;
	}
	char num[TG_OPT_STR];
	if (n > sizeof(num))
		return too_long("dm.min_free_space", val, sizeof(num) - 1, err, len);
	memcpy(num, val, n - 1);
	num[n - 1] = '\0';
	uint64_t pct;
	int r = tg_parse_uint(num, 32, &pct, err, len);
	if (r)
		return -EINVAL;
	if (pct >= 100) {
		snprintf(err, len, "devmapper: Invalid value %s for option dm.min_free_space", val);
		return -EINVAL;
	}
	o->min_free_space = (unsigned)pct;
	return 0;
}

/* Real Docker options with nothing behind them here: refused by name and with the reason,
 * not as unknown, since a user copying a working Docker configuration should learn which
 * line to drop. */
static const struct {
	const char *key;
	const char *why;
} unsupported[] = {
	{ "dm.datadev",
	  "raw data and metadata devices (deprecated in Docker) are kernel block "
	  "devices; drop it and let the driver make its loop files (dm.loopdatasize), "
	  "or name a pool with dm.thinpooldev" },
	{ "dm.metadatadev", "raw data and metadata devices (deprecated in Docker) are kernel block "
	                    "devices; drop it and let the driver make its loop files "
	                    "(dm.loopmetadatasize), or name a pool with dm.thinpooldev" },
	{ "dm.xfs_nospace_max_retries",
	  "it tunes the kernel's xfs error handling of a dm-N device, "
	  "which thinbench's userspace thin devices do not have; "
	  "drop it" },
	{ "dm.libdm_log_level", "thinbench does not use libdevmapper; drop it" },
	{ "dm.directlvm_device", "direct-lvm makes an LVM thin pool on a block device; make the "
	                         "pool yourself and name it with dm.thinpooldev" },
	{ "dm.directlvm_device_force", "direct-lvm makes an LVM thin pool on a block device; make "
	                               "the pool yourself and name it with dm.thinpooldev" },
	{ "dm.thinp_percent", "it sizes a direct-lvm pool, and direct-lvm is not supported; make "
	                      "the pool yourself and name it with dm.thinpooldev" },
	{ "dm.thinp_metapercent", "it sizes a direct-lvm pool, and direct-lvm is not supported; "
	                          "make the pool yourself and name it with dm.thinpooldev" },
	{ "dm.thinp_autoextend_threshold", "it sets LVM autoextend of a direct-lvm pool, and "
	                                   "direct-lvm is not supported; drop it" },
	{ "dm.thinp_autoextend_percent", "it sets LVM autoextend of a direct-lvm pool, and "
	                                 "direct-lvm is not supported; drop it" },
};

static int set_option(struct tg_options *o, const char *key, const char *val, char *err, size_t len)
{
	if (!strcmp(key, "dm.basesize")) {
		int r = set_size(&o->basesize, val, err, len);
		if (!r)
			o->basesize_set = true;
		return r;
	}
	if (!strcmp(key, "dm.loopdatasize"))
		return set_size(&o->loopdatasize, val, err, len);
	if (!strcmp(key, "dm.loopmetadatasize"))
		return set_size(&o->loopmetadatasize, val, err, len);
	if (!strcmp(key, "dm.fs")) {
		if (strcmp(val, "ext4") && strcmp(val, "xfs")) {
			snprintf(err, len, "devmapper: Unsupported filesystem %s", val);
			return -EINVAL;
		}
		snprintf(o->fs, sizeof(o->fs), "%s", val);
		return 0;
	}
	if (!strcmp(key, "dm.mkfsarg")) {
		if (o->nr_mkfsargs >= TG_MAX_MKFSARGS) {
			snprintf(err, len,
			         "devmapper: Option dm.mkfsarg given more than %d times "
			         "(at '%s'): thinbench keeps at most %d mkfs arguments",
			         TG_MAX_MKFSARGS, val, TG_MAX_MKFSARGS);
			return -EINVAL;
		}
		if (strlen(val) >= TG_OPT_STR)
			return too_long(key, val, TG_OPT_STR - 1, err, len);
		snprintf(o->mkfsargs[o->nr_mkfsargs++], TG_OPT_STR, "%s", val);
		return 0;
	}
	if (!strcmp(key, "dm.mountopt")) {
		/* Docker's joinMountOptions: an empty side adds no comma. */
		size_t have = strlen(o->mountopt), add = strlen(val);
		if (!add)
			return 0;
		if (have + (have ? 1 : 0) + add >= TG_OPT_STR) {
			snprintf(err, len,
			         "devmapper: Option dm.mountopt values joined ('%s' and "
			         "'%s') are too long: thinbench keeps at most %d characters",
			         o->mountopt, val, TG_OPT_STR - 1);
			return -EINVAL;
		}
		snprintf(o->mountopt + have, TG_OPT_STR - have, "%s%s", have ? "," : "", val);
		return 0;
	}
	if (!strcmp(key, "dm.thinpooldev")) {
		const char *name = val;
		if (!strncmp(name, "/dev/mapper/", 12))
			name += 12;
		if (strlen(name) >= TG_OPT_STR)
			return too_long(key, val, TG_OPT_STR - 1, err, len);
		snprintf(o->thinpooldev, sizeof(o->thinpooldev), "%s", name);
		return 0;
	}
	if (!strcmp(key, "dm.blkdiscard")) {
		/* Docker notes the option as given before parsing its value. */
		o->blkdiscard_set = true;
		return set_bool(&o->blkdiscard, val, err, len);
	}
	if (!strcmp(key, "dm.blocksize")) {
		uint64_t v;
		int r = set_size(&v, val, err, len);
		if (r)
			return r;
		/* Docker keeps uint32(size) >> 9 sectors, no range check: 4G is 0 sectors and the
		 * pool table is refused later. The bytes kept here are that uint32. */
		o->blocksize = (uint32_t)v;
		return 0;
	}
	if (!strcmp(key, "dm.override_udev_sync_check"))
		return set_bool(&o->override_udev_sync_check, val, err, len);
	if (!strcmp(key, "dm.use_deferred_removal"))
		return set_bool(&o->use_deferred_removal, val, err, len);
	if (!strcmp(key, "dm.use_deferred_deletion"))
		return set_bool(&o->use_deferred_deletion, val, err, len);
	if (!strcmp(key, "dm.min_free_space"))
		return set_min_free_space(o, val, err, len);
	if (!strcmp(key, "dm.no_warn_on_loop_devices")) {
		/* Not upstream (distribution-patched Dockers only; upstream calls it unknown):
		 * thinbench's own, to keep the loopback warning out of scripted runs. */
		return set_bool(&o->no_warn_on_loop_devices, val, err, len);
	}
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
		if (!strcmp(key, unsupported[i].key)) {
			snprintf(err, len, "devmapper: Option %s is not supported by thinbench: %s",
			         key, unsupported[i].why);
			return -EINVAL;
		}
	}
	snprintf(err, len, "devmapper: Unknown option %s", key);
	return -EINVAL;
}

int tg_options_parse(struct tg_options *o, const char *kv, char *err, size_t len)
{
	const char *eq = strchr(kv, '=');
	if (!eq) {
		snprintf(err, len, "Unable to parse key/value option: %s", kv);
		return -EINVAL;
	}
	const char *k, *v;
	size_t kn, vn;
	trim(kv, (size_t)(eq - kv), &k, &kn);
	trim(eq + 1, strlen(eq + 1), &v, &vn);
	char *key = malloc(kn + 1), *val = malloc(vn + 1);
	if (!key || !val) {
		free(key);
		free(val);
		snprintf(err, len, "devmapper: out of memory parsing option %s", kv);
		return -ENOMEM;
	}
	for (size_t i = 0; i < kn; i++)
		key[i] = k[i] >= 'A' && k[i] <= 'Z' ? (char)(k[i] - 'A' + 'a') : k[i];
	key[kn] = '\0';
	memcpy(val, v, vn);
	val[vn] = '\0';
	int r = set_option(o, key, val, err, len);
	free(key);
	free(val);
	return r;
}

int tg_options_finish(struct tg_options *o, char *err, size_t len)
{
	if (o->use_deferred_deletion && !o->use_deferred_removal) {
		snprintf(err, len,
		         "devmapper: Deferred deletion can not be enabled as deferred "
		         "removal is not enabled. Enable deferred removal using --storage-opt "
		         "dm.use_deferred_removal=true parameter");
		return -EINVAL;
	}
	/* Docker's reason: discarding a raw device is rarely useful and expensive. */
	if (!o->blkdiscard_set && o->thinpooldev[0])
		o->blkdiscard = false;
	return 0;
}
