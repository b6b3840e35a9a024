/*
 * A fake claude, codex and gemini that answer at once, for the benchmarks.
 *
 * The Python fakes of clinvk.testing.fake_cli start an interpreter on every
 * run, which takes longer than what the benchmarks measure; this program is
 * compiled once per benchmark run and costs one exec.  Its name (argv[0])
 * says which CLI it is, its flags which output format to print, in the shapes
 * clinvk's parsers read (clinvk/backends/claude.py, codex.py, gemini.py).
 *
 * It reads the whole prompt from stdin; words of the prompt of the form
 * "bench:KEY=VALUE" steer it:
 *
 *   bench:size=N     the answer is N bytes (default 2);
 *   bench:chunks=N   a streamed answer comes in N deltas (default 1);
 *   bench:gap_us=N   wait N microseconds after each delta;
 *   bench:stamp=1    each delta is "@<CLOCK_MONOTONIC in ns>@", taken just
 *                    before it is written (the stream latency benchmark);
 *   bench:count=1    the answer starts with "<bytes of stdin>:".
 *
 * "gemini --delete-session ID" (the ephemeral clean-up) exits 0 at once.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DIRECTIVES_SCAN 8192
#define BLOCK 65536

static char head[DIRECTIVES_SCAN + 1];
static size_t head_length;
static size_t stdin_bytes;

static void write_all(const char *data, size_t length)
{
    while (length > 0) {
        ssize_t written = write(1, data, length);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            exit(3);
        }
        data += written;
        length -= (size_t)written;
    }
}

/* Output is gathered here and written a line at a time (one write each,
 * as a CLI that flushes its lines does), or when the buffer is full. */
static char out[BLOCK];
static size_t out_length;

static void flush_out(void)
{
    write_all(out, out_length);
    out_length = 0;
}

static void emit(const char *data, size_t length)
{
    while (length > 0) {
        if (out_length == BLOCK)
            flush_out();
        size_t take = BLOCK - out_length < length ? BLOCK - out_length : length;
        memcpy(out + out_length, data, take);
        out_length += take;
        data += take;
        length -= take;
    }
}

static void put(const char *text) { emit(text, strlen(text)); }

/* Text that ends a line: the line goes out now. */
static void end_line(const char *text)
{
    put(text);
    flush_out();
}

static void read_stdin(void)
{
    char buffer[BLOCK];
    for (;;) {
        ssize_t got = read(0, buffer, sizeof buffer);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (got == 0)
            break;
        if (head_length < DIRECTIVES_SCAN) {
            size_t take = (size_t)got;
            if (take > DIRECTIVES_SCAN - head_length)
                take = DIRECTIVES_SCAN - head_length;
            memcpy(head + head_length, buffer, take);
            head_length += take;
        }
        stdin_bytes += (size_t)got;
    }
    head[head_length] = '\0';
}

static long long directive(const char *key, long long fallback)
{
    char word[64];
    snprintf(word, sizeof word, "bench:%s=", key);
    const char *found = strstr(head, word);
    return found ? atoll(found + strlen(word)) : fallback;
}

static const char *flag_value(int argc, char **argv, const char *flag)
{
    size_t length = strlen(flag);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], flag) == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], flag, length) == 0 && argv[i][length] == '=')
            return argv[i] + length + 1;
    }
    return NULL;
}

static int has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return 1;
    return 0;
}

/* The answer: an optional "<stdin bytes>:" then "0123456789abcdef" repeated,
 * `size` bytes in all, written in blocks so that a large one is never whole
 * in memory. */
static void write_answer(long long size, int count)
{
    static char block[BLOCK];
    char prefix[32] = "";
    if (count)
        snprintf(prefix, sizeof prefix, "%zu:", stdin_bytes);
    long long left = size;
    long long take = (long long)strlen(prefix);
    if (take > left)
        take = left;
    emit(prefix, (size_t)take);
    left -= take;
    for (size_t i = 0; i < BLOCK; i++)
        block[i] = "0123456789abcdef"[i % 16];
    while (left > 0) {
        size_t piece = left > BLOCK ? BLOCK : (size_t)left;
        emit(block, piece);
        left -= (long long)piece;
    }
}

static void pause_us(long long microseconds)
{
    if (microseconds <= 0)
        return;
    struct timespec wait = {microseconds / 1000000, (microseconds % 1000000) * 1000};
    while (nanosleep(&wait, &wait) < 0 && errno == EINTR)
        ;
}

/* The text of delta `index` of `chunks`: a time stamp, or its share of the
 * answer. */
