/* The write log of tests/power/: what wlog_fs records, in the order the file system
 * saw it, and what power_replay reads back. One record is a header, then NAME1, NAME2
 * and DATA (lengths in the header), no padding. Files and directories are named by ids
 * wlog_fs hands out (the mount's root is 1), never by backing inode numbers, which the
 * backing file system reuses after an unlink. */
#ifndef THINP_TESTS_WLOG_H
#define THINP_TESTS_WLOG_H

#include <stdint.h>

#define WLOG_ROOT_ID 1u
/* The mount's control file: what is written to it is logged as a MARK (the workload's
 * notes: what it wrote, which flush returned), never stored. */
#define WLOG_MARK_NAME ".wlog-mark"

enum wlog_type {
	WLOG_CREATE = 1, /* id: parent dir, id2: the new file, name1; flags: WLOG_DIR or
			    WLOG_SPECIAL (a socket or fifo: a name, no data) */
	WLOG_UNLINK,     /* id: parent dir, name1 (files and empty directories) */
	WLOG_RENAME,     /* id: from dir, name1 -> id2: to dir, name2 (replaces a target) */
	WLOG_WRITE,      /* id, off, DATA (len bytes); flags: WLOG_DSYNC */
	WLOG_TRUNCATE,   /* id, len: the new size */
	WLOG_FALLOCATE,  /* id, off, len, flags: the fallocate mode */
	WLOG_FSYNC,      /* id (fsync or fdatasync of a file: its data and size) */
	WLOG_FSYNCDIR,   /* id (fsync of a directory: its entries) */
	WLOG_MARK        /* DATA: one line of the workload's notes */
};

#define WLOG_DIR 1u
#define WLOG_SPECIAL 2u
/* An O_DSYNC write (RWF_DSYNC, or a file opened O_DSYNC/O_SYNC): durable when it returns,
 * as a FUA write is; the file's other unsynced writes are not. */
#define WLOG_DSYNC 1u

struct wlog_rec {
	uint32_t type;
	uint32_t flags;
	uint64_t id, id2;
	uint64_t off, len;
	uint32_t name1_len, name2_len;
	uint64_t data_len;
};

#endif
