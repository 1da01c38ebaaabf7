/*
 * Unit tests for src/fetcher/log.c: the line format, levels, debug only
 * when verbose, control bytes flattened, long messages cut to one line.
 * stderr is redirected to a temp file around each logging call.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"


typedef struct {
    char    path[64];
    int     saved;
    char    out[8192];
    size_t  len;
} capture_t;


static void
capture_start(capture_t *c)
{
    int  fd;

    snprintf(c->path, sizeof(c->path), "/tmp/ocitest-log.XXXXXX");
    fd = mkstemp(c->path);
    assert_true(fd >= 0);

    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
}


/* Restore stderr, then read what was logged (NUL-terminated). */
static void
capture_stop(capture_t *c)
{
    ssize_t  n;
    int      fd;

    assert_int_equal(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
    close(c->saved);

    fd = open(c->path, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, c->out, sizeof(c->out) - 1);
    close(fd);
    unlink(c->path);

    assert_true(n >= 0);
    c->len = (size_t) n;
    c->out[c->len] = '\0';
}


/* "YYYY-mm-ddTHH:MM:SS " at p, within a minute of now. */
static void
assert_stamp(const char *p)
{
    struct tm  tm;
    time_t     t, now;
    int        i;

    for (i = 0; i < 19; i++) {
        if (i == 4 || i == 7) {
            assert_int_equal(p[i], '-');
        } else if (i == 10) {
            assert_int_equal(p[i], 'T');
        } else if (i == 13 || i == 16) {
            assert_int_equal(p[i], ':');
        } else {
            assert_true(isdigit((unsigned char) p[i]));
        }
    }

    assert_int_equal(p[19], ' ');

    memset(&tm, 0, sizeof(tm));
    assert_int_equal(sscanf(p, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year,
                            &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                            &tm.tm_min, &tm.tm_sec), 6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    t = mktime(&tm);
    now = time(NULL);
    assert_true(t <= now && now - t < 60);
}


static void
test_levels(void **state)
{
    capture_t  c;

    log_set_verbose(0);

    capture_start(&c);
    log_error("e %d", 1);
    log_warn("w %s", "two");
    log_info("i");
    log_debug("hidden %d", 4);
    capture_stop(&c);

    /* four lines were asked for, three are written, each stamped */
    assert_int_equal(c.len, 3 * 20 + strlen("error e 1\n")
                            + strlen("warn w two\n") + strlen("info i\n"));
    assert_stamp(c.out);
    assert_memory_equal(c.out + 20, "error e 1\n", 10);
    assert_stamp(c.out + 30);
    assert_memory_equal(c.out + 50, "warn w two\n", 11);
    assert_stamp(c.out + 61);
    assert_string_equal(c.out + 81, "info i\n");

    log_set_verbose(1);

    capture_start(&c);
    log_debug("shown %d", 4);
    capture_stop(&c);

    log_set_verbose(0);

    assert_int_equal(c.len, 20 + strlen("debug shown 4\n"));
    assert_string_equal(c.out + 20, "debug shown 4\n");
}


static void
test_control_bytes(void **state)
{
    capture_t  c;

    capture_start(&c);
    log_info("a\nb\rc\td\x7f" "e\x01" "f \xc3\xa9");
    capture_stop(&c);

    /* one line: control bytes are spaces, UTF-8 is left alone */
    assert_int_equal(c.len, 20 + strlen("info a b c d e f \xc3\xa9\n"));
    assert_string_equal(c.out + 20, "info a b c d e f \xc3\xa9\n");
}


static void
test_long_line(void **state)
{
    capture_t   c;
    char       *msg;
    size_t      i;

    msg = malloc(5000);
    assert_non_null(msg);
    memset(msg, 'x', 4999);
    msg[4999] = '\0';

    capture_start(&c);
    log_warn("%s", msg);
    log_info("after");
    capture_stop(&c);

    free(msg);

    /* cut at 2047 bytes with its newline, and the next line is whole */
    assert_int_equal(c.len, 2047 + 20 + strlen("info after\n"));
    assert_memory_equal(c.out + 20, "warn ", 5);

    for (i = 25; i < 2046; i++) {
        assert_int_equal(c.out[i], 'x');
    }

    assert_int_equal(c.out[2046], '\n');
    assert_stamp(c.out + 2047);
    assert_string_equal(c.out + 2067, "info after\n");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_control_bytes),
        cmocka_unit_test(test_long_line),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
