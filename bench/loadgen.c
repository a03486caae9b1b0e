/*
 * chatnet load generator: one process, one epoll loop, many connections.
 *
 * Speaks the chatnet wire protocol (PROTOCOL.md: 4-byte big-endian length
 * prefix, JSON control frames, 0x00 data frames) or, with --proto irc, plain
 * IRC (for the ngircd and InspIRCd reference runs).  Built by bench/__main__.py with the
 * system compiler:  cc -O2 -o bench/build/loadgen bench/loadgen.c
 *
 * Control: the generator connects and sets up every client, prints
 * {"event":"ready",...}, then waits for a line on stdin:
 *   go    run the scenario's workload; prints {"event":"done",...}
 *   quit  close every connection; prints {"event":"closed"} and exits
 * With --auto it goes and quits by itself.  Every line it prints is JSON.
 *
 * Scenarios:
 *   connect  N clients log in and join rooms of --room-size; "go" is a no-op
 *            (the connections are held until "quit").
 *   fanout   --rooms x --room-size; every member sends with --window
 *            messages outstanding.  A message is outstanding until the
 *            sender's witness (the next member of the room) has received it.
 *   latency  --rooms x --room-size; member 0 of each room sends, together
 *            --rate messages/s (open loop); send-to-delivery latency.
 *   files    --senders U send --files-per-sender files of --file-size bytes
 *            each to U receivers; bytes verified against the generator's
 *            pattern; after "done", a "sha256" event checks the sha256 of
 *            every file-end against the pattern's (--no-sha256: a server that
 *            hashes nothing; the event then says "checked":false).
 *   soak     --clients slots churn: connect, join, talk, send files, leave
 *            or drop, reconnect, for --duration seconds.
 *
 * --quickack (any scenario) asks for TCP quick ACKs on every connection and
 * asks again after every read, since Linux drops out of quick-ACK mode by
 * itself: the ACK timing of a blocking client that reads a reply at once.
 *
 * With --ports P1,P2 (cluster nodes) the connections are spread over the
 * servers (see node_of): every room has members on each.
 *
 * Every message text is "<sender index> <sequence> <send time ns> xxx...":
 * receivers check per sender that sequences arrive exactly once and in
 * order, and the send time gives the latency (one clock, one process).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAYLOAD 65541u
#define SCRATCH_SIZE (256 * 1024)
/* latency histogram: 1 us buckets to 10 ms, 10 us to 1 s, 1 ms to 60 s */
#define HIST_T1 10000u
#define HIST_T2 (HIST_T1 + 99000u)
#define HIST_T3 (HIST_T2 + 59000u)
#define HIST_N (HIST_T3 + 1u)
#define MAX_RX 8       /* concurrent incoming transfers per receiver */
#define MAX_FILES 256
#define MAX_CODES 16
#define OUT_HIGH (512 * 1024)
#define MAX_PORTS 8

enum proto { P_CHATNET, P_IRC };
enum scen { S_CONNECT, S_FANOUT, S_LATENCY, S_FILES, S_SOAK };
enum cstate {
    CS_OFF = 0, CS_CONNECTING, CS_LOGIN, CS_JOIN, CS_READY, CS_CLOSING,
    CS_FAILED
};
enum phase { PH_SETUP, PH_WAIT_GO, PH_RUN, PH_DRAIN, PH_DONE };

enum { ID_LOGIN = 1, ID_JOIN = 2, ID_MSG = 3, ID_LEAVE = 5, ID_EXIT = 6,
       ID_FILE = 1000 };

#define TAG_STDIN 0xFFFFFFF0u
#define TAG_TIMER 0xFFFFFFF1u

struct buf {
    char *p;
    size_t off, len, cap; /* live bytes are p[off..len) */
};

struct rx {
    int64_t transfer; /* -1: free */
    uint64_t seed, off, size;
    int sender, fileno;
};

struct conn {
    int fd;
    int idx, room, slot, members;
    enum cstate state;
    int want_out, dirty;
    uint32_t gen;
    struct buf in, out;
    /* chat */
    uint32_t sent, acked;
    uint32_t *expect; /* per room slot: next sequence expected */
    /* files, sender side */
    int fileno;        /* current file number */
    int64_t transfer;  /* current upload, -1 none */
    int uploading;
    uint64_t file_size, file_sent, file_seed;
    /* files, receiver side */
    struct rx rx[MAX_RX];
    /* soak */
    uint64_t t_next, t_end, t_msg;
    int file_wanted;
};

/* ---- options ---- */
static enum proto proto = P_CHATNET;
static enum scen scen = S_FANOUT;
static const char *host = "127.0.0.1";
static int port = 0;
static int nclients = 0, nrooms = 100, room_size = 15, window_ = 8;
static double duration = 10, warmup = 1, rate = 1000, drain_timeout = 10;
static int msg_size = 64, senders = 1, files_per_sender = 4, chunk = 65536;
static uint64_t file_size = 3u << 20;
static int concurrency = 8, autogo = 0, eager = 0;
static int quickack = 0; /* TCP_QUICKACK on every socket, again after each read */
static int check_sha = 1; /* files: compare file-end sha256s (--no-sha256: not) */
static int lazy_next, lazy_reading; /* latency: lazy receivers (see is_lazy) */
static const char *prefix = "u";
static unsigned seed0 = 1;

/* ---- state ---- */
static struct conn *conns;
static int nconns;
static int epfd, tfd;
static enum phase phase = PH_SETUP;
static int *dirty_list, ndirty;
static char *scratch;
static int next_connect, inflight, nready, nfailed;
static uint64_t t_start, t_ready, t_go, t_stop, t_warm, t_done_deadline;
static struct rusage ru_go;

/* counters */
static uint64_t deliveries, deliveries_warm, deliveries_stop;
static uint64_t sent_total, sent_warm, sent_stop;
static uint64_t gaps, dups, unknown, replies_ok, closed_unexpected;
static uint64_t expected_deliveries;
static uint64_t hist[HIST_N], lat_n, lat_max, lat_sum;
static uint64_t lat_k; /* latency: messages scheduled so far */
/* files */
static uint64_t f_started, f_uploaded, f_rx_ok, f_rx_bad, f_delivered, f_failed,
    f_aborted, f_bytes, f_corrupt, f_last_end;
static uint64_t file_t0[MAX_FILES * 16];
/* files: the sha256 each file-end carried, per sender and file number */
static char file_sha[MAX_FILES * 16][65];
static uint64_t file_lat_sum, file_lat_max;
/* soak */
static uint64_t s_connects, s_logins, s_graceful, s_drops, s_msgs, s_files;
static uint64_t t_tick;
static int warmed;
/* error codes seen */
static char codes[MAX_CODES][32];
static uint64_t code_n[MAX_CODES];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double secs(uint64_t ns) { return ns / 1e9; }

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static uint64_t rnd_range(uint64_t lo, uint64_t hi) { return lo + rnd() % (hi - lo + 1); }

static void note_code(const char *s, size_t n)
{
    if (n > 31) n = 31;
    for (int i = 0; i < MAX_CODES; i++) {
        if (code_n[i] && strlen(codes[i]) == n && memcmp(codes[i], s, n) == 0) {
            code_n[i]++;
            return;
        }
        if (!code_n[i]) {
            memcpy(codes[i], s, n);
            codes[i][n] = 0;
            code_n[i] = 1;
            return;
        }
    }
}

