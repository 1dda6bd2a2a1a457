#ifndef CCRYPTO_SHIM_H
#define CCRYPTO_SHIM_H
/* Only what LuaStrands uses: SHA-1 for the handshake, a CSPRNG for client ids. */
#include <openssl/sha.h>
#include <openssl/rand.h>
#endif
