/* Running thin_metadata_size and gnuplot (plan_tools.h). */
#include "plan/plan_tools.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Run ARGV with stdout into OUT (up to OUTLEN-1 bytes, NUL-terminated; NULL: discarded) and
 * stderr kept; returns the exit status, or -1 with errno (the program could not start). */
static int run(char *const argv[], char *out, size_t outlen)
{
	int fd[2];
	if (pipe(fd))
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
	posix_spawn_file_actions_addclose(&fa, fd[0]);
	posix_spawn_file_actions_addclose(&fa, fd[1]);
	pid_t pid;
	int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fd[1]);
	if (e) {
		close(fd[0]);
		errno = e;
		return -1;
	}
	size_t n = 0;
	char sink[512];
	for (;;) {
		char *at = out && n + 1 < outlen ? out + n : sink;
		size_t room = out && n + 1 < outlen ? outlen - 1 - n : sizeof(sink);
		ssize_t k = read(fd[0], at, room);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (at != sink)
			n += (size_t)k;
	}
	close(fd[0]);
	if (out)
		out[n] = 0;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	/* a program not found by posix_spawnp's child shows as exit 127 */
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

double plan_thin_metadata_size(uint64_t block, uint64_t pool, uint64_t thins, char *cmd,
                               size_t cmdlen, char *why, size_t whylen)
{
	const char *bin = getenv("THINP_THIN_METADATA_SIZE");
	if (!bin || !*bin)
		bin = "thin_metadata_size";
	char b[32], s[32], m[32];
	snprintf(b, sizeof(b), "%llub", (unsigned long long)block);
	snprintf(s, sizeof(s), "%llub", (unsigned long long)pool);
	snprintf(m, sizeof(m), "%llu", (unsigned long long)(thins ? thins : 1));
	char *argv[] = { (char *)bin, "-b", b, "-s", s, "-m", m, "-u", "b", "-n", NULL };
	snprintf(cmd, cmdlen, "%s -b %s -s %s -m %s -u b -n", bin, b, s, m);
	char out[128];
	int st = run(argv, out, sizeof(out));
	if (st < 0 || st == 127) {
		snprintf(why, whylen, "%s is not installed (thin-provisioning-tools)", bin);
		return -1;
	}
	char *end;
	errno = 0;
	double v = strtod(out, &end);
	while (*end == '\n' || *end == ' ')
		end++;
	if (st || errno || end == out || *end) {
		snprintf(why, whylen, "%s exited %d with '%.60s'", bin, st, out);
		return -1;
	}
	return v;
}

int plan_chart(const struct plan_spec *s, const struct plan_result *r, const char *png_path,
               char *why, size_t whylen)
{
	char dat[4096], gp[4096];
	if (snprintf(dat, sizeof(dat), "%s.dat", png_path) >= (int)sizeof(dat) ||
	    snprintf(gp, sizeof(gp), "%s.gp", png_path) >= (int)sizeof(gp)) {
		snprintf(why, whylen, "the chart path is too long");
		return -1;
	}
	FILE *f = fopen(dat, "w");
	if (!f) {
		snprintf(why, whylen, "cannot write %s: %s", dat, strerror(errno));
		return -1;
	}
	fprintf(f, "# hours data_used_pct meta_used_pct data_used_blocks data_total meta_used "
	           "meta_total\n");
	for (size_t i = 0; i < r->nr_pts; i++) {
		const struct plan_point *p = &r->pts[i];
		fprintf(f, "%.6f %.4f %.4f %.0f %.0f %.0f %.0f\n", p->t_h,
		        100 * p->data_used / p->data_total, 100 * p->meta_used / p->meta_total,
		        p->data_used, p->data_total, p->meta_used, p->meta_total);
	}
	if (fclose(f)) {
		snprintf(why, whylen, "cannot write %s: %s", dat, strerror(errno));
		return -1;
	}
	f = fopen(gp, "w");
	if (!f) {
		snprintf(why, whylen, "cannot write %s: %s", gp, strerror(errno));
		return -1;
	}
	/* the project's chart look (scenarios/thinbench_runner/gnuplot.py) */
	fprintf(f, "set terminal pngcairo size 1000,760 font \"DejaVu Sans,11\"\n");
	fprintf(f, "set output '%s'\n", png_path);
	fprintf(f, "set termoption noenhanced\n");
	fprintf(f, "set title 'Predicted pool usage (thinp plan)'\n");
	fprintf(f, "set xlabel 'hours'\nset ylabel 'percent of the device in use'\n");
	fprintf(f, "set yrange [0:105]\nset key bottom right\nset grid\n");
	double first_total = r->pts[0].data_total;
	unsigned n = 10; /* arrows 1-3: the thresholds; 10 on: the events */
	if (s->autoextend_threshold < 100)
		fprintf(f,
		        "set arrow 1 from graph 0, first %g to graph 1, first %g nohead dt 2 "
		        "lc rgb '#d95f02'\nset label 1 'LVM autoextend %g%%' at graph 0.01, "
		        "first %g offset 0,0.6\n",
		        s->autoextend_threshold, s->autoextend_threshold, s->autoextend_threshold,
		        s->autoextend_threshold);
	if (s->min_free_space > 0)
		fprintf(f,
		        "set arrow 2 from graph 0, first %g to graph 1, first %g nohead dt 3 "
		        "lc rgb '#7570b3'\nset label 2 'Docker dm.min_free_space (refuses "
		        "creates above)' at graph 0.01, first %g offset 0,0.6\n",
		        100 - s->min_free_space, 100 - s->min_free_space, 100 - s->min_free_space);
	if (s->low_water_blocks)
		fprintf(f,
		        "set arrow 3 from graph 0, first %g to graph 1, first %g nohead dt 4 "
		        "lc rgb '#1b9e77'\nset label 3 'dm-thin low water (initial size)' at "
		        "graph 0.55, first %g offset 0,0.6\n",
		        100 - 100 * (double)s->low_water_blocks / first_total,
		        100 - 100 * (double)s->low_water_blocks / first_total,
		        100 - 100 * (double)s->low_water_blocks / first_total);
	for (unsigned i = 0; i < r->nr_ev; i++)
		fprintf(f,
		        "set arrow %u from first %g, graph 0 to first %g, graph 1 nohead lc rgb "
		        "'#999999'\n",
		        n++, r->ev[i].t_h, r->ev[i].t_h);
	fprintf(f,
	        "plot '%s' using 1:2 with lines lw 2 title 'data', '%s' using 1:3 with lines "
	        "lw 2 title 'metadata (status, reserve in)'\n",
	        dat, dat);
	if (fclose(f)) {
		snprintf(why, whylen, "cannot write %s: %s", gp, strerror(errno));
		return -1;
	}
	char *argv[] = { "gnuplot", gp, NULL };
	int st = run(argv, NULL, 0);
	if (st < 0 || st == 127) {
		snprintf(why, whylen, "gnuplot is not installed; the script is %s", gp);
		return -1;
	}
	if (st) {
		snprintf(why, whylen, "gnuplot exited %d on %s", st, gp);
		return -1;
	}
	return 0;
}
