/* thinp set-transaction-id / metadata-snap: the pool messages that are not about one
 * thin device (dmsetup message POOL 0 set_transaction_id | reserve_metadata_snap |
 * release_metadata_snap). */
#include <string.h>

#include "cli/backend.h"
#include "cli/cli_msg.h"

static const char trans_usage[] =
        "usage: thinp set-transaction-id DIR OLD NEW\n"
        "       thinp --backend kernel set-transaction-id DIR|NAME OLD NEW\n"
        "Compare-and-swap of the pool's 64-bit transaction id (fails unless it is OLD).\n";

static const char msnap_usage[] =
        "usage: thinp metadata-snap DIR reserve|release\n"
        "       thinp --backend kernel metadata-snap DIR|NAME reserve|release\n"
        "Holds (or drops) a read-only copy of the metadata roots for live thin_dump -m.\n";

/* The pool and NEED more positionals into POS. Returns 0, CLI_DONE or 2. */
static int parse(int argc, char **argv, struct cli_pool_args *a, const char *usage, int need,
                 const char **pos)
{
	static const struct option longopts[] = { CLI_POOL_LONGOPTS, CLI_STD_LONGOPTS, { 0 } };
	const struct cli_cmd cmd = {
		.name = a->cmd,
		.usage = usage,
		.shortopts = CLI_POOL_SHORTOPTS,
		.longopts = longopts,
		.numbers = true,
		.option = cli_pool_option,
		.ctx = a,
	};
	int nr, r = cli_parse(&cmd, argc, argv, pos, need + 1, &nr);
	return r ? r : cli_take_pool(a, pos, &nr, need, false);
}

int cmd_set_transaction_id(int argc, char **argv, const struct cli_global *g)
{
	struct cli_pool_args a;
	cli_pool_args_init(&a, "set-transaction-id", g);
	const char *pos[3];
	uint64_t old, next;
	int r = parse(argc, argv, &a, trans_usage, 2, pos);
	if (r)
		return r == CLI_DONE ? 0 : r;
	if (cli_u64(a.cmd, "old transaction id", pos[0], UINT64_MAX, &old) ||
	    cli_u64(a.cmd, "new transaction id", pos[1], UINT64_MAX, &next))
		return 2;
	a.via_control = true;
	struct backend_pool *p;
	if ((r = backend_of(&a)->open(&a, &p)))
		return r;
	return p->ops->close(p, p->ops->set_transaction_id(p, old, next));
}

int cmd_metadata_snap(int argc, char **argv, const struct cli_global *g)
{
	struct cli_pool_args a;
	cli_pool_args_init(&a, "metadata-snap", g);
	const char *pos[2];
	int r = parse(argc, argv, &a, msnap_usage, 1, pos);
	if (r)
		return r == CLI_DONE ? 0 : r;
	bool reserve = !strcmp(pos[0], "reserve");
	if (!reserve && strcmp(pos[0], "release"))
		return cli_usage(a.cmd, "invalid action '%s': use reserve or release", pos[0]);
	a.via_control = true;
	struct backend_pool *p;
	if ((r = backend_of(&a)->open(&a, &p)))
		return r;
	return p->ops->close(p, p->ops->metadata_snap(p, reserve));
}