static void write_delta(int index, int chunks, long long size, int stamp, int count)
{
    if (stamp) {
        struct timespec now;
        char text[48];
        clock_gettime(CLOCK_MONOTONIC, &now);
        snprintf(text, sizeof text, "@%lld@", (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
        put(text);
        return;
    }
    long long share = size / chunks + (index < size % chunks ? 1 : 0);
    write_answer(share, count && index == 0);
}

static char session[40];

static int claude(int argc, char **argv, long long size, int chunks, long long gap, int stamp, int count)
{
    const char *format = flag_value(argc, argv, "--output-format");
    if (format == NULL)
        format = "text";
    if (strcmp(format, "stream-json") == 0) {
        put("{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"");
        put(session);
        end_line("\",\"model\":\"claude-bench\",\"cwd\":\"/\"}\n");
        end_line("{\"type\":\"stream_event\",\"event\":{\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\"}}}\n");
        for (int i = 0; i < chunks; i++) {
            put("{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"index\":0,"
                "\"delta\":{\"type\":\"text_delta\",\"text\":\"");
            write_delta(i, chunks, size, stamp, count);
            end_line("\"}}}\n");
            pause_us(gap);
        }
        end_line("{\"type\":\"stream_event\",\"event\":{\"type\":\"message_stop\"}}\n");
        /* The complete message repeats nothing: its text was streamed. */
        end_line("{\"type\":\"assistant\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\","
            "\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"\"}]}}\n");
        put("{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"\",\"session_id\":\"");
        put(session);
        end_line("\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}\n");
    } else if (strcmp(format, "json") == 0) {
        put("{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"");
        write_answer(size, count);
        put("\",\"session_id\":\"");
        put(session);
        end_line("\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}\n");
    } else {
        write_answer(size, count);
        end_line("\n");
    }
    return 0;
}

static int codex(long long size, int chunks, long long gap, int stamp, int count)
{
    char item[64];
    put("{\"type\":\"thread.started\",\"thread_id\":\"");
    put(session);
    end_line("\"}\n{\"type\":\"turn.started\"}\n");
    for (int i = 0; i < chunks; i++) {
        snprintf(item, sizeof item, "{\"type\":\"item.completed\",\"item\":{\"id\":\"item_%d\",", i);
        put(item);
        put("\"type\":\"agent_message\",\"text\":\"");
        write_delta(i, chunks, size, stamp, count);
        end_line("\"}}\n");
        pause_us(gap);
    }
    end_line("{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":1,\"cached_input_tokens\":0,"
        "\"output_tokens\":1}}\n");
    return 0;
}

static int gemini(int argc, char **argv, long long size, int chunks, long long gap, int stamp, int count)
{
    const char *format = flag_value(argc, argv, "--output-format");
    if (format == NULL)
        format = "text";
    if (strcmp(format, "stream-json") == 0) {
        put("{\"type\":\"init\",\"session_id\":\"");
        put(session);
        end_line("\",\"model\":\"gemini-bench\"}\n");
        for (int i = 0; i < chunks; i++) {
            put("{\"type\":\"message\",\"role\":\"assistant\",\"content\":\"");
            write_delta(i, chunks, size, stamp, count);
            end_line("\",\"delta\":true}\n");
            pause_us(gap);
        }
        end_line("{\"type\":\"result\",\"status\":\"success\",\"stats\":{\"input_tokens\":1,\"output_tokens\":1}}\n");
    } else if (strcmp(format, "json") == 0) {
        put("{\"session_id\":\"");
        put(session);
        put("\",\"response\":\"");
        write_answer(size, count);
        end_line("\",\"stats\":{\"models\":{\"gemini-bench\":{\"tokens\":{\"prompt\":1,\"candidates\":1}}}}}\n");
    } else {
        write_answer(size, count);
        end_line("\n");
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *name = strrchr(argv[0], '/');
    name = name ? name + 1 : argv[0];
    if (strcmp(name, "gemini") == 0 && has_flag(argc, argv, "--delete-session"))
        return 0;
    read_stdin();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(session, sizeof session, "bench-%d-%lld", (int)getpid(), (long long)now.tv_nsec);
    long long size = directive("size", 2);
    int chunks = (int)directive("chunks", 1);
    long long gap = directive("gap_us", 0);
    int stamp = directive("stamp", 0) != 0;
    int count = directive("count", 0) != 0;
    if (chunks < 1)
        chunks = 1;
    if (strcmp(name, "claude") == 0)
        return claude(argc, argv, size, chunks, gap, stamp, count);
    if (strcmp(name, "codex") == 0)
        return codex(size, chunks, gap, stamp, count);
    if (strcmp(name, "gemini") == 0)
        return gemini(argc, argv, size, chunks, gap, stamp, count);
    fprintf(stderr, "fastcli: unknown name %s\n", name);
    return 2;
}