/* ---- file content pattern ---- */
static inline uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void pattern(uint64_t seed, uint64_t off, uint8_t *dst, size_t n)
{
    uint64_t key = seed * 0xD6E8FEB86659FD93ull;
    while (n && (off & 7)) {
        uint64_t w = mix64(key ^ (off >> 3));
        *dst++ = (uint8_t)(w >> (8 * (off & 7)));
        off++, n--;
    }
    while (n >= 8) {
        uint64_t w = mix64(key ^ (off >> 3));
        memcpy(dst, &w, 8); /* little-endian hosts only, as x86 and arm64 */
        dst += 8, off += 8, n -= 8;
    }
    while (n) {
        uint64_t w = mix64(key ^ (off >> 3));
        *dst++ = (uint8_t)(w >> (8 * (off & 7)));
        off++, n--;
    }
}

/* ---- buffers ---- */
static void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra <= b->cap) return;
    if (b->off) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap) return;
    }
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + extra) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) die("out of memory");
    b->cap = cap;
}

static void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->off = b->len = b->cap = 0;
}

static size_t out_pending(struct conn *c) { return c->out.len - c->out.off; }

static void mark_dirty(struct conn *c)
{
    if (!c->dirty && !c->want_out) {
        c->dirty = 1;
        dirty_list[ndirty++] = c->idx;
    }
}

/* Append a chatnet control frame (printf-style JSON). */
static void out_json(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    size_t room = 256;
    for (;;) {
        buf_reserve(&c->out, 4 + room);
        char *dst = c->out.p + c->out.len + 4;
        va_start(ap, fmt);
        int n = vsnprintf(dst, room, fmt, ap);
        va_end(ap);
        if (n < 0) die("vsnprintf");
        if ((size_t)n < room) {
            uint32_t be = htonl((uint32_t)n);
            memcpy(c->out.p + c->out.len, &be, 4);
            c->out.len += 4 + (size_t)n;
            break;
        }
        room = (size_t)n + 1;
    }
    mark_dirty(c);
}

static void out_line(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    size_t room = 256;
    for (;;) {
        buf_reserve(&c->out, room);
        char *dst = c->out.p + c->out.len;
        va_start(ap, fmt);
        int n = vsnprintf(dst, room, fmt, ap);
        va_end(ap);
        if (n < 0) die("vsnprintf");
        if ((size_t)n < room) {
            c->out.len += (size_t)n;
            break;
        }
        room = (size_t)n + 1;
    }
    mark_dirty(c);
}

/* ---- epoll ---- */
static void ep_set(struct conn *c, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)c->idx};
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

static void conn_close(struct conn *c, enum cstate to);
static void on_writable(struct conn *c);

/* Write what c->out holds; 0 ok, -1 the connection was closed. */
static int flush(struct conn *c)
{
    while (out_pending(c)) {
        ssize_t n = write(c->fd, c->out.p + c->out.off, out_pending(c));
        if (n > 0) {
            c->out.off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) {
                c->want_out = 1;
                ep_set(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
            }
            return 0;
        }
        closed_unexpected++;
        conn_close(c, phase == PH_SETUP ? CS_FAILED : CS_OFF);
        return -1;
    }
    c->out.off = c->out.len = 0;
    if (c->want_out) {
        c->want_out = 0;
        ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
    }
    return 0;
}

static void flush_dirty(void)
{
    /* on_writable may append again (file pumps); loop until quiet */
    while (ndirty) {
        int n = ndirty;
        ndirty = 0;
        static int *batch;
        static int batch_cap;
        if (batch_cap < n) {
            batch_cap = n * 2;
            batch = realloc(batch, sizeof(int) * (size_t)batch_cap);
        }
        memcpy(batch, dirty_list, sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) {
            struct conn *c = &conns[batch[i]];
            c->dirty = 0;
            if (c->fd < 0) continue;
            if (flush(c) == 0 && !c->want_out) on_writable(c);
        }
    }
}

/* ---- connections ---- */
static struct sockaddr_in server_addr[MAX_PORTS];
static int nports = 1;
static int ports[MAX_PORTS];

/* With --ports, which server (cluster node) a connection goes to: a room's
   members alternate between the nodes; with latency's --eager the sender
   (member 0) is on the first node and its timed receivers on the second,
   so every timed delivery crosses nodes; files: senders on the first node,
   receivers on the second. */
static int node_of(struct conn *c)
{
    if (nports == 1) return 0;
    switch (scen) {
    case S_FILES: return c->idx < senders ? 0 : 1 % nports;
    case S_LATENCY:
        if (eager > 0 && c->slot == 0) return 0;
        if (eager > 0 && c->slot <= eager) return 1 % nports;
        return c->slot % nports;
    case S_FANOUT: return c->slot % nports;
    default: return c->idx % nports;
    }
}
static void soak_closed(struct conn *c);

static void user_name(struct conn *c, char *dst, size_t n)
{
    if (scen == S_SOAK)
        snprintf(dst, n, "%ss%dg%u", prefix, c->idx, c->gen);
    else
        snprintf(dst, n, "%s%d", prefix, c->idx);
}

static void room_name(struct conn *c, char *dst, size_t n)
{
    snprintf(dst, n, "r%d", c->room);
}

static void conn_start(struct conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_code("socket-failed", 13);
        if (scen == S_SOAK) {
            soak_closed(c);
            return;
        }
        c->state = CS_FAILED;
        nfailed++;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (quickack) setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    c->fd = fd;
    c->state = CS_CONNECTING;
    c->want_out = 1;
    c->sent = c->acked = 0;
    struct sockaddr_in *to = &server_addr[node_of(c)];
    int r = connect(fd, (struct sockaddr *)to, sizeof *to);
    if (r < 0 && errno != EINPROGRESS) {
        note_code("connect-failed", 14);
        close(fd);
        c->fd = -1;
        if (scen == S_SOAK) {
            soak_closed(c);
            return;
        }
        c->state = CS_FAILED;
        nfailed++;
        return;
    }
    ep_set(c, EPOLLOUT, EPOLL_CTL_ADD);
    if (scen != S_SOAK) inflight++;
    else s_connects++;
}

static void send_login(struct conn *c)
{
    char name[40];
    user_name(c, name, sizeof name);
    if (proto == P_CHATNET)
        out_json(c, "{\"type\":\"login\",\"id\":%d,\"username\":\"%s\"}", ID_LOGIN,
                 name);
    else
        out_line(c, "NICK %s\r\nUSER %s 0 * :bench\r\n", name, name);
    c->state = CS_LOGIN;
}

static void send_join(struct conn *c)
{
    char room[40];
    room_name(c, room, sizeof room);
    if (proto == P_CHATNET)
        out_json(c, "{\"type\":\"join\",\"id\":%d,\"room\":\"%s\"}", ID_JOIN, room);
    else
        out_line(c, "JOIN #%s\r\n", room);
    c->state = CS_JOIN;
}

static void setup_pump(void);
static void conn_close(struct conn *c, enum cstate to)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    enum cstate was = c->state;
    c->state = to;
    c->want_out = 0;
    buf_free(&c->in);
    buf_free(&c->out);
    if (scen == S_SOAK) {
        soak_closed(c);
        return;
    }
    if (phase == PH_SETUP && was >= CS_CONNECTING && was < CS_READY) {
        inflight--;
        nfailed++;
        setup_pump();
    }
}

static void became_ready(struct conn *c)
{
    c->state = CS_READY;
    if (scen == S_SOAK) return;
    inflight--;
    nready++;
    setup_pump();
}

static void setup_pump(void)
{
    while (phase == PH_SETUP && inflight < concurrency && next_connect < nconns)
        conn_start(&conns[next_connect++]);
}

/* ---- chat messages ---- */
static int same_room_members(struct conn *c) { return c->members; }

