/* The FUSE bridge: thin devices of an open libthinp pool as regular files in a FUSE
 * mount, so that a loop device over such a file gives the host a block device to mkfs
 * and mount (a host without device-mapper has no other way to see a thin device). */
#ifndef THINP_GRAPH_EXPOSE_H
#define THINP_GRAPH_EXPOSE_H

#include <stddef.h>
#include <stdint.h>

struct thinp_pool;
struct tg_expose;

/* Mount a FUSE file system on the existing empty directory MOUNTPOINT and serve it on
 * its own threads (several requests at once). The pool stays the caller's. */
int tg_expose_start(struct thinp_pool *pool, const char *mountpoint, struct tg_expose **out,
                    char *err, size_t len);
/* MOUNTPOINT/NAME appears: a file of SIZE bytes whose reads, writes, fsync and
 * fallocate(PUNCH_HOLE) are the thin device ID's reads, writes, flushes and discards.
 * -EEXIST if NAME is exposed already. */
int tg_expose_add(struct tg_expose *e, const char *name, uint64_t thin_id, uint64_t size, char *err,
                  size_t len);
/* Remove NAME (flushing the thin first): -EBUSY while the file is open (a loop device
 * over it, a reader), -ENOENT if not exposed. */
int tg_expose_remove(struct tg_expose *e, const char *name, char *err, size_t len);
/* Wait until nobody has NAME open, at most TIMEOUT_MS: 0, -EBUSY (still open), -ENOENT.
 * The kernel sends a FUSE file's release after close() has returned (and a loop device
 * drops its file after its detach), so a remove right after a close or a detach may still
 * find the file open; this is the wait between them. */
int tg_expose_wait_closed(struct tg_expose *e, const char *name, unsigned timeout_ms);
/* Unmount (lazily if still busy), join the threads, flush and close every thin; a NULL E
 * (a start that failed) is a no-op. 0, -EBUSY when the mount was busy (it is detached
 * lazily and what its openers still ask fails), or the first thin's flush error;
 * everything is released in every case. */
int tg_expose_stop(struct tg_expose *e);

#endif
