/*
 * Unit tests for src/ctl/octl_watch.c and octl_fmt.c: warm-status
 * answers parsed, and what the view writes, byte for byte, to a terminal
 * and to a log.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "octl_fmt.h"
#include "octl_watch.h"


#define D1 \
    "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 \
    "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 \
    "sha256:3333333333333333333333333333333333333333333333333333333333333333"


static void
test_bytes(void **state)
{
    char  b[OCTL_BYTES_LEN];

    assert_string_equal(octl_bytes(0, 0, b, sizeof(b)), "0 B");
    assert_string_equal(octl_bytes(1023, 0, b, sizeof(b)), "1023 B");
    assert_string_equal(octl_bytes(1024, 0, b, sizeof(b)), "1.0 KiB");
    assert_string_equal(octl_bytes(1536, 0, b, sizeof(b)), "1.5 KiB");
    assert_string_equal(octl_bytes(3 * 1024 * 1024, 0, b, sizeof(b)),
                        "3.0 MiB");
    /* just below a MiB rounds up into MiB, never "1024.0 KiB" */
    assert_string_equal(octl_bytes(1024 * 1024 - 1, 0, b, sizeof(b)),
                        "1.0 MiB");
    assert_string_equal(octl_bytes(5LL << 40, 0, b, sizeof(b)), "5.0 TiB");
    assert_string_equal(octl_bytes(1536, 1, b, sizeof(b)), "1536");
    assert_string_equal(octl_bytes(123456789012LL, 1, b, sizeof(b)),
                        "123456789012");
}


static void
test_percent(void **state)
{
    assert_int_equal(octl_percent(0, 100), 0);
    assert_int_equal(octl_percent(50, 100), 50);
    assert_int_equal(octl_percent(999, 1000), 99);   /* not done yet */
    assert_int_equal(octl_percent(1000, 1000), 100);
    assert_int_equal(octl_percent(2000, 1000), 100);
    assert_int_equal(octl_percent(5, 0), 0);         /* size unknown */
    assert_int_equal(octl_percent(-1, 10), 0);
}


static void
test_queued(void **state)
{
    unsigned long  id = 0;

    assert_int_equal(octl_warm_queued("#42 queued ghcr.io/org/app:1.0", &id),
                     OCI_OK);
    assert_int_equal(id, 42);

    assert_int_equal(octl_warm_queued("#42 fetching ghcr.io/org/app:1.0",
                                      &id), OCI_EINVAL);
    assert_int_equal(octl_warm_queued("42 queued ghcr.io/org/app:1.0", &id),
                     OCI_EINVAL);
    assert_int_equal(octl_warm_queued("# queued x", &id), OCI_EINVAL);
    assert_int_equal(octl_warm_queued("#4x2 queued x", &id), OCI_EINVAL);
    assert_int_equal(octl_warm_queued("#1 queued", &id), OCI_EINVAL);
    assert_int_equal(octl_warm_queued("#1 queued a b", &id), OCI_EINVAL);
    assert_int_equal(octl_warm_queued("warm: not built yet", &id),
                     OCI_EINVAL);
}


static void
test_status_lines(void **state)
{
    octl_warm_t  w;

    memset(&w, 0, sizeof(w));

    assert_int_equal(octl_warm_line(&w, "#7 fetching reg.example/app:v1 "
                                    "1/3 4096/10000"), OCI_OK);
    assert_int_equal(w.id, 7);
    assert_string_equal(w.state, "fetching");
    assert_string_equal(w.ref, "reg.example/app:v1");
    assert_int_equal(w.blobs_done, 1);
    assert_int_equal(w.blobs, 3);
    assert_int_equal(w.bytes_done, 4096);
    assert_int_equal(w.bytes, 10000);
    assert_int_equal(octl_warm_end(&w), OCTL_WARM_GOING);

    assert_int_equal(octl_warm_line(&w, "  " D1 " stored 4096/4096"),
                     OCI_OK);
    assert_int_equal(octl_warm_line(&w, "  " D2 " fetching 0/5000"), OCI_OK);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.blob[0].digest, D1);
    assert_string_equal(w.blob[0].state, "stored");
    assert_int_equal(w.blob[0].done, 4096);
    assert_int_equal(w.blob[1].size, 5000);

    /* not a blob line */
    assert_int_equal(octl_warm_line(&w, D3 " queued 0/1"), OCI_EINVAL);
    assert_int_equal(octl_warm_line(&w, "  sha256:abc queued 0/1"),
                     OCI_EINVAL);
    assert_int_equal(octl_warm_line(&w, "  " D3 " queued 0-1"), OCI_EINVAL);
    assert_int_equal(octl_warm_line(&w, "  " D3 " queued"), OCI_EINVAL);
    assert_int_equal(octl_warm_line(&w, "  " D3 "  queued 0/1"), OCI_EINVAL);
    assert_int_equal(w.n, 2);

    /* the next answer starts over */
    octl_warm_reset(&w);
    assert_int_equal(w.n, 0);
    assert_int_equal(octl_warm_line(&w, "  " D1 " stored 1/1"), OCI_EINVAL);
    assert_int_equal(octl_warm_line(&w, "#7 done reg.example/app:v1"),
                     OCI_EINVAL);
    assert_int_equal(octl_warm_line(&w, "#7 done reg.example/app:v1 3/3 "
                                    "10000/10000"), OCI_OK);
    assert_int_equal(octl_warm_end(&w), OCTL_WARM_DONE);

    octl_warm_reset(&w);
    assert_int_equal(octl_warm_line(&w, "#7 failed reg.example/app:v1 2/3 "
                                    "5/10000"), OCI_OK);
    assert_int_equal(octl_warm_end(&w), OCTL_WARM_FAILED);

    octl_warm_reset(&w);
    assert_int_equal(octl_warm_line(&w, "#7 resolving reg.example/app:v1 "
                                    "0/0 0/0"), OCI_OK);
    assert_int_equal(octl_warm_end(&w), OCTL_WARM_GOING);

    octl_warm_free(&w);
}