static void send_msg(struct conn *c)
{
    char text[8192];
    uint64_t t = now_ns();
    int n = snprintf(text, sizeof text, "%d %u %llu ", c->idx, c->sent,
                     (unsigned long long)t);
    while (n < msg_size && n < (int)sizeof text - 1) text[n++] = 'x';
    text[n] = 0;
    if (proto == P_CHATNET)
        out_json(c, "{\"type\":\"broadcast\",\"id\":%d,\"text\":\"%s\"}", ID_MSG, text);
    else
        out_line(c, "PRIVMSG #r%d :%s\r\n", c->room, text);
    c->sent++;
    sent_total++;
}

static uint64_t lat_debug_t, lat_debug_max, lat_debug_n, lat_debug_big;
static void lat_add(uint64_t ns)
{
    if (lat_debug_t) {
        uint64_t t = now_ns();
        if (ns > lat_debug_max) lat_debug_max = ns;
        lat_debug_n++;
        lat_debug_big += ns > 2000000;
        if (t - lat_debug_t >= 100000000ull) {
            fprintf(stderr, "lat %.1f max %.2f ms n %llu >2ms %llu\n", secs(t - t_go),
                    lat_debug_max / 1e6, (unsigned long long)lat_debug_n,
                    (unsigned long long)lat_debug_big);
            lat_debug_t = t;
            lat_debug_max = lat_debug_n = lat_debug_big = 0;
        }
    }
    uint64_t us = ns / 1000, i;
    if (us < 10000) i = us;
    else if (us < 1000000) i = HIST_T1 + (us - 10000) / 10;
    else if (us < 60000000) i = HIST_T2 + (us - 1000000) / 1000;
    else i = HIST_T3;
    hist[i]++;
    lat_n++;
    lat_sum += ns;
    if (ns > lat_max) lat_max = ns;
}

/* Latency with --eager N: only members 1..N of each room are read as soon
   as data arrives (and timed); the others stay out of epoll and are drained
   in turn every 100 ms, so the generator's CPU does not grow with them. */
static int is_lazy(struct conn *c)
{
    return eager > 0 && scen == S_LATENCY && c->slot > eager;
}

/* A chat message text arrived at receiver r. */
static void got_text(struct conn *r, const char *p, size_t n)
{
    uint64_t t = now_ns();
    char tmp[64];
    size_t k = n < sizeof tmp - 1 ? n : sizeof tmp - 1;
    memcpy(tmp, p, k);
    tmp[k] = 0;
    char *e;
    long gid = strtol(tmp, &e, 10);
    unsigned long seq = strtoul(e, &e, 10);
    unsigned long long ts = strtoull(e, &e, 10);
    if (scen == S_SOAK) {
        deliveries++;
        return;
    }
    if (gid < 0 || gid >= nconns || conns[gid].room != r->room || !r->expect) {
        unknown++;
        return;
    }
    struct conn *s = &conns[gid];
    deliveries++;
    if (ts && t >= ts && !is_lazy(r)) lat_add(t - ts);
    uint32_t *ex = &r->expect[s->slot];
    if (seq == *ex) {
        (*ex)++;
    } else if (seq > *ex) {
        gaps += seq - *ex;
        *ex = (uint32_t)seq + 1;
    } else {
        dups++;
    }
    if (scen == S_FANOUT && r->slot == (s->slot + 1) % s->members) {
        s->acked++;
        if (phase == PH_RUN && s->sent - s->acked < (uint32_t)window_ && s->fd >= 0)
            send_msg(s);
    }
}

/* ---- sha256 (FIPS 180-4), to check the server's file-end hashes ---- */
struct sha256 {
    uint32_t h[8];
    uint8_t buf[64];
    uint64_t len;
    size_t fill;
};

