#ifndef CLUASHIM_H
#define CLUASHIM_H
/*
 * CLuaShim: the C half of LuaBridge. Everything that may raise a Lua error
 * (luaL_check*, JSON, the time-budget hook, argument concatenation for logs)
 * lives here, so that no Lua error ever longjmps through a Swift frame.
 *
 * Lua functions implemented in Swift are plain C function pointers
 * (lshim_swift_fn). They are always called through a C trampoline which
 *   - suspends the memory cap while Swift runs (so a push cannot fail),
 *   - calls the Swift function,
 *   - if it returned a negative number, raises the value on top of the stack
 *     with lua_error (from C, after the Swift frame is gone).
 * The Swift function finds its owner with lshim_owner(L) (upvalue 2).
 *
 * lua_State is only forward-declared here so the Swift module CLuaShim does
 * not re-export lua.h (the CLua module does).
 */
#include <stddef.h>
#include <stdint.h>

struct lua_State;

/* Returns the number of results, or a negative value meaning "the error
 * message is on top of the stack; raise it". */
typedef int (*lshim_swift_fn)(struct lua_State *L);

/* Status returned by lshim_call / lshim_run_script in addition to LUA_OK,
 * LUA_ERRRUN, LUA_ERRMEM, LUA_ERRERR, LUA_ERRSYNTAX, LUA_ERRFILE. */
#define LSHIM_TIMEOUT 100

/* Nesting limit of strands.json.encode/decode. */
#define LSHIM_JSON_MAX_DEPTH 128

typedef struct {
    const char *script_dir;     /* prepended to package.path */
    void *owner;                /* handed to every Swift function (lshim_owner) */
    lshim_swift_fn send_room;   /* strands.send_room_message */
    lshim_swift_fn send_client; /* strands.send_private_message */
    lshim_swift_fn broadcast;   /* strands.broadcast_message */
    lshim_swift_fn log;         /* strands.log.{info,warn,error}, print; level in lshim_upvalue_integer */
} lshim_setup_info;

/* A fresh state with the capped allocator and the budget hook installed.
 * memory_limit in bytes, budget in seconds. NULL if out of memory. */
struct lua_State *lshim_newstate(size_t memory_limit, double budget);
void lshim_close(struct lua_State *L);
size_t lshim_memory_used(struct lua_State *L);
void lshim_set_budget(struct lua_State *L, double budget);
/* full collection (finalizers run protected, cap suspended) */
void lshim_collect_garbage(struct lua_State *L);

/* Opens the standard libraries, disables os.exit, sets package.path, builds
 * the `strands` table and the registry helpers. Protected; on failure the
 * message is on top of the stack. */
int lshim_setup(struct lua_State *L, const lshim_setup_info *info);

/* Loads the file (chunk name "@path", text only) and runs it as a handler
 * call (budget + memory cap). Records where handler globals get assigned.
 * On failure the message is on top of the stack. */
int lshim_run_script(struct lua_State *L, const char *path);
/* Pushes "src:line" where global `name` was first assigned during
 * lshim_run_script, or nil. */
void lshim_push_assignment_site(struct lua_State *L, const char *name);

/* lua_pcall with the traceback message handler, the time budget and the
 * memory cap. Function and nargs arguments on the stack, like lua_pcall.
 * Returns a lua status or LSHIM_TIMEOUT; on failure exactly one value (the
 * message) replaces function and arguments. */
int lshim_call(struct lua_State *L, int nargs, int nresults);

/* Registry helpers (LUA_REGISTRYINDEX is a macro Swift cannot import). */
int lshim_ref(struct lua_State *L);            /* pops the value */
void lshim_unref(struct lua_State *L, int ref);
int lshim_getref(struct lua_State *L, int ref); /* pushes; returns the type */
/* raw lookup of a global (no metamethods); pushes it, returns its type */
int lshim_rawgetglobal(struct lua_State *L, const char *name);
/* sets the request-headers metatable (case-insensitive __index) on the table at idx */
void lshim_set_headers_metatable(struct lua_State *L, int idx);

/* For Swift functions (inside a trampoline call). */
void *lshim_owner(struct lua_State *L);
long long lshim_upvalue_integer(struct lua_State *L);  /* upvalue 3 */

#endif
