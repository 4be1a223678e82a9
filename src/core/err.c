/*
 * err.c - error messages, checked allocation, small file helpers and dtype
 * names. Nothing here prints, except the out-of-memory abort.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aim/core.h"

int aim_errf(aim_err *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int aim_err_prefix(aim_err *e, const char *fmt, ...)
{
    if (e) {
        char buf[2 * AIM_ERR_MAX + 2];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, AIM_ERR_MAX, fmt, ap);
        va_end(ap);
        if (n < 0)
            n = 0;
        if (n > AIM_ERR_MAX - 1)
            n = AIM_ERR_MAX - 1;
        buf[n] = ':';
        buf[n + 1] = ' ';
        memcpy(buf + n + 2, e->msg, AIM_ERR_MAX);
        buf[n + 2 + AIM_ERR_MAX - 1] = 0;
        memcpy(e->msg, buf, AIM_ERR_MAX - 1);
        e->msg[AIM_ERR_MAX - 1] = 0;
    }
    return -1;
}

/* ------------------------------------------------------------ allocation */

static void oom(size_t n)
{
    /* the one place the library writes to stderr: it is about to abort */
    aim_write_atomic_abort();
    fprintf(stderr, "aim: out of memory allocating %zu bytes\n", n);
    abort();
}

void *aim_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *aim_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *aim_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *aim_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = aim_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

char *aim_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    char *p = aim_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void *aim_xaligned(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0)
        oom(n);
    return p;
}

void *aim_try_malloc(size_t n)
{
    if ((uint64_t)n > AIM_MAX_ALLOC)
        return NULL;
    return malloc(n ? n : 1);
}

void *aim_try_aligned_zero(size_t n)
{
    void *p = NULL;
    if ((uint64_t)n > aim_mem_limit() || posix_memalign(&p, 64, n ? n : 64) != 0)
        return NULL;
    memset(p, 0, n ? n : 64);
    return p;
}

static uint64_t mem_limit; /* 0: the machine's memory */

/* a cgroup's memory limit (v2, then v1), or 0 when there is none */
static uint64_t cgroup_limit(void)
{
    static const char *const files[] = {"/sys/fs/cgroup/memory.max",
                                        "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f)
            continue;
        unsigned long long v = 0;
        int got = fscanf(f, "%llu", &v); /* "max" reads as nothing */
        fclose(f);
        if (got == 1 && v > 0)
            return v;
    }
    return 0;
}

uint64_t aim_mem_limit(void)
{
    if (mem_limit)
        return mem_limit;
    static uint64_t machine; /* the same for the whole run: read once */
    if (!machine) {
        long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
        uint64_t m = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : AIM_MAX_ALLOC;
        uint64_t cg = cgroup_limit();
        machine = cg && cg < m ? cg : m;
    }
    return machine;
}

void aim_set_mem_limit(uint64_t bytes)
{
    mem_limit = bytes;
}

void aim_fmt_bytes(char *buf, size_t len, uint64_t n)
{
    if (n >= (uint64_t)1 << 30)
        snprintf(buf, len, "%.1f GiB", (double)n / (1 << 30));
    else if (n >= (uint64_t)1 << 20)
        snprintf(buf, len, "%.1f MiB", (double)n / (1 << 20));
    else
        snprintf(buf, len, "%llu bytes", (unsigned long long)n);
}

int aim_size_mul(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

int aim_size_add(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return -1;
    *out = a + b;
    return 0;
}

int aim_shape_numel(const int64_t *shape, int ndim, uint64_t limit, uint64_t *out)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        uint64_t d = (uint64_t)shape[i];
        if (d && n > limit / d)
            return -1;
        n *= d;
    }
    if (n > limit)
        return -1;
    *out = n;
    return 0;
}

/* ------------------------------------------------------------------ files */

int64_t aim_file_size(const char *path, aim_err *e)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return aim_errf(e, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return aim_errf(e, "%s: is a folder, not a file", path);
    if (!S_ISREG(st.st_mode))
        return aim_errf(e, "%s: not a regular file", path);
    return (int64_t)st.st_size;
}