static const uint32_t SHA_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct sha256 *s, const uint8_t *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, h;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
    e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25)) + ((e & f) ^ (~e & g)) +
                      SHA_K[i] + w[i];
        uint32_t t2 = (ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
    s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_init(struct sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0, s->fill = 0;
}

static void sha256_update(struct sha256 *s, const uint8_t *p, size_t n)
{
    s->len += n;
    while (n) {
        if (s->fill == 0 && n >= 64) {
            sha256_block(s, p);
            p += 64, n -= 64;
            continue;
        }
        size_t k = 64 - s->fill < n ? 64 - s->fill : n;
        memcpy(s->buf + s->fill, p, k);
        s->fill += k, p += k, n -= k;
        if (s->fill == 64) sha256_block(s, s->buf), s->fill = 0;
    }
}

/* the digest as 64 lower-case hex digits and a NUL */
static void sha256_hex(struct sha256 *s, char out[65])
{
    uint64_t bits = s->len * 8;
    uint8_t pad[72] = {0x80};
    size_t padn = (s->fill < 56 ? 56 : 120) - s->fill;
    for (int i = 0; i < 8; i++) pad[padn + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(s, pad, padn + 8);
    for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", s->h[i]);
}

/* sha256 of the first n bytes of a pattern */
static void pattern_sha256(uint64_t seed, uint64_t n, char out[65])
{
    static uint8_t tmp[65536];
    struct sha256 s;
    sha256_init(&s);
    for (uint64_t off = 0; off < n;) {
        size_t k = n - off < sizeof tmp ? (size_t)(n - off) : sizeof tmp;
        pattern(seed, off, tmp, k);
        sha256_update(&s, tmp, k);
        off += k;
    }
    sha256_hex(&s, out);
}

/* ---- files ---- */
static uint64_t file_seed_of(int sender, int fileno)
{
    return (uint64_t)sender * 100003ull + (uint64_t)fileno + 1;
}

static void start_file(struct conn *c)
{
    int partner = scen == S_SOAK ? (c->idx ^ 1) : c->idx + senders;
    struct conn *p = &conns[partner];
    char name[40];
    user_name(p, name, sizeof name);
    c->file_size = scen == S_SOAK ? rnd_range(1, 512 * 1024) : file_size;
    c->file_seed = file_seed_of(c->idx, c->fileno);
    c->file_sent = 0;
    c->transfer = -1;
    c->uploading = 0;
    if (scen == S_FILES && c->fileno < MAX_FILES)
        file_t0[c->idx * MAX_FILES + c->fileno] = now_ns();
    out_json(c,
             "{\"type\":\"sendfile\",\"id\":%d,\"to\":\"%s\",\"name\":\"f%d_%d.bin\","
             "\"size\":%llu}",
             ID_FILE + c->fileno, name, c->idx, c->fileno,
             (unsigned long long)c->file_size);
    f_started++;
}

static void pump_upload(struct conn *c)
{
    while (c->uploading && c->file_sent < c->file_size && out_pending(c) < OUT_HIGH) {
        uint64_t n = c->file_size - c->file_sent;
        if (n > (uint64_t)chunk) n = (uint64_t)chunk;
        buf_reserve(&c->out, 9 + n);
        uint8_t *d = (uint8_t *)c->out.p + c->out.len;
        uint32_t be = htonl((uint32_t)(n + 5));
        memcpy(d, &be, 4);
        d[4] = 0;
        be = htonl((uint32_t)c->transfer);
        memcpy(d + 5, &be, 4);
        pattern(c->file_seed, c->file_sent, d + 9, n);
        c->out.len += 9 + n;
        c->file_sent += n;
        mark_dirty(c);
    }
    if (c->uploading && c->file_sent >= c->file_size) c->uploading = 0;
}

static void on_writable(struct conn *c)
{
    if (c->uploading) pump_upload(c);
}

static struct rx *rx_find(struct conn *r, int64_t transfer)
{
    for (int i = 0; i < MAX_RX; i++)
        if (r->rx[i].transfer == transfer) return &r->rx[i];
    return NULL;
}

static void got_data(struct conn *r, const uint8_t *p, size_t n)
{
    uint32_t be;
    memcpy(&be, p + 1, 4);
    int64_t transfer = ntohl(be);
    p += 5, n -= 5;
    struct rx *x = rx_find(r, transfer);
    if (!x) {
        note_code("data-unknown-transfer", 21);
        return;
    }
    static uint8_t want[MAX_PAYLOAD];
    pattern(x->seed, x->off, want, n);
    if (x->off + n > x->size || memcmp(want, p, n) != 0) f_corrupt++;
    x->off += n;
    f_bytes += n;
}

/* ---- JSON field helpers (the server's JSON; our own strings need no escapes) */
static const char *jval(const char *p, size_t n, const char *key)
{
    char pat[40];
    int k = snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *q = memmem(p, n, pat, (size_t)k);
    if (!q) return NULL;
    q += k;
    const char *end = p + n;
    while (q < end && (*q == ' ')) q++;
    return q < end ? q : NULL;
}

static size_t jstr(const char *p, size_t n, const char *key, const char **out)
{
    const char *q = jval(p, n, key);
    if (!q || *q != '"') return 0;
    q++;
    const char *e = memchr(q, '"', (size_t)(p + n - q));
    if (!e) return 0;
    *out = q;
    return (size_t)(e - q);
}

static long long jint(const char *p, size_t n, const char *key, long long def)
{
    const char *q = jval(p, n, key);
    if (!q) return def;
    char tmp[32];
    size_t k = (size_t)(p + n - q);
    if (k > 31) k = 31;
    memcpy(tmp, q, k);
    tmp[k] = 0;
    char *e;
    long long v = strtoll(tmp, &e, 10);
    return e == tmp ? def : v;
}

#define TYPE_IS(s) (tn == sizeof(s) - 1 && memcmp(t, s, tn) == 0)

static void soak_talk(struct conn *c);

static void chatnet_frame(struct conn *c, const char *p, size_t n)
{
    if (n && p[0] == 0) {
        if (n > 5) got_data(c, (const uint8_t *)p, n);
        return;
    }
    const char *t;
    size_t tn = jstr(p, n, "type", &t);
    if (!tn) {
        note_code("unparsed-frame", 14);
        return;
    }
    if (TYPE_IS("message")) {
        const char *x;
        size_t xn = jstr(p, n, "text", &x);
        if (xn) got_text(c, x, xn);
        return;
    }
    if (TYPE_IS("ok")) {
        long long id = jint(p, n, "id", -1);
        if (id == ID_MSG) {
            replies_ok++;
        } else if (id == ID_LOGIN && c->state == CS_LOGIN) {
            if (scen == S_SOAK) s_logins++;
            if (scen == S_FILES) became_ready(c);
            else send_join(c);
        } else if (id == ID_JOIN && c->state == CS_JOIN) {
            became_ready(c);
            if (scen == S_SOAK) soak_talk(c);
        } else if (id >= ID_FILE) {
            c->transfer = jint(p, n, "transfer", -1);
        }
        return;
    }
    if (TYPE_IS("presence") || TYPE_IS("whisper")) return;
    if (TYPE_IS("upload-start")) {
        if (jint(p, n, "transfer", -2) == c->transfer) {
            c->uploading = 1;
            pump_upload(c);
        }
        return;
    }
    if (TYPE_IS("upload-done")) {
        f_uploaded++;
        c->fileno++;
        if (scen == S_FILES && c->fileno < files_per_sender) start_file(c);
        return;
    }
    if (TYPE_IS("file-start")) {
        const char *nm;
        size_t nn = jstr(p, n, "name", &nm);
        if (!nn) nn = 0;
        const char *orig;
        size_t on = jstr(p, n, "original", &orig);
        if (on) nm = orig, nn = on;
        char tmp[64];
        if (nn > 63) nn = 63;
        memcpy(tmp, nm, nn);
        tmp[nn] = 0;
        int sidx = -1, fno = -1;
        sscanf(tmp, "f%d_%d", &sidx, &fno);
        struct rx *x = rx_find(c, -1);
        if (!x) {
            note_code("too-many-incoming", 17);
            return;
        }
        x->transfer = jint(p, n, "transfer", -1);
        x->seed = file_seed_of(sidx, fno);
        x->off = 0;
        x->size = (uint64_t)jint(p, n, "size", 0);
        x->sender = sidx;
        x->fileno = fno;
        return;
    }
    if (TYPE_IS("file-end")) {
        struct rx *x = rx_find(c, jint(p, n, "transfer", -2));
        if (!x) return;
        if (x->off == x->size) f_rx_ok++;
        else f_rx_bad++;
        uint64_t t = now_ns();
        f_last_end = t;
        if (scen == S_FILES && x->sender >= 0 && x->sender < nconns && x->fileno >= 0 &&
            x->fileno < MAX_FILES) {
            if (x->sender < 16) {
                const char *h;
                size_t hn = jstr(p, n, "sha256", &h);
                char *slot = file_sha[x->sender * MAX_FILES + x->fileno];
                if (hn == 64) memcpy(slot, h, 64), slot[64] = 0;
                else snprintf(slot, 65, "?");
            }
            uint64_t t0 = file_t0[x->sender * MAX_FILES + x->fileno];
            if (t0 && t > t0) {
                file_lat_sum += t - t0;
                if (t - t0 > file_lat_max) file_lat_max = t - t0;
            }
        }
        x->transfer = -1;
        return;
    }
    if (TYPE_IS("file-delivered")) {
        f_delivered++;
        return;
    }
    if (TYPE_IS("file-failed")) {
        f_failed++;
        const char *r;
        size_t rn = jstr(p, n, "reason", &r);
        if (rn) note_code(r, rn);
        if (jint(p, n, "transfer", -2) == c->transfer) {
            c->uploading = 0;
            c->transfer = -1;
            c->fileno++;
            if (scen == S_FILES && c->fileno < files_per_sender) start_file(c);
        }
        return;
    }
    if (TYPE_IS("file-aborted")) {
        f_aborted++;
        struct rx *x = rx_find(c, jint(p, n, "transfer", -2));
        if (x) x->transfer = -1;
        return;
    }
    if (TYPE_IS("error")) {
        const char *code;
        size_t cn = jstr(p, n, "code", &code);
        if (cn) note_code(code, cn);
        else note_code("error", 5);
        long long id = jint(p, n, "id", -1);
        if ((id == ID_LOGIN && c->state == CS_LOGIN) ||
            (id == ID_JOIN && c->state == CS_JOIN))
            conn_close(c, scen == S_SOAK ? CS_OFF : CS_FAILED);
        else if (id >= ID_FILE && scen != S_SOAK) {
            f_failed++;
            c->fileno++;
            if (scen == S_FILES && c->fileno < files_per_sender) start_file(c);
        } else if (id >= ID_FILE) {
            c->fileno++;
        }
        return;
    }
    if (TYPE_IS("shutdown")) return;
    note_code(t, tn);
}

static void irc_line(struct conn *c, const char *p, size_t n)
{
    if (n >= 5 && memcmp(p, "PING ", 5) == 0) {
        out_line(c, "PONG %.*s\r\n", (int)(n - 5), p + 5);
        return;
    }
    const char *sp = memchr(p, ' ', n);
    if (!sp || p[0] != ':') return;
    const char *cmd = sp + 1;
    size_t rest = (size_t)(p + n - cmd);
    if (rest >= 8 && memcmp(cmd, "PRIVMSG ", 8) == 0) {
        const char *tx = memmem(cmd, rest, " :", 2);
        if (tx) got_text(c, tx + 2, (size_t)(p + n - tx - 2));
        return;
    }
    if (rest >= 4 && memcmp(cmd, "001 ", 4) == 0 && c->state == CS_LOGIN) {
        send_join(c);
        return;
    }
    if (rest >= 4 && memcmp(cmd, "366 ", 4) == 0 && c->state == CS_JOIN) {
        became_ready(c);
        return;
    }
    if (rest >= 4 && (memcmp(cmd, "433 ", 4) == 0 || memcmp(cmd, "432 ", 4) == 0 ||
                      memcmp(cmd, "471 ", 4) == 0 || memcmp(cmd, "405 ", 4) == 0)) {
        note_code(cmd, 3);
        conn_close(c, CS_FAILED);
        return;
    }
    if (rest >= 4 && cmd[0] >= '4' && cmd[0] <= '5' && cmd[3] == ' ') note_code(cmd, 3);
}

/* Parse complete frames/lines from p[0..n); returns bytes consumed. */
static size_t parse(struct conn *c, const char *p, size_t n)
{
    size_t used = 0;
    if (proto == P_CHATNET) {
        while (n - used >= 4 && c->fd >= 0) {
            uint32_t be;
            memcpy(&be, p + used, 4);
            uint32_t len = ntohl(be);
            if (len > MAX_PAYLOAD) {
                note_code("oversized-frame", 15);
                conn_close(c, CS_FAILED);
                return n;
            }
            if (n - used < 4 + (size_t)len) break;
            chatnet_frame(c, p + used + 4, len);
            used += 4 + len;
        }
    } else {
        while (used < n && c->fd >= 0) {
            const char *nl = memchr(p + used, '\n', n - used);
            if (!nl) break;
            size_t ln = (size_t)(nl - (p + used));
            size_t k = ln;
            if (k && p[used + k - 1] == '\r') k--;
            irc_line(c, p + used, k);
            used += ln + 1;
        }
    }
    return c->fd >= 0 ? used : n;
}

static void do_read(struct conn *c)
{
    ssize_t n = read(c->fd, scratch, SCRATCH_SIZE);
    if (quickack && n > 0) {
        /* Linux leaves quick-ACK mode by itself (after a few segments, or
           when it sees the connection as interactive): set it again after
           every read, as a client that wants its ACKs at once must */
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        closed_unexpected += (c->state != CS_CLOSING);
        conn_close(c, phase == PH_SETUP ? CS_FAILED : CS_OFF);
        return;
    }
    if (n == 0) {
        closed_unexpected += (c->state != CS_CLOSING);
        conn_close(c, phase == PH_SETUP && scen != S_SOAK ? CS_FAILED : CS_OFF);
        return;
    }
    if (c->in.len == c->in.off) {
        size_t used = parse(c, scratch, (size_t)n);
        if (c->fd >= 0 && used < (size_t)n) {
            c->in.off = c->in.len = 0;
            buf_reserve(&c->in, (size_t)n - used);
            memcpy(c->in.p, scratch + used, (size_t)n - used);
            c->in.len = (size_t)n - used;
        }
    } else {
        buf_reserve(&c->in, (size_t)n);
        memcpy(c->in.p + c->in.len, scratch, (size_t)n);
        c->in.len += (size_t)n;
        size_t used = parse(c, c->in.p + c->in.off, c->in.len - c->in.off);
        if (c->fd >= 0) {
            c->in.off += used;
            if (c->in.off == c->in.len) {
                /* drop big buffers once a large frame is through */
                if (c->in.cap > 65536) buf_free(&c->in);
                else c->in.off = c->in.len = 0;
            }
        }
    }
}

static void on_connected(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        note_code("connect-failed", 14);
        conn_close(c, scen == S_SOAK ? CS_OFF : CS_FAILED);
        return;
    }
    c->want_out = 0;
    ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
    send_login(c);
}

/* ---- soak ---- */
static void soak_talk(struct conn *c)
{
    uint64_t t = now_ns();
    c->t_end = t + rnd_range(1000, 6000) * 1000000ull;
    c->t_msg = t + rnd_range(0, 200) * 1000000ull;
    c->file_wanted = (c->idx % 2 == 0) && rnd() % 3 == 0;
    c->transfer = -1;
    c->uploading = 0;
    for (int i = 0; i < MAX_RX; i++) c->rx[i].transfer = -1;
}

static void soak_closed(struct conn *c)
{
    c->state = CS_OFF;
    c->gen++;
    c->t_next = now_ns() + rnd_range(50, 500) * 1000000ull;
    c->uploading = 0;
    c->transfer = -1;
}

static void soak_tick(void)
{
    uint64_t t = now_ns();
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        if (phase == PH_RUN && c->state == CS_OFF && t >= c->t_next) {
            conn_start(c);
            continue;
        }
        if (c->state == CS_CLOSING && t >= c->t_end) {
            conn_close(c, CS_OFF);
            continue;
        }
        if (c->state != CS_READY) continue;
        if (phase != PH_RUN) {
            /* winding down: leave and exit cleanly */
            out_json(c, "{\"type\":\"exit\",\"id\":%d}", ID_EXIT);
            c->state = CS_CLOSING;
            c->t_end = t + 5000000000ull;
            continue;
        }
        if (t >= c->t_msg) {
            char text[128];
            int n = snprintf(text, sizeof text, "soak %d %u xxxxxxxxxxxxxxxxxxxxxxxx",
                             c->idx, c->sent++);
            (void)n;
            out_json(c, "{\"type\":\"broadcast\",\"id\":%d,\"text\":\"%s\"}", ID_MSG,
                     text);
            s_msgs++;
            c->t_msg = t + rnd_range(100, 300) * 1000000ull;
        }
        struct conn *p = &conns[c->idx ^ 1];
        if (c->file_wanted && (c->idx ^ 1) < nconns && p->state == CS_READY) {
            c->file_wanted = 0;
            start_file(c);
            s_files++;
        }
        if (t >= c->t_end) {
            if (rnd() % 2) {
                out_json(c, "{\"type\":\"leave\",\"id\":%d}", ID_LEAVE);
                out_json(c, "{\"type\":\"exit\",\"id\":%d}", ID_EXIT);
                c->state = CS_CLOSING;
                c->t_end = t + 5000000000ull;
                s_graceful++;
            } else {
                s_drops++;
                conn_close(c, CS_OFF);
            }
        }
    }
}

