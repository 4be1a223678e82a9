/*
 * sys.c - what the process and the machine are doing (aim/core.h
 * "aim_sys"): the process's CPU use in cores busy since the last sample
 * (getrusage over the monotonic clock), its resident memory now
 * (/proc/self/statm) and the machine's one-minute load (getloadavg). Read
 * for the status line and logged as the "sys" lines of a run's metrics, so a run
 * followed from another process shows them too.
 */
#include "config.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "aim/core.h"

static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return NAN;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

double aim_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void aim_sys_start(aim_sys_meter *m)
{
    m->cpu = cpu_seconds();
    m->wall = aim_now();
}

int aim_sys_sample(aim_sys_meter *m, aim_sys *out)
{
    double cpu = cpu_seconds(), wall = aim_now();
    out->cores = wall > m->wall && isfinite(cpu) && isfinite(m->cpu)
                     ? (float)((cpu - m->cpu) / (wall - m->wall))
                     : NAN;
    m->cpu = cpu;
    m->wall = wall;
    out->rss_mb = NAN;
    /* read(2), not stdio: a training step allocates nothing (test_noalloc) */
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[128];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        unsigned long size, resident;
        if (n > 0) {
            buf[n] = 0;
            if (sscanf(buf, "%lu %lu", &size, &resident) == 2)
                out->rss_mb =
                    (float)((double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0);
        }
    }
    double load[1];
    out->load1 = getloadavg(load, 1) == 1 ? (float)load[0] : NAN;
    return isfinite(out->cores) ? 0 : -1;
}
