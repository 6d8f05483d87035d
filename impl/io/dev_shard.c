/* Which counter shard a thread writes (tp_thread_shard): one of its own while it lives, so
 * counting on the IO paths takes no locked instruction, or the shared last one. */
#include "io/dev_internal.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* Shard owners: the kernel thread id of the thread that claimed shard I, 0 for none. An owner
 * that has exited leaves its id; the next thread to find no free shard takes its over (an
 * exited thread writes nothing more, so one writer per shard holds). */
static pid_t shard_owner[TP_CTR_SHARDS];
static _Thread_local unsigned my_shard = ~0u; /* ~0u: not chosen yet */
static pthread_once_t shard_once = PTHREAD_ONCE_INIT;

/* In a forked child the forking thread is alone and the owners are the parent's threads: it
 * chooses again rather than keep a shard that a thread of the child could take over. */
static void shard_forget(void) { my_shard = ~0u; }

static void shard_init(void) { (void)pthread_atfork(NULL, NULL, shard_forget); }

static bool thread_gone(pid_t tid)
{
	return syscall(SYS_tgkill, (pid_t)getpid(), tid, 0) != 0 && errno == ESRCH;
}

unsigned tp_thread_shard(void)
{
	if (my_shard != ~0u)
		return my_shard;
	pthread_once(&shard_once, shard_init);
	pid_t me = (pid_t)syscall(SYS_gettid);
	my_shard = TP_CTR_SHARDS;
	/* a free shard first; else one whose owner has exited */
	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < TP_CTR_SHARDS; i++) {
			pid_t o = __atomic_load_n(&shard_owner[i], __ATOMIC_ACQUIRE);
			if (o && o != me && (pass == 0 || !thread_gone(o)))
				continue;
			if (__atomic_compare_exchange_n(&shard_owner[i], &o, me, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				my_shard = i;
				return i;
			}
		}
	return my_shard;
}
