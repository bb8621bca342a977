// hiredis (Debian's libhiredis-dev): only its RESP formatter and reader are used. Legation never calls
// hiredis's blocking I/O; the bytes travel over a SwiftNIO channel (see RedisConnection).
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
