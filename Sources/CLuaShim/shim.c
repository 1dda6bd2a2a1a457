/*
 * The C half of LuaBridge: capped allocator, budget hook, protected calls
 * with a traceback, the Swift-function trampolines, and the state setup.
 *
 * Memory cap: every state has a lshim_ctl (also the allocator's userdata,
 * and reachable from L through lua_getextraspace). The allocator refuses
 * allocations that would take `used` above `limit` -- but only while
 * `suspended` is 0, i.e. while Lua code runs inside lshim_call. While the
 * bridge itself pushes values from Swift (building request/context tables,
 * strings, and inside every Swift function called from Lua) the cap is
 * suspended: a memory error raised there would longjmp through Swift
 * frames. The memory then still counts towards `used`, so the next Lua
 * allocation beyond the limit fails. A failed allocation inside Lua raises
 * "not enough memory" (LUA_ERRMEM) in the protected call; Lua runs an
 * emergency full collection before giving up.
 *
 * Time budget: a count hook (every LSHIM_HOOK_COUNT VM instructions) compares
 * CLOCK_MONOTONIC with the deadline set by lshim_call and raises
 * "handler exceeded its time budget of X s". Once fired, it fires on every
 * instruction so that a script cannot swallow the error with pcall and go on.
 * The hook is installed once on the main thread and inherited by coroutines;
 * outside a call the deadline is +inf. Limitation: C functions that run long
 * without returning to the VM (string pattern backtracking, string.rep or
 * table.concat of huge inputs) are not interruptible until they return.
 *
 * The traceback message handler is a light C function pushed below the called
 * function by lshim_call (no allocation, no lookup) -- the equivalent of a
 * registry ref.
 */
#include "CLuaShim.h"

#include <lua5.4/lua.h>
#include <lua5.4/lauxlib.h>
#include <lua5.4/lualib.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LSHIM_HOOK_COUNT 1000

typedef struct {
    size_t used;
    size_t limit;
    int suspended;      /* 1: cap not enforced (bridge code), 0: enforced (Lua code) */
    int timed_out;      /* the hook fired during the current call */
    double deadline;    /* CLOCK_MONOTONIC seconds; HUGE_VAL outside calls */
    double budget;      /* seconds per call */
} lshim_ctl;

static lshim_ctl *CTL(lua_State *L) { return *(lshim_ctl **)lua_getextraspace(L); }

static double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *lshim_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    lshim_ctl *c = (lshim_ctl *)ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        c->used -= old;
        return NULL;
    }
    if (!c->suspended && nsize > old && c->used - old + nsize > c->limit)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p) c->used = c->used - old + nsize;
    return p;
}

static void lshim_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lshim_ctl *c = CTL(L);
    if (monotonic_now() > c->deadline) {
        c->timed_out = 1;
        lua_sethook(L, lshim_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "handler exceeded its time budget of %f s", (lua_Number)c->budget);
    }
}

lua_State *lshim_newstate(size_t memory_limit, double budget) {
    lshim_ctl *c = (lshim_ctl *)calloc(1, sizeof *c);
    if (!c) return NULL;
    c->limit = memory_limit;
    c->suspended = 1;
    c->deadline = HUGE_VAL;
    c->budget = budget;
    lua_State *L = lua_newstate(lshim_alloc, c);
    if (!L) { free(c); return NULL; }
    *(lshim_ctl **)lua_getextraspace(L) = c;
    lua_sethook(L, lshim_hook, LUA_MASKCOUNT, LSHIM_HOOK_COUNT);
    return L;
}

void lshim_close(lua_State *L) {
    lshim_ctl *c = CTL(L);
    c->suspended = 1;
    lua_close(L);
    free(c);
}

size_t lshim_memory_used(lua_State *L) { return CTL(L)->used; }
void lshim_set_budget(lua_State *L, double budget) { CTL(L)->budget = budget; }
void lshim_collect_garbage(lua_State *L) { lua_gc(L, LUA_GCCOLLECT); }

/* Message handler: adds a traceback. Runs with the cap suspended so that
 * building the traceback does not itself fail. */