/* ---- reporting ---- */
static double hist_pct(double q)
{
    if (!lat_n) return 0;
    uint64_t want = (uint64_t)(q * (double)lat_n);
    if (want >= lat_n) want = lat_n - 1;
    uint64_t acc = 0;
    for (uint32_t i = 0; i < HIST_N; i++) {
        acc += hist[i];
        if (acc > want) { /* bucket midpoint, in ms */
            if (i < HIST_T1) return i / 1000.0 + 0.0005;
            if (i < HIST_T2) return (10000 + (i - HIST_T1) * 10.0) / 1000.0 + 0.005;
            if (i < HIST_T3) return (1000000 + (i - HIST_T2) * 1000.0) / 1000.0 + 0.5;
            return lat_max / 1e6;
        }
    }
    return lat_max / 1e6;
}

static double cpu_since(struct rusage *a)
{
    struct rusage b;
    getrusage(RUSAGE_SELF, &b);
    double u = (b.ru_utime.tv_sec - a->ru_utime.tv_sec) +
               (b.ru_utime.tv_usec - a->ru_utime.tv_usec) / 1e6;
    double s = (b.ru_stime.tv_sec - a->ru_stime.tv_sec) +
               (b.ru_stime.tv_usec - a->ru_stime.tv_usec) / 1e6;
    return u + s;
}

static void print_codes(void)
{
    printf(",\"codes\":{");
    for (int i = 0; i < MAX_CODES && code_n[i]; i++)
        printf("%s\"%s\":%llu", i ? "," : "", codes[i], (unsigned long long)code_n[i]);
    printf("}");
}

