/* The driver on dm-thin (--backend kernel): not built yet. The kernel backend of the pool
 * commands (impl/dm) exists; the driver's activation, suspend and resize over it do not.
 * Refused with a sentence rather than half-done. */
#include "graph/graph_internal.h"

#include <errno.h>

int tg_backend_kernel_open(const struct tg_backend_args *a, const struct tg_backend_ops **ops,
			   void **be, char *err, size_t len)
{
	(void)a;
	(void)ops;
	(void)be;
	return tg_err(err, len, -ENOTSUP,
		      "the devicemapper driver on the kernel backend is not built yet (issue 10): "
		      "use the userspace backend (the default)");
}