int aim_read_file(const char *path, uint64_t max_bytes, uint8_t **data,
                  size_t *len, aim_err *e)
{
    *data = NULL;
    *len = 0;
    int64_t size = aim_file_size(path, e);
    if (size < 0)
        return -1;
    if ((uint64_t)size > max_bytes)
        return aim_errf(e, "%s: file is too large (%lld bytes, limit %llu)", path,
                        (long long)size, (unsigned long long)max_bytes);
    FILE *f = fopen(path, "rb");
    if (!f)
        return aim_errf(e, "%s: %s", path, strerror(errno));
    uint8_t *buf = aim_try_malloc((size_t)size);
    if (!buf) {
        fclose(f);
        return aim_errf(e, "%s: out of memory reading %lld bytes", path, (long long)size);
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != (size_t)size) {
        free(buf);
        return aim_errf(e, "%s: read error (got %zu of %lld bytes)", path, got,
                        (long long)size);
    }
    *data = buf;
    *len = (size_t)size;
    return 0;
}

/* The temporaries being written now, for aim_write_atomic_abort (a signal
 * handler): a slot is claimed (1), filled, published (2) and freed (0). */
#define INFLIGHT_SLOTS 8
static struct {
    atomic_int state;
    char path[4096];
} inflight[INFLIGHT_SLOTS];

static int inflight_add(const char *tmp)
{
    if (strlen(tmp) >= sizeof inflight[0].path)
        return -1;
    for (int i = 0; i < INFLIGHT_SLOTS; i++) {
        int free_slot = 0;
        if (atomic_compare_exchange_strong(&inflight[i].state, &free_slot, 1)) {
            strcpy(inflight[i].path, tmp);
            atomic_store(&inflight[i].state, 2);
            return i;
        }
    }
    return -1; /* all busy: this one is not removed by a signal */
}

static void inflight_drop(int slot)
{
    if (slot >= 0)
        atomic_store(&inflight[slot].state, 0);
}

void aim_write_atomic_abort(void)
{
    for (int i = 0; i < INFLIGHT_SLOTS; i++) {
        int published = 2;
        if (atomic_compare_exchange_strong(&inflight[i].state, &published, 1))
            unlink(inflight[i].path); /* async-signal-safe */
    }
}

/* a new temporary beside path, PATH.tmp.PID.RANDOM: O_EXCL so nothing that
 * is already there (a file, a planted symlink) is opened, O_NOFOLLOW for
 * good measure; mode 0666 less the umask, as a plain create would have */
static int open_temp(const char *path, char **tmp)
{
    static atomic_uint counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (int tries = 0; tries < 100; tries++) {
        uint64_t r = aim_hash64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                                ((uint64_t)getpid() << 40) ^ atomic_fetch_add(&counter, 1));
        *tmp = aim_xasprintf("%s.tmp.%ld.%08x", path, (long)getpid(), (unsigned)(r >> 32));
        int fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
        free(*tmp);
    }
    *tmp = NULL;
    errno = EEXIST;
    return -1;
}

/* NAME.tmp.PID.XXXXXXXX (open_temp's pattern; NAME.tmp.PID from versions
 * before the random part): the PID, or -1 if name is not such a temporary */
static long temp_pid(const char *name)
{
    const char *t = NULL;
    for (const char *q = strstr(name, ".tmp."); q; q = strstr(q + 1, ".tmp."))
        t = q; /* the last ".tmp." */
    if (!t || t == name)
        return -1;
    const char *ps = t + 5;
    char *end;
    errno = 0;
    long pid = strtol(ps, &end, 10);
    if (end == ps || *ps < '0' || *ps > '9' || errno || pid <= 0 || pid > INT_MAX)
        return -1;
    if (*end == '\0')
        return pid;
    if (*end != '.')
        return -1;
    const char *hex = end + 1;
    if (strlen(hex) != 8)
        return -1;
    for (int i = 0; i < 8; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return -1;
    return pid;
}

int aim_remove_dead_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long pid = temp_pid(de->d_name);
        if (pid < 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* alive (or not ours to ask): it may still be writing */
        char *p = aim_xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && unlink(p) == 0)
            removed++;
        free(p);
    }
    closedir(d);
    return removed;
}