static void print_ready(void)
{
    printf("{\"event\":\"ready\",\"scenario\":\"%s\",\"proto\":\"%s\",\"clients\":%d,"
           "\"connected\":%d,\"failed\":%d,\"setup_s\":%.4f",
           scen == S_CONNECT ? "connect" : scen == S_FANOUT ? "fanout"
           : scen == S_LATENCY ? "latency" : scen == S_FILES ? "files" : "soak",
           proto == P_CHATNET ? "chatnet" : "irc", nconns, nready, nfailed,
           secs(t_ready - t_start));
    print_codes();
    printf("}\n");
    fflush(stdout);
}

static void print_done(void)
{
    uint64_t t = now_ns();
    double cpu = cpu_since(&ru_go);
    double wall = secs(t - t_go);
    printf("{\"event\":\"done\",\"wall_s\":%.4f,\"cpu_s\":%.4f", wall, cpu);
    if (scen == S_FANOUT || scen == S_LATENCY) {
        double win = secs(t_stop - t_warm);
        uint64_t missing = 0, incomplete = 0;
        for (int i = 0; i < nconns; i++) {
            struct conn *r = &conns[i];
            if (!r->expect || r->state != CS_READY) continue;
            int base = r->room * room_size;
            for (int k = 0; k < r->members; k++) {
                struct conn *s = &conns[base + k];
                if (s == r) continue;
                if (r->expect[k] < s->sent) {
                    missing += s->sent - r->expect[k];
                    incomplete++;
                }
            }
        }
        printf(",\"window_s\":%.4f,\"sent\":%llu,\"deliveries\":%llu,"
               "\"expected_deliveries\":%llu,\"msgs_per_s\":%.1f,\"deliveries_per_s\":%.1f,"
               "\"replies_ok\":%llu,\"gaps\":%llu,\"dups\":%llu,\"unknown\":%llu,"
               "\"missing\":%llu,\"incomplete_pairs\":%llu,\"exact\":%s,"
               "\"lat_n\":%llu,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,"
               "\"max_ms\":%.4f,\"mean_ms\":%.4f,\"send_cpu_s\":%.4f",
               win, (unsigned long long)sent_total, (unsigned long long)deliveries,
               (unsigned long long)expected_deliveries,
               (sent_stop - sent_warm) / win, (deliveries_stop - deliveries_warm) / win,
               (unsigned long long)replies_ok, (unsigned long long)gaps,
               (unsigned long long)dups, (unsigned long long)unknown,
               (unsigned long long)missing, (unsigned long long)incomplete,
               (!gaps && !dups && !unknown && !missing && !closed_unexpected) ? "true"
                                                                               : "false",
               (unsigned long long)lat_n, hist_pct(0.5), hist_pct(0.99), hist_pct(0.999),
               lat_max / 1e6, lat_n ? lat_sum / 1e6 / lat_n : 0.0, cpu);
        if (scen == S_LATENCY) printf(",\"offered_rate\":%.1f", rate);
    }
    if (scen == S_FILES) {
        double span = f_last_end > t_go ? secs(f_last_end - t_go) : wall;
        printf(",\"files\":%d,\"file_size\":%llu,\"started\":%llu,\"uploaded\":%llu,"
               "\"received_ok\":%llu,\"received_bad\":%llu,\"delivered\":%llu,"
               "\"failed\":%llu,\"aborted\":%llu,\"bytes\":%llu,\"corrupt_chunks\":%llu,"
               "\"span_s\":%.4f,\"mb_per_s\":%.2f,\"file_mean_s\":%.4f,\"file_max_s\":%.4f,"
               "\"intact\":%s",
               senders * files_per_sender, (unsigned long long)file_size,
               (unsigned long long)f_started, (unsigned long long)f_uploaded,
               (unsigned long long)f_rx_ok, (unsigned long long)f_rx_bad,
               (unsigned long long)f_delivered, (unsigned long long)f_failed,
               (unsigned long long)f_aborted, (unsigned long long)f_bytes,
               (unsigned long long)f_corrupt, span, f_bytes / 1e6 / span,
               f_rx_ok ? secs(file_lat_sum) / f_rx_ok : 0.0, secs(file_lat_max),
               (f_rx_ok == (uint64_t)(senders * files_per_sender) && !f_corrupt &&
                !f_rx_bad)
                   ? "true"
                   : "false");
    }
    if (scen == S_SOAK) {
        printf(",\"connects\":%llu,\"logins\":%llu,\"graceful\":%llu,\"drops\":%llu,"
               "\"msgs\":%llu,\"deliveries\":%llu,\"files\":%llu,\"files_received\":%llu,"
               "\"files_failed\":%llu,\"files_aborted\":%llu,\"corrupt_chunks\":%llu",
               (unsigned long long)s_connects, (unsigned long long)s_logins,
               (unsigned long long)s_graceful, (unsigned long long)s_drops,
               (unsigned long long)s_msgs, (unsigned long long)deliveries,
               (unsigned long long)s_files, (unsigned long long)f_rx_ok,
               (unsigned long long)f_failed, (unsigned long long)f_aborted,
               (unsigned long long)f_corrupt);
    }
    printf(",\"closed_unexpected\":%llu", (unsigned long long)closed_unexpected);
    print_codes();
    printf("}\n");
    fflush(stdout);
}

static void soak_tick_report(void)
{
    int online = 0;
    for (int i = 0; i < nconns; i++) online += conns[i].state == CS_READY;
    printf("{\"event\":\"tick\",\"t_s\":%.2f,\"online\":%d,\"connects\":%llu,"
           "\"msgs\":%llu,\"files\":%llu}\n",
           secs(now_ns() - t_go), online, (unsigned long long)s_connects,
           (unsigned long long)s_msgs, (unsigned long long)s_files);
    fflush(stdout);
}

/* ---- phases ---- */
static void set_timer(uint64_t period_ns)
{
    struct itimerspec its = {0};
    its.it_interval.tv_sec = (time_t)(period_ns / 1000000000ull);
    its.it_interval.tv_nsec = (long)(period_ns % 1000000000ull);
    its.it_value = its.it_interval;
    timerfd_settime(tfd, 0, &its, NULL);
}

static void go(void)
{
    phase = PH_RUN;
    getrusage(RUSAGE_SELF, &ru_go);
    t_go = now_ns();
    t_warm = t_go + (uint64_t)(warmup * 1e9);
    t_stop = t_go + (uint64_t)((warmup + duration) * 1e9);
    t_tick = t_go;
    if (getenv("LOADGEN_DEBUG")) lat_debug_t = t_go;
    if (scen == S_CONNECT) {
        t_stop = t_warm = t_go;
        phase = PH_DONE;
        print_done();
        return;
    }
    if (scen == S_FANOUT) {
        for (int i = 0; i < nconns; i++)
            if (conns[i].state == CS_READY)
                for (int w = 0; w < window_; w++) send_msg(&conns[i]);
    }
    if (scen == S_LATENCY && eager > 0) {
        for (int i = 0; i < nconns; i++)
            if (conns[i].fd >= 0 && is_lazy(&conns[i])) ep_set(&conns[i], 0, EPOLL_CTL_MOD);
        lazy_reading = 1;
    }
    if (scen == S_LATENCY) {
        /* the due messages go out on each tick: at most 1,000 ticks a second
           keeps the generator's own wake-ups cheap (sends go in small bursts
           over different rooms, each stamped when it is written) */
        uint64_t period = (uint64_t)(1e9 / rate);
        if (period < 1000000) period = 1000000;
        set_timer(period);
        lat_k = 0;
        return;
    }
    if (scen == S_FILES) {
        t_warm = t_go;
        t_stop = t_go + (uint64_t)(duration * 1e9); /* a time limit */
        for (int i = 0; i < senders; i++)
            if (conns[i].state == CS_READY) start_file(&conns[i]);
    }
    if (scen == S_SOAK) {
        t_warm = t_go;
        t_stop = t_go + (uint64_t)(duration * 1e9);
        for (int i = 0; i < nconns; i++) conns[i].t_next = t_go + rnd_range(0, 1000) * 1000000ull;
    }
    set_timer(10000000ull); /* 10 ms */
}

