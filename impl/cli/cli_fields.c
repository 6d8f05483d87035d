#include "cli/cli_fields.h"

#include <stdio.h>

void cli_print_pool_fields(const struct thinp_pool_status *st)
{
	static const char *const modes[] = { "write", "out_of_data_space", "read_only", "fail" };
	printf("transaction_id=%llu\nused_meta_blocks=%llu\ntotal_meta_blocks=%llu\n"
	       "used_data_blocks=%llu\ntotal_data_blocks=%llu\nheld_root=%llu\nmode=%s\n"
	       "discard_enabled=%d\ndiscard_passdown=%d\nerror_if_no_space=%d\nneeds_check=%d\n"
	       "metadata_low_water=%llu\n",
	       (unsigned long long)st->transaction_id, (unsigned long long)st->used_meta_blocks,
	       (unsigned long long)st->total_meta_blocks, (unsigned long long)st->used_data_blocks,
	       (unsigned long long)st->total_data_blocks, (unsigned long long)st->held_root,
	       (unsigned)st->mode < 4 ? modes[st->mode] : "?", st->discard_enabled,
	       st->discard_passdown, st->error_if_no_space, st->needs_check,
	       (unsigned long long)st->metadata_low_water);
}

void cli_print_thin_fields(const struct thinp_thin_status *st)
{
	printf("mapped_sectors=%llu\nhas_mapped=%d\nhighest_mapped_sector=%llu\n",
	       (unsigned long long)st->mapped_sectors, st->has_mapped,
	       (unsigned long long)st->highest_mapped_sector);
}