static int lshim_msgh(lua_State *L) {
    CTL(L)->suspended = 1;
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int lshim_call(lua_State *L, int nargs, int nresults) {
    lshim_ctl *c = CTL(L);
    int base = lua_gettop(L) - nargs;   /* the function */
    lua_pushcfunction(L, lshim_msgh);
    lua_insert(L, base);
    /* save/restore: calls may nest (a Swift function called from Lua calling
     * back into the host) */
    double saved_deadline = c->deadline;
    int saved_suspended = c->suspended;
    int saved_timed_out = c->timed_out;
    c->deadline = monotonic_now() + c->budget;
    c->timed_out = 0;
    c->suspended = 0;
    int status = lua_pcall(L, nargs, nresults, base);
    c->suspended = saved_suspended;
    int timed_out = c->timed_out;
    c->deadline = saved_deadline;
    c->timed_out = saved_timed_out;
    lua_sethook(L, lshim_hook, LUA_MASKCOUNT, LSHIM_HOOK_COUNT);  /* undo count 1 after a timeout */
    lua_remove(L, base);
    if (status == LUA_ERRRUN && timed_out) return LSHIM_TIMEOUT;
    return status;
}

/* ---- trampolines ---- */

static int call_swift(lua_State *L) {
    lshim_swift_fn fn = (lshim_swift_fn)lua_touserdata(L, lua_upvalueindex(1));
    lshim_ctl *c = CTL(L);
    int saved = c->suspended;
    c->suspended = 1;
    int n = fn(L);
    c->suspended = saved;
    if (n < 0) return lua_error(L);
    return n;
}

static int lshim_trampoline(lua_State *L) { return call_swift(L); }

/* Like print: tostring every argument, join with spaces, then call Swift
 * with that single string as argument 1. */
static int lshim_trampoline_concat(lua_State *L) {
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_insert(L, 1);
    lua_settop(L, 1);
    return call_swift(L);
}

static void push_swift(lua_State *L, lshim_swift_fn fn, void *owner, int concat,
                       int with_int, lua_Integer extra) {
    lua_pushlightuserdata(L, (void *)fn);
    lua_pushlightuserdata(L, owner);
    if (with_int) lua_pushinteger(L, extra);
    lua_pushcclosure(L, concat ? lshim_trampoline_concat : lshim_trampoline, with_int ? 3 : 2);
}

void *lshim_owner(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(2)); }
long long lshim_upvalue_integer(lua_State *L) { return (long long)lua_tointeger(L, lua_upvalueindex(3)); }

/* ---- registry helpers ---- */

int lshim_ref(lua_State *L) { return luaL_ref(L, LUA_REGISTRYINDEX); }
void lshim_unref(lua_State *L, int ref) { luaL_unref(L, LUA_REGISTRYINDEX, ref); }
int lshim_getref(lua_State *L, int ref) { return lua_rawgeti(L, LUA_REGISTRYINDEX, ref); }

int lshim_rawgetglobal(lua_State *L, const char *name) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pushstring(L, name);
    int t = lua_rawget(L, -2);
    lua_remove(L, -2);
    return t;
}

static char headers_mt_key;
static char sites_key;
static char tracker_key;

void lshim_set_headers_metatable(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &headers_mt_key);
    lua_setmetatable(L, idx);
}

/* __index of request.headers: retry with the key lower-cased (ASCII). */
static int headers_index(lua_State *L) {
    if (lua_type(L, 2) != LUA_TSTRING) return 0;
    size_t n;
    const char *s = lua_tolstring(L, 2, &n);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, n);
    int changed = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'Z') { ch = (char)(ch - 'A' + 'a'); changed = 1; }
        p[i] = ch;
    }
    luaL_pushresultsize(&b, n);
    if (!changed) return 0;
    lua_rawget(L, 1);
    return 1;
}

static int os_exit_disabled(lua_State *L) {
    return luaL_error(L, "os.exit is disabled in LuaStrands");
}

