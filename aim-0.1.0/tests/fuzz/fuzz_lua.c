/* fuzz_lua.c - the Lua entry points that take paths (aim.load,
 * aim.tensor.load, aim.data.open) on a file holding the input: each must
 * return nil, message or raise a Lua error, never crash. */
#include "config.h"

#include <stdlib.h>

#include "aim/engine.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static aim_engine *eng;
    aim_err e;
    if (!eng && !(eng = aim_engine_new(NULL, &e)))
        abort();
    const char *p = fuzz_file(data, size, "input.bin");
    char code[512];
    /* the path is plain ($TMPDIR/aimfuzz.<pid>/input.bin): no quoting needed */
    snprintf(code, sizeof code,
             "local p = '%s'\n"
             "for _, f in ipairs{aim.load, aim.tensor.load, aim.data.open} do\n"
             "  local ok, a, b = pcall(f, p)\n"
             "  if ok and a == nil and type(b) ~= 'string' then error('nil without a message') end\n"
             "end\n",
             p);
    char *text = NULL;
    aim_eval_status st = aim_engine_eval(eng, code, "=fuzz", 0, &text);
    if (st != AIM_EVAL_OK && text && strstr(text, "nil without a message"))
        abort();
    free(text);
    return 0;
}
