/*
 * strands.json.encode / strands.json.decode (RFC 8259), as lua_CFunctions.
 *
 * Both run their work in an inner protected call, so every problem with the
 * input becomes `nil, message`; only memory errors are re-raised. Buffers are
 * Lua userdata (allocated under the state's memory cap, collected on error).
 *
 * encode: nil -> null; booleans; integers as integers; floats with enough
 *   digits to round-trip and always with a '.' or exponent (so they decode as
 *   floats); NaN/inf -> error. Strings: '"', '\\' and control characters are
 *   escaped; other bytes are copied as they are (no UTF-8 validation).
 *   Tables whose keys are exactly 1..n -> arrays; an empty table -> {} (an
 *   object); any other table -> object, with integer/float keys written as
 *   strings and other key types an error. Cycles, functions, userdata,
 *   threads and nesting deeper than LSHIM_JSON_MAX_DEPTH -> error.
 * decode: objects -> tables (a member whose value is null is dropped, since a
 *   Lua table cannot hold nil), arrays -> tables 1..n (null elements leave
 *   holes), numbers without fraction/exponent that fit in 64 bits -> integers,
 *   others -> floats, \u escapes including surrogate pairs -> UTF-8 (a lone
 *   surrogate is an error). A top-level null decodes to a single nil.
 */
#include "CLuaShim.h"

#include <lua5.4/lua.h>
#include <lua5.4/lauxlib.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t len, cap;
    int slot; /* stack slot holding the userdata */
} jbuf;

static void jb_init(lua_State *L, jbuf *b, int slot) {
    b->cap = 256;
    b->len = 0;
    b->p = (char *)lua_newuserdatauv(L, b->cap, 0);
    lua_replace(L, slot);
    b->slot = slot;
}

static void jb_reserve(lua_State *L, jbuf *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t nc = b->cap * 2;
    while (nc < b->len + extra) nc *= 2;
    char *np = (char *)lua_newuserdatauv(L, nc, 0);
    memcpy(np, b->p, b->len);
    lua_replace(L, b->slot);
    b->p = np;
    b->cap = nc;
}

static void jb_add(lua_State *L, jbuf *b, const char *s, size_t n) {
    jb_reserve(L, b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void jb_addc(lua_State *L, jbuf *b, char c) {
    jb_reserve(L, b, 1);
    b->p[b->len++] = c;
}

/* ------------------------------------------------------------------ encode */

static void enc_string(lua_State *L, jbuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    jb_addc(L, b, '"');
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        jb_add(L, b, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"': jb_add(L, b, "\\\"", 2); break;
        case '\\': jb_add(L, b, "\\\\", 2); break;
        case '\b': jb_add(L, b, "\\b", 2); break;
        case '\f': jb_add(L, b, "\\f", 2); break;
        case '\n': jb_add(L, b, "\\n", 2); break;
        case '\r': jb_add(L, b, "\\r", 2); break;
        case '\t': jb_add(L, b, "\\t", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            jb_add(L, b, u, 6);
        }
        }
    }
    jb_add(L, b, s + start, n - start);
    jb_addc(L, b, '"');
}

static int fmt_float(char *out, size_t size, double d) {
    int n = snprintf(out, size, "%.14g", d);
    if (strtod(out, NULL) != d) n = snprintf(out, size, "%.17g", d);
    if (!strpbrk(out, ".eE")) { out[n++] = '.'; out[n++] = '0'; out[n] = 0; }
    return n;
}

static void enc_number(lua_State *L, jbuf *b, int idx) {
    char tmp[64];
    int n;
    if (lua_isinteger(L, idx)) {
        n = snprintf(tmp, sizeof tmp, "%lld", (long long)lua_tointeger(L, idx));
    } else {
        double d = (double)lua_tonumber(L, idx);
        if (!isfinite(d)) luaL_error(L, "json.encode: cannot encode a non-finite number");
        n = fmt_float(tmp, sizeof tmp, d);
    }
    jb_add(L, b, tmp, (size_t)n);
}

#define VISITED 3 /* stack slot of the cycle-detection table */

