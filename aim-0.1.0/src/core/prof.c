/*
 * prof.c - names of the profiled kernels (aim/prof.h).
 */
#include "config.h"

#include <string.h>

#include "aim/prof.h"

static const char *const names[] = {
#define AIM_PROF_NAME(id, pass, name, gemm) name,
    AIM_PROF_KERNELS(AIM_PROF_NAME)
#undef AIM_PROF_NAME
};
static const char *const passes[] = {
#define AIM_PROF_PASS(id, pass, name, gemm) pass,
    AIM_PROF_KERNELS(AIM_PROF_PASS)
#undef AIM_PROF_PASS
};
static const int gemms[] = {
#define AIM_PROF_GEMM(id, pass, name, gemm) gemm,
    AIM_PROF_KERNELS(AIM_PROF_GEMM)
#undef AIM_PROF_GEMM
};

const char *aim_prof_name(int k)
{
    return k >= 0 && k < AIM_K_COUNT ? names[k] : "?";
}

const char *aim_prof_pass(int k)
{
    return k >= 0 && k < AIM_K_COUNT ? passes[k] : "?";
}

int aim_prof_is_gemm(int k)
{
    return k >= 0 && k < AIM_K_COUNT ? gemms[k] : 0;
}

void aim_prof_reset(aim_prof *p)
{
    memset(p, 0, sizeof *p);
}