/* files: after "done" (outside the measured span and the runner's CPU
   window), the sha256 of every file sent, against the file-end hashes */
static void print_sha256(void)
{
    uint64_t ok = 0, bad = 0, missing = 0;
    char want[65];
    if (!check_sha) {
        /* --no-sha256 (a server that hashes nothing): say that nothing was compared */
        printf("{\"event\":\"sha256\",\"checked\":false,\"sha256_ok\":0,"
               "\"sha256_bad\":0,\"sha256_missing\":0}\n");
        fflush(stdout);
        return;
    }
    for (int i = 0; i < senders && i < 16; i++)
        for (int f = 0; f < files_per_sender; f++) {
            const char *got = file_sha[i * MAX_FILES + f];
            if (!got[0]) {
                missing++;
                continue;
            }
            pattern_sha256(file_seed_of(i, f), file_size, want);
            if (strcmp(got, want) == 0) ok++;
            else bad++;
        }
    printf("{\"event\":\"sha256\",\"checked\":true,\"sha256_ok\":%llu,\"sha256_bad\":%llu,"
           "\"sha256_missing\":%llu}\n",
           (unsigned long long)ok, (unsigned long long)bad, (unsigned long long)missing);
    fflush(stdout);
}

static void finish(void)
{
    phase = PH_DONE;
    print_done();
    if (scen == S_FILES) print_sha256();
    if (autogo) {
        fflush(stdout);
    }
}

static uint64_t count_expected(void)
{
    uint64_t e = 0;
    for (int i = 0; i < nconns; i++) {
        struct conn *s = &conns[i];
        if (s->sent) e += (uint64_t)s->sent * (uint64_t)(s->members - 1);
    }
    return e;
}

static void on_tick(void)
{
    uint64_t t = now_ns();
    if (phase == PH_RUN && t >= t_warm && !warmed) {
        /* figures count from the end of the warm-up */
        warmed = 1;
        deliveries_warm = deliveries;
        sent_warm = sent_total;
        memset(hist, 0, sizeof hist);
        lat_n = lat_max = lat_sum = 0;
    }
    if (scen == S_LATENCY && phase == PH_RUN) {
        /* open loop: message k is due at t_go + k / rate */
        while (t_go + (uint64_t)(lat_k * (1e9 / rate)) <= t) {
            struct conn *s = &conns[(lat_k % (uint64_t)nrooms) * (uint64_t)room_size];
            lat_k++;
            if (s->fd >= 0 && s->state == CS_READY) send_msg(s);
        }
        if (lazy_reading) {
            /* each lazy receiver once per 100 ms, at a 1 ms tick */
            int share = nconns / 100 + 1;
            for (int k = 0; k < share; k++) {
                struct conn *c = &conns[lazy_next];
                lazy_next = (lazy_next + 1) % nconns;
                if (c->fd >= 0 && is_lazy(c)) do_read(c);
            }
        }
    }
    if (scen == S_SOAK) {
        soak_tick();
        if (phase == PH_RUN && t - t_tick >= 5000000000ull) {
            t_tick = t;
            soak_tick_report();
        }
    }
    if (phase == PH_RUN && t >= t_stop) {
        deliveries_stop = deliveries;
        sent_stop = sent_total;
        phase = PH_DRAIN;
        t_done_deadline = t + (uint64_t)(drain_timeout * 1e9);
        if (scen == S_LATENCY) {
            set_timer(10000000ull);
            for (int i = 0; i < nconns; i++)
                if (conns[i].fd >= 0 && is_lazy(&conns[i]))
                    ep_set(&conns[i], conns[i].want_out ? EPOLLIN | EPOLLOUT : EPOLLIN,
                           EPOLL_CTL_MOD);
            lazy_reading = 0; /* every receiver read at once from here on */
        }
        if (scen == S_FILES) t_stop = t;
    }
    if (phase == PH_DRAIN) {
        int done = 0;
        if (scen == S_FANOUT || scen == S_LATENCY) {
            expected_deliveries = count_expected();
            done = deliveries + unknown >= expected_deliveries;
        } else if (scen == S_SOAK) {
            done = 1;
            for (int i = 0; i < nconns; i++)
                if (conns[i].state != CS_OFF && conns[i].state != CS_FAILED) done = 0;
        } else {
            done = 1;
        }
        if (done || t >= t_done_deadline) finish();
    }
    if (scen == S_FILES && phase == PH_RUN) {
        uint64_t total = (uint64_t)senders * (uint64_t)files_per_sender;
        if (f_rx_ok + f_rx_bad + f_aborted >= total ||
            (f_failed >= total && f_rx_ok + f_rx_bad + f_aborted + f_failed >= total)) {
            deliveries_stop = deliveries;
            t_stop = t;
            /* let file-delivered notices arrive */
            phase = PH_DRAIN;
            t_done_deadline = t + 200000000ull;
        }
    }
}

static void quit(void)
{
    for (int i = 0; i < nconns; i++)
        if (conns[i].fd >= 0) close(conns[i].fd);
    printf("{\"event\":\"closed\"}\n");
    fflush(stdout);
    exit(0);
}

