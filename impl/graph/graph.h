/* Docker's devicemapper graph driver on a thin pool: a base device with a real file system,
 * every image layer a snapshot of the layer below, every container a snapshot of its image,
 * Docker's home layout, metadata files, transaction protocol and `docker info` block
 * (docs/docker-driver.md states the facts this layer follows; docs/graph-driver.md how it
 * is built). One process holds a ROOT at a time: the CLI's `thinp docker` reaches the holder
 * (the daemon) through ROOT/thinbench/driver.sock when there is one. */
#ifndef THINP_GRAPH_H
#define THINP_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "graph/graph_options.h"

struct tg_driver;

enum tg_backend_kind {
	TG_BACKEND_LIB,    /* libthinp on ROOT/devicemapper/{data,metadata}, thin devices
	                      exposed through FUSE + loop devices */
	TG_BACKEND_KERNEL  /* dm-thin through libdevmapper (a pool device, /dev/mapper) */
};

/* Docker's Init: the layout, the pool (created on first use), the metadata files, a
 * pending transaction rolled back, deleted devices counted, the base device made or
 * checked (and grown when dm.basesize grew). LOG gets Docker's warnings (may be NULL). */
int tg_driver_open(const char *root, const struct tg_options *opt, enum tg_backend_kind be,
		   FILE *log, struct tg_driver **out, char *err, size_t len);
/* Docker's Cleanup: every mount unmounted, every device deactivated, the pool closed. */
int tg_driver_close(struct tg_driver *d);

/* A layer or container ID as a snapshot of PARENT (NULL or "" = the base device); SIZE 0 =
 * the parent's size, else at least that (the file system is grown as Docker does). */
int tg_create(struct tg_driver *d, const char *id, const char *parent, uint64_t size, char *err,
	      size_t len);
/* Docker's Remove: an unknown id succeeds; a busy device is marked deleted when deferred
 * deletion is on. */
int tg_remove(struct tg_driver *d, const char *id, char *err, size_t len);
/* Docker's Get: activate and mount (the first Get only; later ones count), PATH gets
 * ROOT/mnt/ID/rootfs. */
int tg_get(struct tg_driver *d, const char *id, char *path, size_t plen, char *err, size_t len);
/* Docker's Put: the last one unmounts and deactivates. */
int tg_put(struct tg_driver *d, const char *id, char *err, size_t len);
/* Docker's Exists (true for a device marked deleted). */
bool tg_exists(struct tg_driver *d, const char *id);

/* Every known device hash, sorted (the base as ""); *IDS and each string malloc'd. */
int tg_list(struct tg_driver *d, char ***ids, size_t *nr);
void tg_list_free(char **ids, size_t nr);

/* The `docker info` devicemapper block, in Docker's order (docs/graph-driver.md). */
struct tg_status_pair {
	char key[40];
	char value[320];
};
#define TG_STATUS_MAX 24
/* SPACED: sizes as Dockers up to 1.12 printed them ("65.54 kB"). *WARNING gets the
 * loopback warning text, or "" when it does not apply. */
int tg_status(struct tg_driver *d, bool spaced, struct tg_status_pair *pairs, size_t *nr,
	      char *warning, size_t wlen, char *err, size_t len);

/* The pool's IO counters per outcome class (libthinp's: write_provision, write_cow, ...), the
 * same counters the fio engine reports, since the pool opened or the last reset: what the
 * file systems of the mounted devices made the pool do. RESET zeroes them after the read. */
struct tg_class_count {
	char name[32];
	uint64_t ops, bytes_requested, data_read, data_written, data_zeroed, meta_read,
		meta_written;
};
#define TG_CLASSES_MAX 16
int tg_pool_stats(struct tg_driver *d, bool reset, struct tg_class_count *out, size_t *nr,
		  char *err, size_t len);

/* One device's record (Docker's GetMetadata plus the JSON). */
struct tg_device_view {
	char hash[132];
	uint64_t device_id, size, transaction_id;
	bool initialized, deleted;
	unsigned mounts;
	char name[200]; /* docker-MAJ:MIN-INO-<hash|base> */
};
int tg_device(struct tg_driver *d, const char *id, struct tg_device_view *v, char *err, size_t len);

/* One pass of the deferred-deletion worker: retries every device marked deleted. Returns
 * how many were deleted, or a negative errno. */
int tg_delete_deferred(struct tg_driver *d);

/* Grow the pool's data to BYTES as the seed's loop-lvm procedure (and device_tool resize). */
int tg_resize_pool(struct tg_driver *d, uint64_t bytes, char *err, size_t len);

#endif
