/*
 * l_stdio.c - Lua's standard streams when a full-screen front end owns the
 * terminal (aim_engine_detach_stdio; the workbench calls it). Without this a
 * console line could wreck the screen or hang the training run beside it:
 * io.read() would wait forever on the terminal the screen reads its keys
 * from (no Ctrl-C reaches a blocked read), io.write would scribble over the
 * screen, and os.execute("cat") would hand the terminal to a child.
 *
 *   - standard input reads as empty (/dev/null): io.read() and io.lines()
 *     give nil at once, io.stdin:read() too;
 *   - io.write, io.stdout and io.stderr go to the console like print()
 *     (a stdio stream whose writes land in the engine's output hook);
 *   - os.execute(cmd) runs cmd with no terminal (stdin /dev/null, in a new
 *     session, stdout and stderr into the console as they come) and Ctrl-C
 *     (aim_engine_interrupt) kills it and raises "interrupted!"; the results
 *     are os.execute's own (true|nil, "exit"|"signal", code);
 *   - io.popen(cmd, mode) runs cmd with stdin (mode "r") or stdout (mode "w")
 *     on /dev/null and stderr merged, so it cannot read the terminal.
 *
 * The console stream is closed before the state (l_stdio_close), so nothing
 * writes through it after the engine is gone.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>

#include "lua/l_aim.h"

static const char stream_key = 's';

/* ------------------------------------------------------------ the console stream */

static ssize_t console_write(void *cookie, const char *buf, size_t n)
{
    l_engine_output(cookie, buf, n);
    return (ssize_t)n;
}

/* io.stdout:close() and friends: as liolib does for the standard files */
static int console_noclose(lua_State *L)
{
    luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    p->closef = console_noclose; /* keep it open */
    luaL_pushfail(L);
    lua_pushliteral(L, "cannot close standard file");
    return 2;
}

/* ------------------------------------------------------------ os.execute */

/* Read what the child wrote (fd non-blocking) into the console. 0 at EOF. */
static int drain(aim_engine *eng, int fd)
{
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            l_engine_output(eng, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n == 0 ? 0 : 1; /* EAGAIN: nothing more for now */
    }
}

static int l_execute(lua_State *L)
{
    const char *cmd = luaL_optstring(L, 1, NULL);
    if (!cmd) { /* is a shell available? */
        lua_pushboolean(L, access("/bin/sh", X_OK) == 0);
        return 1;
    }
    aim_engine *eng = l_engine(L);
    int pfd[2];
    if (pipe(pfd) != 0)
        return luaL_fileresult(L, 0, NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return luaL_fileresult(L, 0, NULL);
    }
    if (pid == 0) { /* the child: no terminal, output into the pipe */
        setsid();
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) {
            dup2(nul, 0);
            close(nul);
        }
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    fcntl(pfd[0], F_SETFL, fcntl(pfd[0], F_GETFL) | O_NONBLOCK);
    int open_pipe = 1, status = 0, killed = 0;
    for (;;) {
        if (open_pipe) {
            struct pollfd p = {.fd = pfd[0], .events = POLLIN};
            if (poll(&p, 1, 100) > 0)
                open_pipe = drain(eng, pfd[0]);
        } else {
            usleep(20000);
        }
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            if (open_pipe)
                drain(eng, pfd[0]); /* what is left (a background child may hold it open) */
            break;
        }
        if (w < 0 && errno != EINTR)
            break;
        if (!killed && eng && aim_engine_interrupted(eng)) {
            kill(-pid, SIGTERM); /* its session: the shell and what it started */
            kill(pid, SIGTERM);
            usleep(200000);
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            killed = 1;
        }
    }
    close(pfd[0]);
    if (killed)
        return luaL_error(L, "interrupted!");
    if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        if (code == 0)
            lua_pushboolean(L, 1);
        else
            luaL_pushfail(L);
        lua_pushliteral(L, "exit");
        lua_pushinteger(L, code);
    } else {
        luaL_pushfail(L);
        lua_pushliteral(L, "signal");
        lua_pushinteger(L, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    return 3;
}

/* ------------------------------------------------------------ setup */

/* io.popen(cmd, mode) with the terminal out of reach (upvalue: the original) */
static const char popen_wrapper[] =
    "local popen = ...\n"
    "return function(cmd, mode)\n"
    "  cmd = tostring(cmd)\n"
    "  mode = mode or 'r'\n"
    "  if mode:sub(1, 1) == 'w' then\n"
    "    return popen('exec >/dev/null 2>&1; ' .. cmd, mode)\n"
    "  end\n"
    "  return popen('exec </dev/null 2>&1; ' .. cmd, mode)\n"
    "end\n";

static int detach(lua_State *L)
{
    aim_engine *eng = lua_touserdata(L, 1);
    lua_getglobal(L, "io"); /* eng io */
    luaL_checktype(L, -1, LUA_TTABLE);
    /* standard input: empty */
    lua_getfield(L, -1, "open");
    lua_pushliteral(L, "/dev/null");
    lua_pushliteral(L, "r");
    lua_call(L, 2, 2); /* eng io f|nil msg */
    if (lua_isnil(L, -2))
        return luaL_error(L, "cannot open /dev/null: %s", lua_tostring(L, -1));
    lua_pop(L, 1);                    /* eng io f */
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "stdin");     /* io.stdin = f */
    lua_getfield(L, -2, "input");     /* eng io f input */
    lua_insert(L, -2);
    lua_call(L, 1, 0);                /* io.input(f) */
    /* standard output and error: the console */
    luaL_Stream *p = lua_newuserdatauv(L, sizeof *p, 0); /* eng io s */
    p->closef = NULL; /* "closed" until it is complete, as liolib does */
    luaL_setmetatable(L, LUA_FILEHANDLE);
    cookie_io_functions_t fn = {.write = console_write};
    p->f = fopencookie(eng, "w", fn);
    if (!p->f)
        return luaL_error(L, "cannot make the console stream: %s", strerror(errno));
    setvbuf(p->f, NULL, _IONBF, 0); /* in order with print() */
    p->closef = console_noclose;
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &stream_key);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "stdout");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "stderr");
    lua_getfield(L, -2, "output"); /* eng io s output */
    lua_insert(L, -2);
    lua_call(L, 1, 0);             /* io.output(s) */
    /* io.popen without the terminal */
    if (luaL_loadstring(L, popen_wrapper) != LUA_OK)
        return lua_error(L);
    lua_getfield(L, -2, "popen"); /* eng io chunk popen */
    lua_call(L, 1, 1);            /* eng io wrapper */
    lua_setfield(L, -2, "popen");
    /* os.execute without the terminal, interruptible */
    lua_getglobal(L, "os");
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_pushcfunction(L, l_execute);
    lua_setfield(L, -2, "execute");
    return 0;
}

int l_stdio_detach(lua_State *L, aim_engine *eng, aim_err *e)
{
    lua_pushcfunction(L, detach);
    lua_pushlightuserdata(L, eng);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        aim_errf(e, "lua: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

void l_stdio_close(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &stream_key);
    luaL_Stream *p = lua_touserdata(L, -1);
    if (p && p->f) {
        fclose(p->f);
        p->f = NULL; /* the handle's __gc then has nothing to close */
        p->closef = NULL;
    }
    lua_pop(L, 1);
}