static void on_stdin(void)
{
    char line[256];
    ssize_t n = read(0, line, sizeof line - 1);
    if (n <= 0) quit();
    line[n] = 0;
    if (strstr(line, "quit")) quit();
    if (strstr(line, "go") && phase == PH_WAIT_GO) go();
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --port P|--ports P1,P2 [--proto chatnet|irc] --scenario "
            "connect|fanout|latency|files|soak\n"
            "  [--host 127.0.0.1] [--clients N] [--rooms R] [--room-size 15]\n"
            "  [--window 8] [--duration S] [--warmup S] [--rate MSG_PER_S]\n"
            "  [--msg-size BYTES] [--senders U] [--file-size BYTES]\n"
            "  [--files-per-sender F] [--chunk BYTES] [--concurrency C]\n"
            "  [--prefix NAME] [--drain-timeout S] [--seed N] [--auto]\n"
            "  [--quickack]  TCP_QUICKACK on every connection, set again after\n"
            "               every read (Linux leaves quick-ACK mode by itself)\n"
            "  [--no-sha256] files: do not compare file-end sha256s (a server\n"
            "               that computes none); the sha256 event says checked false\n"
            "  [--eager N]  latency: time members 1..N of each room, drain the rest\n"
            "               every 100 ms (keeps the generator's CPU low)\n"
            "  --ports P1,P2  several servers (cluster nodes): a room's members\n"
            "               alternate between them; latency --eager: sender on P1,\n"
            "               timed receivers on P2; files: senders P1, receivers P2\n"
            "       loadgen --pattern SEED:SIZE | --pattern-sha256 SEED:SIZE\n"
            "               a file's bytes, or their sha256 (to test the generator)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct option opts[] = {
        {"proto", 1, 0, 'P'},         {"scenario", 1, 0, 's'},
        {"host", 1, 0, 'h'},          {"port", 1, 0, 'p'},
        {"clients", 1, 0, 'n'},       {"rooms", 1, 0, 'r'},
        {"room-size", 1, 0, 'k'},     {"window", 1, 0, 'w'},
        {"duration", 1, 0, 'd'},      {"warmup", 1, 0, 'W'},
        {"rate", 1, 0, 'R'},          {"msg-size", 1, 0, 'm'},
        {"senders", 1, 0, 'u'},       {"file-size", 1, 0, 'f'},
        {"files-per-sender", 1, 0, 'F'}, {"chunk", 1, 0, 'c'},
        {"concurrency", 1, 0, 'C'},   {"prefix", 1, 0, 'x'},
        {"drain-timeout", 1, 0, 'D'}, {"seed", 1, 0, 'S'},
        {"auto", 0, 0, 'a'},          {"help", 0, 0, '?'},
        {"eager", 1, 0, 'E'},
        {"pattern", 1, 0, 'G'},       {"pattern-sha256", 1, 0, 'H'},
        {"ports", 1, 0, 'N'},
        {"quickack", 0, 0, 'Q'},      {"no-sha256", 0, 0, 'K'},
        {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'P': proto = strcmp(optarg, "irc") == 0 ? P_IRC : P_CHATNET; break;
        case 's':
            if (!strcmp(optarg, "connect")) scen = S_CONNECT;
            else if (!strcmp(optarg, "fanout")) scen = S_FANOUT;
            else if (!strcmp(optarg, "latency")) scen = S_LATENCY;
            else if (!strcmp(optarg, "files")) scen = S_FILES;
            else if (!strcmp(optarg, "soak")) scen = S_SOAK;
            else usage();
            break;
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'N': { /* --ports P1,P2,...: several servers (cluster nodes) */
            char *save = NULL, *tok = strtok_r(optarg, ",", &save);
            nports = 0;
            for (; tok && nports < MAX_PORTS; tok = strtok_r(NULL, ",", &save))
                ports[nports++] = atoi(tok);
            if (nports < 1) usage();
            port = ports[0];
            break;
        }
        case 'n': nclients = atoi(optarg); break;
        case 'r': nrooms = atoi(optarg); break;
        case 'k': room_size = atoi(optarg); break;
        case 'w': window_ = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'W': warmup = atof(optarg); break;
        case 'R': rate = atof(optarg); break;
        case 'm': msg_size = atoi(optarg); break;
        case 'u': senders = atoi(optarg); break;
        case 'f': file_size = strtoull(optarg, NULL, 10); break;
        case 'F': files_per_sender = atoi(optarg); break;
        case 'c': chunk = atoi(optarg); break;
        case 'C': concurrency = atoi(optarg); break;
        case 'x': prefix = optarg; break;
        case 'D': drain_timeout = atof(optarg); break;
        case 'S': seed0 = (unsigned)atoi(optarg); break;
        case 'a': autogo = 1; break;
        case 'E': eager = atoi(optarg); break;
        case 'Q': quickack = 1; break;
        case 'K': check_sha = 0; break;
        case 'G': /* --pattern SEED:SIZE: write those bytes to stdout (tests) */
        case 'H': { /* --pattern-sha256 SEED:SIZE: print their sha256 (tests) */
            unsigned long long pseed = 0, psize = 0;
            if (sscanf(optarg, "%llu:%llu", &pseed, &psize) != 2) usage();
            if (o == 'H') {
                char hex[65];
                pattern_sha256(pseed, psize, hex);
                printf("%s\n", hex);
            } else {
                static uint8_t tmp[65536];
                for (uint64_t off = 0; off < psize;) {
                    size_t k = psize - off < sizeof tmp ? (size_t)(psize - off) : sizeof tmp;
                    pattern(pseed, off, tmp, k);
                    fwrite(tmp, 1, k, stdout);
                    off += k;
                }
            }
            return 0;
        }
        default: usage();
        }
    }
    if (!port || room_size < 1 || window_ < 1 || chunk < 1 || chunk > 65536 ||
        files_per_sender > MAX_FILES || msg_size > 4000)
        usage();
    if (scen == S_FILES && proto == P_IRC) die("files: chatnet only");
    if (scen == S_SOAK && proto == P_IRC) die("soak: chatnet only");
    rng_state ^= (uint64_t)seed0 * 0x9E3779B97F4A7C15ull;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);

    if (nports == 1) ports[0] = port;
    for (int k = 0; k < nports; k++) {
        if (ports[k] <= 0) usage();
        memset(&server_addr[k], 0, sizeof server_addr[k]);
        server_addr[k].sin_family = AF_INET;
        server_addr[k].sin_port = htons((uint16_t)ports[k]);
        if (inet_pton(AF_INET, host, &server_addr[k].sin_addr) != 1) die("bad host %s", host);
    }

    switch (scen) {
    case S_CONNECT: nconns = nclients; break;
    case S_FANOUT:
    case S_LATENCY: nconns = nrooms * room_size; break;
    case S_FILES: nconns = 2 * senders; if (senders > 16) die("--senders <= 16"); break;
    case S_SOAK: nconns = nclients; break;
    }
    if (nconns < 1) usage();
    conns = calloc((size_t)nconns, sizeof *conns);
    dirty_list = malloc(sizeof(int) * (size_t)nconns * 2 + 16);
    scratch = malloc(SCRATCH_SIZE);
    if (!conns || !dirty_list || !scratch) die("out of memory");
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        c->fd = -1;
        c->idx = i;
        c->transfer = -1;
        if (scen == S_FILES) {
            c->room = i;
            c->members = 1;
        } else {
            c->room = i / room_size;
            c->slot = i % room_size;
            int left = nconns - c->room * room_size;
            c->members = left < room_size ? left : room_size;
        }
        if (scen == S_FANOUT || scen == S_LATENCY)
            c->expect = calloc((size_t)room_size, sizeof(uint32_t));
        for (int k = 0; k < MAX_RX; k++) c->rx[k].transfer = -1;
    }
    (void)same_room_members;

    epfd = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_TIMER};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);
    if (!autogo) {
        ev.data.u64 = TAG_STDIN;
        epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
    }
    set_timer(20000000ull);

    t_start = now_ns();
    if (scen == S_SOAK) {
        phase = PH_WAIT_GO;
        t_ready = t_start;
        print_ready();
        if (autogo) go();
    } else {
        setup_pump();
    }

    struct epoll_event evs[1024];
    for (;;) {
        int n = epoll_wait(epfd, evs, 1024, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_TIMER) {
                uint64_t x;
                while (read(tfd, &x, sizeof x) > 0) {}
                on_tick();
                continue;
            }
            if (tag == TAG_STDIN) {
                on_stdin();
                continue;
            }
            struct conn *c = &conns[tag];
            if (c->fd < 0) continue;
            uint32_t e = evs[i].events;
            if (c->state == CS_CONNECTING) {
                on_connected(c);
                continue;
            }
            if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) do_read(c);
            if (c->fd >= 0 && (e & EPOLLOUT) && c->want_out) {
                if (flush(c) == 0 && !c->want_out) on_writable(c);
            }
        }
        flush_dirty();
        if (phase == PH_SETUP && getenv("LOADGEN_DEBUG")) {
            static uint64_t last;
            uint64_t t = now_ns();
            if (t - last > 1000000000ull) {
                int cnt[8] = {0};
                for (int i = 0; i < nconns; i++) cnt[conns[i].state]++;
                fprintf(stderr, "setup: off %d connecting %d login %d join %d ready %d failed %d\n",
                        cnt[CS_OFF], cnt[CS_CONNECTING], cnt[CS_LOGIN], cnt[CS_JOIN], cnt[CS_READY], cnt[CS_FAILED]);
                last = t;
            }
        }
        if (phase == PH_SETUP && nready + nfailed >= nconns) {
            t_ready = now_ns();
            phase = PH_WAIT_GO;
            set_timer(10000000ull);
            print_ready();
            if (autogo) go();
        }
        if (phase == PH_DONE && autogo) quit();
        if (n == 0 && phase != PH_RUN && phase != PH_DRAIN && phase != PH_SETUP) {
            /* idle: nothing to do but wait for stdin */
        }
    }
}