static int strands_now(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

int lshim_json_encode(lua_State *L);
int lshim_json_decode(lua_State *L);

static int setup_cf(lua_State *L) {
    const lshim_setup_info *info = (const lshim_setup_info *)lua_touserdata(L, 1);
    luaL_openlibs(L);

    /* Sandbox: only os.exit is taken away; the other standard libraries
     * (io, os, debug, package incl. C modules) stay available. */
    lua_getglobal(L, "os");
    lua_pushcfunction(L, os_exit_disabled);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);

    /* require finds modules next to the script first */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", info->script_dir, info->script_dir,
                    lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);

    lua_createtable(L, 0, 8);  /* strands */
    push_swift(L, info->send_room, info->owner, 0, 0, 0);
    lua_setfield(L, -2, "send_room_message");
    push_swift(L, info->send_client, info->owner, 0, 0, 0);
    lua_setfield(L, -2, "send_private_message");
    push_swift(L, info->broadcast, info->owner, 0, 0, 0);
    lua_setfield(L, -2, "broadcast_message");
    lua_pushcfunction(L, strands_now);
    lua_setfield(L, -2, "now");

    lua_createtable(L, 0, 3);  /* strands.log */
    static const char *const levels[] = {"info", "warn", "error"};
    for (int i = 0; i < 3; i++) {
        push_swift(L, info->log, info->owner, 1, 1, i);
        lua_setfield(L, -2, levels[i]);
    }
    lua_getfield(L, -1, "info");
    lua_setglobal(L, "print");  /* print goes to the operator's log */
    lua_setfield(L, -2, "log");

    lua_createtable(L, 0, 2);  /* strands.json */
    lua_pushcfunction(L, lshim_json_encode);
    lua_setfield(L, -2, "encode");
    lua_pushcfunction(L, lshim_json_decode);
    lua_setfield(L, -2, "decode");
    lua_setfield(L, -2, "json");

    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "strands");  /* require("strands") */
    lua_pop(L, 1);
    lua_setglobal(L, "strands");

    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, headers_index);
    lua_setfield(L, -2, "__index");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &headers_mt_key);

    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &sites_key);
    return 0;
}

int lshim_setup(lua_State *L, const lshim_setup_info *info) {
    lua_pushcfunction(L, setup_cf);
    lua_pushlightuserdata(L, (void *)info);
    return lshim_call(L, 1, 0);
}

/* ---- handler assignment tracking during the top-level run ---- */

static int is_handler_name(const char *s) {
    return strcmp(s, "on_connection_request") == 0 || strcmp(s, "on_new_connection") == 0 ||
           strcmp(s, "on_message") == 0 || strcmp(s, "on_disconnect") == 0 ||
           strcmp(s, "on_error") == 0;
}

static int tracker_newindex(lua_State *L) {
    if (lua_type(L, 2) == LUA_TSTRING && is_handler_name(lua_tostring(L, 2))) {
        lua_Debug ar;
        if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            lua_rawgetp(L, LUA_REGISTRYINDEX, &sites_key);
            lua_pushvalue(L, 2);
            lua_rawget(L, -2);
            if (lua_isnil(L, -1)) {
                lua_pushvalue(L, 2);
                lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
                lua_rawset(L, -4);
            }
            lua_pop(L, 2);
        }
    }
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

void lshim_push_assignment_site(lua_State *L, const char *name) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &sites_key);
    lua_pushstring(L, name);
    lua_rawget(L, -2);
    lua_remove(L, -2);
}

int lshim_run_script(lua_State *L, const char *path) {
    int status = luaL_loadfilex(L, path, "t");
    if (status != LUA_OK) return status;
    /* install the tracker as _G's metatable (unless the script's environment
     * already has one) */
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, tracker_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &tracker_key);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    if (lua_getmetatable(L, -1)) {
        lua_pop(L, 3);
    } else {
        lua_insert(L, -2);
        lua_setmetatable(L, -2);
        lua_pop(L, 1);
    }
    status = lshim_call(L, 0, 0);
    /* remove the tracker if it is still there */
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    if (lua_getmetatable(L, -1)) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &tracker_key);
        int ours = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (ours) {
            lua_pushnil(L);
            lua_setmetatable(L, -2);
        }
    }
    lua_pop(L, 1);
    return status;
}
