/*
 * gemm_libs.h - run a test's model cases once on each fp32 GEMM library
 * (aim_gemm: OpenBLAS's sgemm, oneDNN's fp32 matmul):
 *
 *     for (int li = 0; li < GEMM_LIBS; li++)
 *         if (gemm_library(li))
 *             ...the cases...
 *     gemm_library_done();
 *
 * gemm_library sets AIM_GEMM, from which every model made after it
 * resolves AIM_GEMM_AUTO; it returns 0 after a TAP SKIP with the reason
 * where the library is not there (oneDNN not built in). Include after
 * tap.h and aim/model.h.
 */
#ifndef AIM_TESTS_GEMM_LIBS_H
#define AIM_TESTS_GEMM_LIBS_H

#define GEMM_LIBS 2

static int gemm_library(int li)
{
    static const char *const lib[GEMM_LIBS] = {"openblas", "onednn"};
    aim_err e = {{0}};
    aim_gemm g;
    setenv("AIM_GEMM", lib[li], 1);
    if (aim_gemm_resolve(AIM_GEMM_AUTO, &g, NULL, &e) != 0) {
        tap_skip(e.msg);
        return 0;
    }
    tap_diag("fp32 GEMMs on %s", lib[li]);
    return 1;
}

static void gemm_library_done(void)
{
    unsetenv("AIM_GEMM");
}

#endif