static void enc_value(lua_State *L, jbuf *b, int idx, int depth) {
    switch (lua_type(L, idx)) {
    case LUA_TNIL: jb_add(L, b, "null", 4); return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) jb_add(L, b, "true", 4); else jb_add(L, b, "false", 5);
        return;
    case LUA_TNUMBER: enc_number(L, b, idx); return;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        enc_string(L, b, s, n);
        return;
    }
    case LUA_TTABLE: break;
    default:
        luaL_error(L, "json.encode: cannot encode a %s value", luaL_typename(L, idx));
        return;
    }
    if (depth >= LSHIM_JSON_MAX_DEPTH)
        luaL_error(L, "json.encode: nesting deeper than %d", LSHIM_JSON_MAX_DEPTH);
    luaL_checkstack(L, 4, "json.encode");
    lua_pushvalue(L, idx);
    if (lua_rawget(L, VISITED) != LUA_TNIL)
        luaL_error(L, "json.encode: cannot encode a table with a cycle");
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, VISITED);

    /* array if the keys are exactly 1..count */
    lua_Integer count = 0;
    int is_array = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        count++;
        if (is_array) {
            int isint;
            lua_Integer k = lua_tointegerx(L, -2, &isint);
            if (lua_type(L, -2) != LUA_TNUMBER || !isint || k < 1) is_array = 0;
            else if (k > (lua_Integer)lua_rawlen(L, idx)) is_array = 0;
        }
        lua_pop(L, 1);
    }
    if (is_array && count > 0 && (lua_Integer)lua_rawlen(L, idx) == count) {
        jb_addc(L, b, '[');
        for (lua_Integer i = 1; i <= count; i++) {
            if (i > 1) jb_addc(L, b, ',');
            lua_rawgeti(L, idx, i);
            enc_value(L, b, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        jb_addc(L, b, ']');
    } else {
        int first = 1;
        jb_addc(L, b, '{');
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (!first) jb_addc(L, b, ',');
            first = 0;
            int kt = lua_type(L, -2);
            if (kt == LUA_TSTRING) {
                size_t n;
                const char *s = lua_tolstring(L, -2, &n);
                enc_string(L, b, s, n);
            } else if (kt == LUA_TNUMBER) {
                char tmp[64];
                int n;
                if (lua_isinteger(L, -2)) {
                    n = snprintf(tmp, sizeof tmp, "%lld", (long long)lua_tointeger(L, -2));
                } else {
                    double d = (double)lua_tonumber(L, -2);
                    if (!isfinite(d)) luaL_error(L, "json.encode: cannot encode a non-finite number");
                    n = fmt_float(tmp, sizeof tmp, d);
                }
                enc_string(L, b, tmp, (size_t)n);
            } else {
                luaL_error(L, "json.encode: cannot encode a table key of type %s",
                           luaL_typename(L, -2));
            }
            jb_addc(L, b, ':');
            enc_value(L, b, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        jb_addc(L, b, '}');
    }
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, VISITED);
}

static int encode_impl(lua_State *L) {
    /* 1: value, 2: buffer, 3: visited */
    lua_settop(L, 1);
    lua_pushnil(L);
    lua_newtable(L);
    jbuf b;
    jb_init(L, &b, 2);
    enc_value(L, &b, 1, 0);
    lua_pushlstring(L, b.p, b.len);
    return 1;
}

/* Runs impl(arg) protected: returns its result, or nil + message; memory
 * errors are re-raised. */
static int run_protected(lua_State *L, lua_CFunction impl) {
    lua_settop(L, 1);
    lua_pushcfunction(L, impl);
    lua_insert(L, 1);
    int status = lua_pcall(L, 1, 1, 0);
    if (status == LUA_OK) return 1;
    if (status == LUA_ERRMEM) return lua_error(L);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

int lshim_json_encode(lua_State *L) { return run_protected(L, encode_impl); }

/* ------------------------------------------------------------------ decode */

typedef struct {
    const char *s, *p, *e;
    jbuf b;
} dec;

static void dec_error(lua_State *L, dec *d, const char *what) {
    luaL_error(L, "json.decode: %s at position %d", what, (int)(d->p - d->s) + 1);
}

static void skip_ws(dec *d) {
    while (d->p < d->e && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static long read_hex4(lua_State *L, dec *d) {
    if (d->e - d->p < 4) dec_error(L, d, "truncated \\u escape");
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(d->p[i]);
        if (h < 0) dec_error(L, d, "invalid \\u escape");
        v = v * 16 + h;
    }
    d->p += 4;
    return v;
}

static void add_utf8(lua_State *L, jbuf *b, unsigned long cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    jb_add(L, b, u, n);
}

static void dec_string(lua_State *L, dec *d) {
    d->p++; /* opening quote */
    d->b.len = 0;
    for (;;) {
        const char *run = d->p;
        while (d->p < d->e && *d->p != '"' && *d->p != '\\' && (unsigned char)*d->p >= 0x20) d->p++;
        jb_add(L, &d->b, run, (size_t)(d->p - run));
        if (d->p >= d->e) dec_error(L, d, "unterminated string");
        char c = *d->p;
        if (c == '"') { d->p++; break; }
        if (c != '\\') dec_error(L, d, "control character in string");
        d->p++;
        if (d->p >= d->e) dec_error(L, d, "unterminated string");
        c = *d->p++;
        switch (c) {
        case '"': jb_addc(L, &d->b, '"'); break;
        case '\\': jb_addc(L, &d->b, '\\'); break;
        case '/': jb_addc(L, &d->b, '/'); break;
        case 'b': jb_addc(L, &d->b, '\b'); break;
        case 'f': jb_addc(L, &d->b, '\f'); break;
        case 'n': jb_addc(L, &d->b, '\n'); break;
        case 'r': jb_addc(L, &d->b, '\r'); break;
        case 't': jb_addc(L, &d->b, '\t'); break;
        case 'u': {
            unsigned long cp = (unsigned long)read_hex4(L, d);
            if (cp >= 0xDC00 && cp <= 0xDFFF) dec_error(L, d, "lone low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (d->e - d->p < 6 || d->p[0] != '\\' || d->p[1] != 'u')
                    dec_error(L, d, "lone high surrogate");
                d->p += 2;
                unsigned long lo = (unsigned long)read_hex4(L, d);
                if (lo < 0xDC00 || lo > 0xDFFF) dec_error(L, d, "invalid surrogate pair");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            add_utf8(L, &d->b, cp);
            break;
        }
        default: d->p--; dec_error(L, d, "invalid escape");
        }
    }
    lua_pushlstring(L, d->b.p, d->b.len);
}

static int isdig(char c) { return c >= '0' && c <= '9'; }

static void dec_number(lua_State *L, dec *d) {
    const char *start = d->p;
    if (d->p < d->e && *d->p == '-') d->p++;
    if (d->p >= d->e || !isdig(*d->p)) dec_error(L, d, "invalid number");
    if (*d->p == '0') d->p++;
    else while (d->p < d->e && isdig(*d->p)) d->p++;
    if (d->p < d->e && *d->p == '.') {
        d->p++;
        if (d->p >= d->e || !isdig(*d->p)) dec_error(L, d, "invalid number");
        while (d->p < d->e && isdig(*d->p)) d->p++;
    }
    if (d->p < d->e && (*d->p == 'e' || *d->p == 'E')) {
        d->p++;
        if (d->p < d->e && (*d->p == '+' || *d->p == '-')) d->p++;
        if (d->p >= d->e || !isdig(*d->p)) dec_error(L, d, "invalid number");
        while (d->p < d->e && isdig(*d->p)) d->p++;
    }
    d->b.len = 0;
    jb_add(L, &d->b, start, (size_t)(d->p - start));
    jb_addc(L, &d->b, 0);
    /* integer when it fits in 64 bits, float otherwise (Lua's own rules) */
    if (lua_stringtonumber(L, d->b.p) == 0) dec_error(L, d, "invalid number");
}

static void dec_literal(lua_State *L, dec *d, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(d->e - d->p) < n || memcmp(d->p, lit, n) != 0) dec_error(L, d, "unexpected character");
    d->p += n;
}

static void dec_value(lua_State *L, dec *d, int depth) {
    skip_ws(d);
    if (d->p >= d->e) dec_error(L, d, "unexpected end of input");
    char c = *d->p;
    if (c == '{' || c == '[') {
        if (depth >= LSHIM_JSON_MAX_DEPTH) dec_error(L, d, "nesting too deep");
        luaL_checkstack(L, 4, "json.decode");
        lua_newtable(L);
        d->p++;
        skip_ws(d);
        if (c == '{') {
            if (d->p < d->e && *d->p == '}') { d->p++; return; }
            for (;;) {
                skip_ws(d);
                if (d->p >= d->e || *d->p != '"') dec_error(L, d, "expected a string key");
                dec_string(L, d);
                skip_ws(d);
                if (d->p >= d->e || *d->p != ':') dec_error(L, d, "expected ':'");
                d->p++;
                dec_value(L, d, depth + 1);
                lua_rawset(L, -3); /* a null value removes nothing: dropped */
                skip_ws(d);
                if (d->p < d->e && *d->p == ',') { d->p++; continue; }
                if (d->p < d->e && *d->p == '}') { d->p++; return; }
                dec_error(L, d, "expected ',' or '}'");
            }
        } else {
            if (d->p < d->e && *d->p == ']') { d->p++; return; }
            lua_Integer i = 1;
            for (;;) {
                dec_value(L, d, depth + 1);
                lua_rawseti(L, -2, i++);
                skip_ws(d);
                if (d->p < d->e && *d->p == ',') { d->p++; continue; }
                if (d->p < d->e && *d->p == ']') { d->p++; return; }
                dec_error(L, d, "expected ',' or ']'");
            }
        }
    }
    switch (c) {
    case '"': dec_string(L, d); return;
    case 't': dec_literal(L, d, "true"); lua_pushboolean(L, 1); return;
    case 'f': dec_literal(L, d, "false"); lua_pushboolean(L, 0); return;
    case 'n': dec_literal(L, d, "null"); lua_pushnil(L); return;
    default:
        if (c == '-' || isdig(c)) { dec_number(L, d); return; }
        dec_error(L, d, "unexpected character");
    }
}

static int decode_impl(lua_State *L) {
    /* 1: text, 2: scratch buffer */
    dec d;
    size_t n;
    d.s = d.p = lua_tolstring(L, 1, &n);
    d.e = d.s + n;
    lua_settop(L, 1);
    lua_pushnil(L);
    jb_init(L, &d.b, 2);
    dec_value(L, &d, 0);
    skip_ws(&d);
    if (d.p != d.e) dec_error(L, &d, "trailing characters");
    return 1;
}

int lshim_json_decode(lua_State *L) {
    luaL_checklstring(L, 1, NULL);
    lua_settop(L, 1);
    return run_protected(L, decode_impl);
}