static void
warm_answer(octl_warm_t *w, const char *const *lines, size_t n)
{
    size_t  i;

    octl_warm_reset(w);

    for (i = 0; i < n; i++) {
        assert_int_equal(octl_warm_line(w, lines[i]), OCI_OK);
    }
}


/* Not a terminal: the lines whose state changed, the end last. */
static void
test_view_log(void **state)
{
    static const char *const  a1[] = {
        "#3 resolving r.example/app:v1 0/0 0/0"
    };
    static const char *const  a2[] = {
        "#3 fetching r.example/app:v1 0/2 0/300",
        "  " D1 " fetching 10/100",
        "  " D2 " queued 0/200"
    };
    static const char *const  a3[] = {
        "#3 fetching r.example/app:v1 1/2 150/300",
        "  " D1 " stored 100/100",
        "  " D2 " fetching 50/200"
    };
    static const char *const  a4[] = {
        "#3 done r.example/app:v1 2/2 300/300",
        "  " D1 " stored 100/100",
        "  " D2 " stored 200/200"
    };

    octl_view_t   v;
    octl_warm_t   w;
    size_t        len;
    char         *text;
    FILE         *out;

    memset(&w, 0, sizeof(w));
    out = open_memstream(&text, &len);
    assert_non_null(out);

    octl_view_init(&v, out, 0, 0, 0);

    warm_answer(&w, a1, 1);
    assert_int_equal(octl_view_warm(&v, &w), OCI_OK);
    /* the same again: nothing */
    assert_int_equal(octl_view_warm(&v, &w), OCI_OK);
    warm_answer(&w, a2, 3);
    assert_int_equal(octl_view_warm(&v, &w), OCI_OK);
    warm_answer(&w, a2, 3);
    assert_int_equal(octl_view_warm(&v, &w), OCI_OK);
    warm_answer(&w, a3, 3);
    assert_int_equal(octl_view_warm(&v, &w), OCI_OK);
    warm_answer(&w, a4, 3);
    assert_int_equal(octl_view_warm(&v, &w), OCI_OK);

    fclose(out);

    assert_string_equal(text,
        "#3 resolving r.example/app:v1 0/0 0/0\n"
        "#3 fetching r.example/app:v1 0/2 0/300\n"
        "  " D1 " fetching 10/100\n"
        "  " D2 " queued 0/200\n"
        "  " D1 " stored 100/100\n"
        "  " D2 " fetching 50/200\n"
        "  " D2 " stored 200/200\n"
        "#3 done r.example/app:v1 2/2 300/300\n");

    free(text);
    octl_view_free(&v);
    octl_warm_free(&w);
}


/* A terminal: frames redrawn over the last one, cut to the width. */
static void
test_view_tty(void **state)
{
    static const char *const  a1[] = {
        "#3 fetching r.example/app:v1 0/2 0/300",
        "  " D1 " fetching 50/100",
        "  " D2 " queued 0/200"
    };
    static const char *const  a2[] = {
        "#3 done r.example/app:v1 2/2 300/300",
    };

    octl_view_t   v;
    octl_warm_t   w;
    size_t        len;
    char         *text;
    FILE         *out;

    memset(&w, 0, sizeof(w));
    out = open_memstream(&text, &len);
    assert_non_null(out);

    octl_view_init(&v, out, 1, 100, 24);

    warm_answer(&w, a1, 3);
    assert_int_equal(octl_view_warm(&v, &w), OCI_OK);
    assert_int_equal(v.drawn, 3);

    warm_answer(&w, a2, 1);
    assert_int_equal(octl_view_warm(&v, &w), OCI_OK);
    assert_int_equal(v.drawn, 1);

    fclose(out);

    assert_string_equal(text,
        "\r\033[2K#3 fetching r.example/app:v1  0/2 blobs  0 B of 300 B  0%\n"
        "\r\033[2K  111111111111  fetching [##########          ]  50%  "
        "50 B of 100 B\n"
        "\r\033[2K  222222222222  queued   [                    ]   0%  "
        "0 B of 200 B\n"
        "\033[J"
        /* up over the three lines, one line, the rest cleared */
        "\033[3A"
        "\r\033[2K#3 done r.example/app:v1  2/2 blobs  300 B of 300 B  "
        "100%\n"
        "\033[J");

    free(text);
    octl_view_free(&v);

    /* a narrow terminal: every line cut below its width */
    out = open_memstream(&text, &len);
    assert_non_null(out);
    octl_view_init(&v, out, 1, 30, 24);
    warm_answer(&w, a1, 3);
    assert_int_equal(octl_view_warm(&v, &w), OCI_OK);
    fclose(out);

    assert_string_equal(text,
        "\r\033[2K#3 fetching r.example/app:v1 \n"
        "\r\033[2K  111111111111  fetching [###\n"
        "\r\033[2K  222222222222  queued   [   \n"
        "\033[J");

    free(text);
    octl_view_free(&v);
    octl_warm_free(&w);
}