int aim_write_atomic(const char *path, aim_write_fn fn, void *ctx, aim_err *e)
{
    char *tmp;
    int fd = open_temp(path, &tmp);
    if (fd < 0) {
        aim_errf(e, "%s: cannot write: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    int slot = inflight_add(tmp);
    /* replacing a file keeps its permissions (a 0600 file stays private) */
    struct stat old;
    if (stat(path, &old) == 0 && S_ISREG(old.st_mode))
        fchmod(fd, old.st_mode & 0777); /* best effort; no set-id bits */
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        aim_errf(e, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        inflight_drop(slot);
        free(tmp);
        return -1;
    }
    int rc = fn(f, ctx, e);
    if (rc == 0 && fflush(f) != 0)
        rc = aim_errf(e, "%s: write failed: %s", path, strerror(errno));
    if (rc == 0 && ferror(f))
        rc = aim_errf(e, "%s: write failed", path);
    if (rc == 0 && fsync(fileno(f)) != 0)
        rc = aim_errf(e, "%s: fsync failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && rc == 0)
        rc = aim_errf(e, "%s: write failed: %s", path, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = aim_errf(e, "%s: cannot rename temporary file into place: %s", path,
                      strerror(errno));
    if (rc != 0)
        unlink(tmp);
    inflight_drop(slot);
    free(tmp);
    if (rc != 0)
        return -1;
    char *dir = aim_dirname(path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd); /* best effort: some file systems refuse it */
        close(dfd);
    }
    free(dir);
    return 0;
}

int aim_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int aim_mkdir_p(const char *path, aim_err *e)
{
    char buf[4096];
    if (!path[0] || strlen(path) >= sizeof buf)
        return aim_errf(e, "%s: bad folder name", path);
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = buf + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return aim_errf(e, "%s: cannot create: %s", buf, strerror(errno));
        *s = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return aim_errf(e, "%s: cannot create: %s", buf, strerror(errno));
    if (!aim_is_dir(buf))
        return aim_errf(e, "%s: exists and is not a folder", buf);
    return 0;
}

const char *aim_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

char *aim_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return aim_xstrdup(".");
    if (slash == path)
        return aim_xstrdup("/");
    return aim_xasprintf("%.*s", (int)(slash - path), path);
}

/* ---------------------------------------------------------------- dtypes */

size_t aim_dtype_size(aim_dtype t)
{
    switch (t) {
    case AIM_F64: case AIM_I64: case AIM_U64: return 8;
    case AIM_F32: case AIM_I32: case AIM_U32: return 4;
    case AIM_F16: case AIM_BF16: case AIM_I16: case AIM_U16: return 2;
    case AIM_U8: case AIM_I8: case AIM_BOOL: return 1;
    default: return 0;
    }
}

const char *aim_dtype_name(aim_dtype t)
{
    switch (t) {
    case AIM_F32: return "F32";
    case AIM_F64: return "F64";
    case AIM_U8: return "U8";
    case AIM_I8: return "I8";
    case AIM_I32: return "I32";
    case AIM_I64: return "I64";
    case AIM_F16: return "F16";
    case AIM_BF16: return "BF16";
    case AIM_BOOL: return "BOOL";
    case AIM_I16: return "I16";
    case AIM_U16: return "U16";
    case AIM_U32: return "U32";
    case AIM_U64: return "U64";
    default: return "?";
    }
}

uint64_t aim_array_numel(const aim_array *a)
{
    uint64_t n = 1;
    for (int i = 0; i < a->ndim; i++)
        n *= (uint64_t)a->shape[i];
    return n;
}

void aim_array_free(aim_array *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
