/* What the offline tools (dump, restore) write to: never what they read, never a device
 * of a pool that is open. `dump META -o META` used to truncate the metadata before
 * reading it, `restore -i META -o META` to zero its superblock; both are refused before
 * anything is opened for writing. */
#ifndef THINP_CLI_OUTPUT_H
#define THINP_CLI_OUTPUT_H

#include "thinp.h"

/* 2 (a usage error, reported naming CMD) when OUTPUT is the input: the same inode
 * (through symlinks and hard links too) or the same block device. The input is the path
 * INPUT, or, when INPUT is NULL, the open descriptor INPUT_FD (stdin). A missing OUTPUT
 * is not the input: 0. */
int cli_output_not_input(const char *cmd, const char *output, const char *input, int input_fd);

/* Hold OUTPUT while it is written, if it exists and is a file or a block device: the
 * exclusive lock libthinp takes on both devices of an open pool (a block device also
 * O_EXCL, so a mount or a device-mapper table holds it too). *HELD (close it when done)
 * is NULL when there is nothing to hold. 0, or 1 when a pool or the kernel holds it
 * (reported). */
int cli_output_claim(const char *cmd, const char *output, struct tp_dev **held);

/* The message for a device that another process's open pool holds (EBUSY). */
#define CLI_POOL_OPEN_ELSEWHERE "the pool is open in another process"

#endif