/* More blobs than the terminal has rows: work first, then a count. */
static void
test_view_tty_rows(void **state)
{
    static const char *const  a[] = {
        "#9 fetching r.example/big:v1 2/5 0/0",
        "  " D1 " stored 1/1",
        "  " D2 " queued 0/1",
        "  " D3 " fetching 0/1",
        "  " D1 " stored 1/1",
        "  " D2 " failed 0/1",
    };

    octl_view_t   v;
    octl_warm_t   w;
    size_t        len;
    char         *text, *p;
    FILE         *out;
    int           lines;

    memset(&w, 0, sizeof(w));
    out = open_memstream(&text, &len);
    assert_non_null(out);

    /* 5 rows: a frame of 4 lines, the image's, 2 blobs and a count */
    octl_view_init(&v, out, 1, 100, 5);
    warm_answer(&w, a, 6);
    assert_int_equal(octl_view_warm(&v, &w), OCI_OK);
    fclose(out);

    assert_int_equal(v.drawn, 4);

    for (lines = 0, p = text; (p = strchr(p, '\n')) != NULL; p++) {
        lines++;
    }

    assert_int_equal(lines, 4);
    assert_non_null(strstr(text, "333333333333  fetching"));
    assert_non_null(strstr(text, "222222222222  failed"));
    assert_null(strstr(text, "stored   ["));
    assert_non_null(strstr(text, "  ... and 3 more: 2 stored, 1 queued, "
                                 "0 other\n"));

    free(text);
    octl_view_free(&v);
    octl_warm_free(&w);
}


static void
test_lines(void **state)
{
    octl_lines_t  l;
    octl_view_t   v;
    size_t        len;
    char         *text;
    FILE         *out;

    memset(&l, 0, sizeof(l));

    assert_int_equal(octl_lines_add(&l, "scrub"), OCI_OK);
    assert_int_equal(octl_lines_add(&l, "state       running, 10 of 40 "
                                    "files"), OCI_OK);
    assert_int_equal(l.n, 2);
    assert_false(octl_lines_idle(&l));

    octl_lines_clear(&l);
    assert_int_equal(l.n, 0);
    assert_int_equal(octl_lines_add(&l, "stateful idle"), OCI_OK);
    assert_int_equal(octl_lines_add(&l, "last  idle"), OCI_OK);
    assert_false(octl_lines_idle(&l));
    assert_int_equal(octl_lines_add(&l, "state       idle (last scrub: 40 "
                                    "files, 0 bad)"), OCI_OK);
    assert_true(octl_lines_idle(&l));

    octl_lines_clear(&l);
    assert_int_equal(octl_lines_add(&l, "  state: idle"), OCI_OK);
    assert_true(octl_lines_idle(&l));

    octl_lines_clear(&l);
    assert_int_equal(octl_lines_add(&l, "state idler"), OCI_OK);
    assert_false(octl_lines_idle(&l));

    /* frames of lines on a terminal; nothing elsewhere */
    out = open_memstream(&text, &len);
    assert_non_null(out);
    octl_view_init(&v, out, 1, 80, 24);
    octl_view_lines(&v, &l);
    octl_view_lines(&v, &l);
    octl_view_free(&v);
    octl_view_init(&v, out, 0, 80, 24);
    octl_view_lines(&v, &l);
    fclose(out);

    assert_string_equal(text, "\r\033[2Kstate idler\n\033[J"
                              "\033[1A\r\033[2Kstate idler\n\033[J");

    free(text);
    octl_view_free(&v);
    octl_lines_free(&l);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_percent),
        cmocka_unit_test(test_queued),
        cmocka_unit_test(test_status_lines),
        cmocka_unit_test(test_view_log),
        cmocka_unit_test(test_view_tty),
        cmocka_unit_test(test_view_tty_rows),
        cmocka_unit_test(test_lines),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
